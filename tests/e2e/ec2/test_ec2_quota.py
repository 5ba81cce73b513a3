"""Nodes that do not fit the account are refused before anything is made (moto's limits)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ec2_helpers import INSTALLATION, ec2_flags, nothing_left

from flotte.drivers.base import GroupSpec
from flotte.errors import QuotaExceeded
from flotte.models import NodeSpec, Owner, Role

FLOTTE = str(Path(sys.executable).with_name("flotte"))


def eip_limit(ec2: Any) -> int:
    """The account's Elastic IP limit as the peer states it (moto: 5)."""
    found = ec2.describe_account_attributes(AttributeNames=["vpc-max-elastic-ips"])
    return int(found["AccountAttributes"][0]["AttributeValues"][0]["AttributeValue"])


async def test_more_elastic_ips_than_the_account_allows(make_driver: Any, ec2: Any) -> None:
    limit, held = eip_limit(ec2), len(ec2.describe_addresses()["Addresses"])
    fits = limit - held
    assert fits > 1, "the peer has no room for this test"
    owner = Owner(cluster="eips", installation=INSTALLATION)

    def group(count: int) -> GroupSpec:
        nodes = tuple(NodeSpec(f"eips-n{i}", Role.WORKER, owner, "ec2") for i in range(count))
        return GroupSpec("eips", owner, {"ec2_elastic_ip": True}, ("cluster",), count, nodes)

    driver = make_driver()
    with pytest.raises(QuotaExceeded) as err:
        await driver.check(group(fits + 1))
    where = driver.api(driver.conn.target(driver.conn.settings())).where
    assert str(err.value).startswith(
        f"{fits + 1} Elastic IPs asked (--ec2-elastic-ip), but {where} allows {limit}"
        f" (vpc-max-elastic-ips) and {held} are allocated: at most {fits} more fit"
    )
    assert "\n" not in str(err.value)
    assert nothing_left(ec2)
    await driver.check(group(fits))  # what fits passes
    assert nothing_left(ec2)


def test_cli_refuses_with_the_numbers_and_makes_nothing(
    tmp_path: Path, ec2: Any, moto_endpoint: str
) -> None:
    limit, held = eip_limit(ec2), len(ec2.describe_addresses()["Addresses"])
    home = tmp_path / "home"
    env = {**os.environ, "FLOTTE_HOME": str(home), "FLOTTE_EC2_POLL": "0.1"}
    workers = limit - held  # plus one manager: one too many
    proc = subprocess.run(
        [FLOTTE, "cluster", "create", "toomany", "--driver", "ec2", "--node-count",
         str(workers), "--no-provision", "--ec2-elastic-ip", *ec2_flags(moto_endpoint)],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr
    assert any(
        f"{workers + 1} Elastic IPs asked" in line and f"allows {limit}" in line for line in lines
    ), proc.stderr
    listed = subprocess.run(
        [FLOTTE, "cluster", "list"], env=env, capture_output=True, text=True, check=False
    )
    assert "toomany" not in listed.stdout
    tagged = [{"Name": "tag:flotte:cluster", "Values": ["toomany"]}]
    assert ec2.describe_security_groups(Filters=tagged)["SecurityGroups"] == []
    assert ec2.describe_key_pairs(Filters=tagged)["KeyPairs"] == []
    live = [{"Name": "instance-state-name", "Values": ["pending", "running"]}]
    assert ec2.describe_instances(Filters=[*tagged, *live])["Reservations"] == []
