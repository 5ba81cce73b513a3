"""Healing on EC2 (moto): an instance terminated out of band with boto3 is replaced.

``--no-provision`` level: the node group gets a new instance; the health check asks the
EC2 API only (there is no engine to ask).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from ec2_helpers import AMI, node_instances

from flotte.config import paths

FLOTTE = str(Path(sys.executable).with_name("flotte"))


def run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FLOTTE_HOME": str(home), "COLUMNS": "200", "FLOTTE_EC2_POLL": "0.1"}
    return subprocess.run(
        [FLOTTE, *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )


def instances(ec2: Any, cluster: str, home: Path) -> dict[str, tuple[str, str]]:
    """instance ID -> (node name, state) of every instance tagged for ``cluster``."""
    states = ("pending", "running", "stopping", "stopped", "shutting-down", "terminated")
    # Nodes launched together are named by the driver's launch journal, in its home
    named = node_instances(ec2, cluster, paths(home).machines, states)
    found = ec2.describe_instances(InstanceIds=[iid for _, iid in named]) if named else {}
    state = {
        i["InstanceId"]: i["State"]["Name"]
        for r in found.get("Reservations", [])
        for i in r["Instances"]
    }
    return {iid: (node, state[iid]) for node, iid in named}


def live(ec2: Any, cluster: str, home: Path) -> dict[str, str]:
    return {
        node: iid
        for iid, (node, state) in instances(ec2, cluster, home).items()
        if state not in ("terminated", "shutting-down")
    }


def test_terminated_instance_gets_a_successor(tmp_path: Path, ec2: Any, moto_endpoint: str) -> None:
    home, name = tmp_path / "home", f"hle{uuid.uuid4().hex[:4]}"
    flags = [
        "--ec2-endpoint-url", moto_endpoint, "--ec2-region", "us-east-1", "--ec2-ami", AMI,
        "--ec2-allowed-cidr", "203.0.113.7/32",
    ]  # fmt: skip
    res = run(
        home, "cluster", "create", name, "--driver", "ec2", "--node-count", "2",
        "--no-provision", "--labels", "auto_healing_enabled=true", *flags,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    try:
        before = live(ec2, name, home)
        assert sorted(before) == [f"{name}-master-0", f"{name}-node-0", f"{name}-node-1"]
        victim = before[f"{name}-node-0"]
        ec2.terminate_instances(InstanceIds=[victim])  # out of band, as a spot reclaim would

        check = run(home, "cluster", "check", name, "-f", "json")
        assert check.returncode == 1, check.stderr
        found = json.loads(check.stdout)
        assert found["health_status"] == "UNHEALTHY"
        assert found["health_status_reason"][f"{name}-node-0"] == "instance terminated or gone"
        assert found["calls"]["engine"] == 0  # no engines at --no-provision level

        watched = run(home, "watch", name, "--rounds", "2", "--interval", "1")
        assert watched.returncode == 0, watched.stderr
        assert f"healed: replaced {name}-node-0 by {name}-node-2" in watched.stdout

        after = live(ec2, name, home)
        assert sorted(after) == [f"{name}-master-0", f"{name}-node-1", f"{name}-node-2"]
        assert victim not in after.values()
        groups = ec2.describe_tags(
            Filters=[
                {"Name": "resource-id", "Values": [after[f"{name}-node-2"]]},
                {"Name": "key", "Values": ["flotte:nodegroup"]},
            ]
        )["Tags"]
        assert [t["Value"] for t in groups] == ["default-worker"]
        final = run(home, "cluster", "check", name, "-f", "json")
        assert final.returncode == 0 and json.loads(final.stdout)["health_status"] == "HEALTHY"
    finally:
        run(home, "cluster", "delete", name)
    assert live(ec2, name, home) == {}
    owner = [{"Name": "tag:flotte:cluster", "Values": [name]}]
    assert ec2.describe_security_groups(Filters=owner)["SecurityGroups"] == []
    assert ec2.describe_volumes(Filters=owner)["Volumes"] == []
