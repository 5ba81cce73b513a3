"""`flotte machine` and `flotte cluster` with `-d ec2`, as a user types them, against moto.

Every command runs as a real `flotte` process (so one can be SIGKILLed), talks to moto
through the fault proxy (which counts the EC2 actions it forwards), and the resources are
counted before and after with an independent boto3 client.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from ec2_helpers import AMI, ec2_flags, flotte_resources, nothing_left

from fixtures.fault_proxy import ec2_action, server_error, throttling

FLOTTE = str(Path(sys.executable).with_name("flotte"))


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "flotte-home"


def flotte_env(home: Path) -> dict[str, str]:
    # Poll moto often: its instances change state on the next describe.
    return {
        **os.environ,
        "FLOTTE_HOME": str(home),
        "NO_COLOR": "1",
        "COLUMNS": "200",
        "FLOTTE_EC2_POLL": "0.1",
    }


def flotte(home: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [FLOTTE, *args], env=flotte_env(home), capture_output=True, text=True, timeout=120
    )
    if ok:
        assert proc.returncode == 0, f"{args}: {proc.stdout}\n{proc.stderr}"
    return proc


def installation(home: Path) -> str:
    """The installation id flotte tags with (one per FLOTTE_HOME)."""
    import sqlite3

    with sqlite3.connect(home / "flotte.db") as db:
        for table, column in (("installation", "id"), ("meta", "value")):
            try:
                row = db.execute(f"select {column} from {table}").fetchone()
            except sqlite3.OperationalError:
                continue
            if row:
                return str(row[0])
    raise AssertionError("no installation id in the state database")


def owned(ec2: Any) -> dict[str, int]:
    """Counts of everything tagged by any flotte installation."""
    tagged = [{"Name": "tag-key", "Values": ["flotte:owner"]}]
    live = ["pending", "running", "stopping", "stopped", "shutting-down"]
    return {
        "instances": sum(
            len(r["Instances"])
            for r in ec2.describe_instances(
                Filters=[*tagged, {"Name": "instance-state-name", "Values": live}]
            )["Reservations"]
        ),
        "volumes": len(ec2.describe_volumes(Filters=tagged)["Volumes"]),
        "addresses": len(ec2.describe_addresses(Filters=tagged)["Addresses"]),
        "key_pairs": len(ec2.describe_key_pairs(Filters=tagged)["KeyPairs"]),
        "security_groups": len(ec2.describe_security_groups(Filters=tagged)["SecurityGroups"]),
    }


ZERO = {"instances": 0, "volumes": 0, "addresses": 0, "key_pairs": 0, "security_groups": 0}


def test_machine_create_ls_stop_start_rm(
    home: Path, ec2: Any, moto_endpoint: str, fault_proxy_factory: Any
) -> None:
    assert owned(ec2) == ZERO
    proxy = fault_proxy_factory(moto_endpoint)
    # docker-machine's spellings, as a docker-machine user would type them.
    flotte(
        home,
        "machine",
        "create",
        "-d",
        "ec2",
        "--amazonec2-endpoint",
        proxy.url,
        "--amazonec2-region",
        "us-east-1",
        "--amazonec2-ami",
        AMI,
        "--amazonec2-instance-type",
        "t3.small",
        "--ec2-allowed-cidr",
        "203.0.113.7/32",
        "--no-provision",
        "web",
    )
    assert proxy.stats.calls["RunInstances"] == 1
    assert owned(ec2) == {
        **ZERO,
        "instances": 1,
        "volumes": 1,
        "key_pairs": 1,
        "security_groups": 1,
    }
    assert nothing_left(ec2, installation(home)) is False

    ls = flotte(home, "machine", "ls").stdout
    assert "web" in ls and "ec2" in ls and "Running" in ls
    flotte(home, "machine", "stop", "web")
    assert "Stopped" in flotte(home, "machine", "ls").stdout
    flotte(home, "machine", "start", "web")
    assert "Running" in flotte(home, "machine", "ls").stdout
    flotte(home, "machine", "restart", "web")

    snap = json.loads(flotte(home, "machine", "snapshot", "web").stdout)
    assert ec2.describe_images(ImageIds=[snap["id"]])["Images"][0]["Name"] == "web-snapshot"

    flotte(home, "machine", "rm", "-y", "web")
    assert owned(ec2) == ZERO
    assert ec2.describe_images(ImageIds=[snap["id"]])["Images"]  # a snapshot is kept
    assert "web" not in flotte(home, "machine", "ls").stdout
    keys = home / "secrets" / "machines" / "keys"
    assert not list(keys.glob("*/id_ed25519")) if keys.exists() else True


def test_cluster_create_delete_counts(
    home: Path, ec2: Any, moto_endpoint: str, fault_proxy_factory: Any
) -> None:
    proxy = fault_proxy_factory(moto_endpoint)
    assert owned(ec2) == ZERO
    flotte(
        home,
        "cluster",
        "create",
        "--driver",
        "ec2",
        "--node-count",
        "5",
        "--no-provision",
        *ec2_flags(proxy.url),
        "lab",
    )
    # One manager and five workers: one RunInstances per node group, no CreateTags.
    assert proxy.stats.calls["RunInstances"] == 2
    assert proxy.stats.calls["CreateTags"] == 0
    assert owned(ec2) == {
        **ZERO,
        "instances": 6,
        "volumes": 6,
        "key_pairs": 1,
        "security_groups": 1,
    }
    found = flotte_resources(ec2, installation(home))
    assert len(found["instances"]) == 6
    shown = flotte(home, "cluster", "show", "lab").stdout
    assert "lab" in shown

    # ``machine ls`` asks every node's state at once: one DescribeInstances for the six
    # (it was one per node: a thousand machines, a thousand calls)
    described = proxy.stats.calls["DescribeInstances"]
    listed = flotte(home, "machine", "ls").stdout
    assert listed.count("Running") == 6, listed
    assert proxy.stats.calls["DescribeInstances"] - described == 1

    flotte(home, "cluster", "delete", "lab")
    assert owned(ec2) == ZERO
    assert "lab" not in flotte(home, "cluster", "list").stdout


def test_cluster_resize_no_provision(home: Path, ec2: Any, moto_endpoint: str) -> None:
    flotte(
        home, "cluster", "create", "--driver", "ec2", "--node-count", "1", "--no-provision",
        *ec2_flags(moto_endpoint), "grow",
    )  # fmt: skip
    flotte(home, "cluster", "resize", "grow", "3")
    assert owned(ec2)["instances"] == 4
    flotte(home, "cluster", "resize", "grow", "1")
    assert owned(ec2)["instances"] == 2
    flotte(home, "cluster", "delete", "grow")
    assert owned(ec2) == ZERO


def _waiting(req: Any) -> bool:
    """The wait after launch (DescribeInstances by ID, not by tag): held, a kill lands
    after the instances exist and before the nodes are recorded."""
    return bool(ec2_action("DescribeInstances")(req) and req.param("InstanceId.1"))


def _kill_when(proc: subprocess.Popen[str], predicate: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    try:
        while not predicate():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the create never reached the kill point"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)


def test_killed_cluster_create_resumes(
    home: Path, ec2: Any, moto_endpoint: str, fault_proxy_factory: Any
) -> None:
    """SIGKILL after launch, before the nodes were recorded; the same command again
    converges to 6 nodes."""
    held = fault_proxy_factory(moto_endpoint, slow=[(_waiting, 60.0)])
    args = ["cluster", "create", "--driver", "ec2", "--node-count", "5", "--no-provision"]
    proc = subprocess.Popen(
        [FLOTTE, *args, *ec2_flags(held.url), "res"],
        env=flotte_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _kill_when(proc, lambda: owned(ec2)["instances"] == 6)
    assert held.stats.calls["RunInstances"] == 2  # the manager's and the workers'

    # The re-run resumes with the options the cluster was created with (this proxy's URL).
    held.slow = []
    launched = held.stats.calls["RunInstances"]
    flotte(home, *args, *ec2_flags(held.url), "res")
    assert held.stats.calls["RunInstances"] == launched  # the killed run's instances adopted
    assert owned(ec2) == {
        **ZERO,
        "instances": 6,
        "volumes": 6,
        "key_pairs": 1,
        "security_groups": 1,
    }
    flotte(home, "cluster", "delete", "res")
    assert owned(ec2) == ZERO


def test_killed_cluster_create_then_delete(
    home: Path, ec2: Any, moto_endpoint: str, fault_proxy_factory: Any
) -> None:
    held = fault_proxy_factory(moto_endpoint, slow=[(_waiting, 60.0)])
    proc = subprocess.Popen(
        [FLOTTE, "cluster", "create", "--driver", "ec2", "--node-count", "3", "--no-provision",
         *ec2_flags(held.url), "doomed"],
        env=flotte_env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    _kill_when(proc, lambda: owned(ec2)["instances"] == 4)
    flotte(home, "cluster", "delete", "doomed")
    assert owned(ec2) == ZERO


def test_flaky_api_create_and_delete_converge(
    home: Path, ec2: Any, moto_endpoint: str, fault_proxy_factory: Any
) -> None:
    proxy = fault_proxy_factory(
        moto_endpoint,
        [throttling(0.25), server_error(0.1), server_error(1.0, after=True, limit=2)],
        seed=11,
    )
    flotte(
        home, "cluster", "create", "--driver", "ec2", "--node-count", "4", "--no-provision",
        *ec2_flags(proxy.url), "rough",
    )  # fmt: skip
    assert sum(proxy.stats.injected.values()) > 0
    assert owned(ec2)["instances"] == 5
    flotte(home, "cluster", "delete", "rough")
    assert owned(ec2) == ZERO


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        # The rest of the bad-input table runs at driver level (test_ec2_bad_input.py).
        (["--ec2-region", "eu-nowhere-1"], "unknown region 'eu-nowhere-1'"),
        (["--ec2-instance-type", "t9.enormous"], "unknown instance type 't9.enormous'"),
    ],
)
def test_bad_input_one_line(
    home: Path, ec2: Any, moto_endpoint: str, flags: list[str], words: str
) -> None:
    proc = flotte(
        home, "machine", "create", "-d", "ec2", "--no-provision", *ec2_flags(moto_endpoint),
        *flags, "oops", ok=False,
    )  # fmt: skip
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and words in errors[0], proc.stderr
    assert owned(ec2) == ZERO
    assert "oops" not in flotte(home, "machine", "ls").stdout


def test_missing_credentials_one_line(home: Path, ec2: Any, moto_endpoint: str) -> None:
    env = {
        k: v
        for k, v in flotte_env(home).items()
        if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    }
    proc = subprocess.run(
        [FLOTTE, "machine", "create", "-d", "ec2", "--no-provision", *ec2_flags(moto_endpoint), "nokey"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "no usable AWS credentials" in errors[0], proc.stderr
    assert owned(ec2) == ZERO
