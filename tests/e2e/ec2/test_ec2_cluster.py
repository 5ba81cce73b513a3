"""Clusters on EC2 at the API level: one RunInstances, resize, delete, killed creates."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ec2_helpers import INSTALLATION, flotte_resources, nothing_left

from fixtures.fault_proxy import ec2_action
from flotte.drivers.base import GroupSpec
from flotte.models import NodeSpec, Owner, Role

HERE = Path(__file__).resolve().parent


def cluster(name: str = "lab") -> tuple[GroupSpec, Owner]:
    owner = Owner(cluster=name, installation=INSTALLATION)
    group = GroupSpec(
        name=name, owner=owner, roles=("cluster", "manager", "worker"), options={}, size=5
    )
    return group, owner


def nodes(owner: Owner, count: int, start: int = 0, **options: Any) -> list[NodeSpec]:
    name = owner.cluster
    out = [NodeSpec(f"{name}-m0", Role.MANAGER, owner, "ec2", dict(options), group="manager")]
    out += [
        NodeSpec(f"{name}-w{i}", Role.WORKER, owner, "ec2", dict(options), group="worker")
        for i in range(count - 1)
    ]
    return out[start:]


def named(ec2: Any, cluster: str) -> dict[str, str]:
    """node name -> instance ID of the live instances tagged for ``cluster``."""
    res = ec2.describe_instances(
        Filters=[
            {"Name": "tag:flotte:cluster", "Values": [cluster]},
            {"Name": "instance-state-name", "Values": ["pending", "running", "stopped"]},
        ]
    )["Reservations"]
    out = {}
    for r in res:
        for i in r["Instances"]:
            tags = {t["Key"]: t["Value"] for t in i.get("Tags", [])}
            out[tags.get("flotte:node", "?" + i["InstanceId"])] = i["InstanceId"]
    return out


async def test_five_nodes_one_run_instances_resize_delete(make_driver: Any, ec2: Any) -> None:
    assert nothing_left(ec2)
    driver = make_driver()
    group, owner = cluster()
    shared = await driver.prepare(group)
    shared_calls = sum(driver.api_calls().values())
    specs = nodes(owner, 5)
    records = await driver.create_many(specs, shared)

    calls = driver.api_calls()
    assert calls["RunInstances"] == 1
    per_node = (sum(calls.values()) - shared_calls) / len(specs)
    assert per_node <= 4, calls
    assert [r.name for r in records] == [s.name for s in specs]
    assert set(named(ec2, "lab")) == {s.name for s in specs}
    counts = {k: len(v) for k, v in flotte_resources(ec2).items()}
    assert counts == {
        "instances": 5,
        "volumes": 5,
        "addresses": 0,
        "key_pairs": 1,
        "security_groups": 1,
    }

    # Swarm ports are open between members of the group only.
    perms = ec2.describe_security_groups(GroupIds=[shared["security_group_id"]])["SecurityGroups"][
        0
    ]["IpPermissions"]
    members = {
        (p["IpProtocol"], p["FromPort"])
        for p in perms
        if p.get("UserIdGroupPairs") and not p.get("IpRanges")
    }
    assert members == {("tcp", 2377), ("tcp", 7946), ("udp", 7946), ("udp", 4789)}
    for p in perms:
        if p.get("UserIdGroupPairs"):
            assert p["UserIdGroupPairs"][0]["GroupId"] == shared["security_group_id"]

    # Grow to 7: the 5 are adopted, the 2 new ones come from one more RunInstances.
    grown = await driver.create_many(nodes(owner, 7), shared)
    assert driver.api_calls()["RunInstances"] == 2
    assert {r.provider_id for r in grown} >= {r.provider_id for r in records}
    assert len(named(ec2, "lab")) == 7

    # Shrink to 4: remove three workers.
    for record in grown[4:]:
        await driver.remove(record)
    assert set(named(ec2, "lab")) == {r.name for r in grown[:4]}

    # Delete: nodes, then the group's shared resources.
    for record in grown[:4]:
        await driver.remove(record)
    await driver.release(group, shared)
    assert nothing_left(ec2)


async def test_parallel_creates_and_removes_are_batched(make_driver: Any, ec2: Any) -> None:
    """The service may call create() per node in parallel: they are batched."""
    driver = make_driver()
    group, owner = cluster("par")
    shared = await driver.prepare(group)
    specs = nodes(owner, 6)
    records = await asyncio.gather(*(driver.create(s, shared) for s in specs))
    assert driver.api_calls()["RunInstances"] == 1
    assert len({r.provider_id for r in records}) == 6
    assert set(named(ec2, "par")) == {s.name for s in specs}
    # And removed in parallel: one TerminateInstances.
    await asyncio.gather(*(driver.remove(r) for r in records))
    assert driver.api_calls()["TerminateInstances"] == 1
    assert named(ec2, "par") == {}
    await driver.release(group, shared)
    assert nothing_left(ec2)


async def test_node_groups_with_different_instance_types(make_driver: Any, ec2: Any) -> None:
    driver = make_driver()
    group, owner = cluster("mixed")
    shared = await driver.prepare(group)
    managers = nodes(owner, 1, ec2_instance_type="t3.small")
    workers = [
        NodeSpec(f"mixed-w{i}", Role.WORKER, owner, "ec2", {"ec2_instance_type": "t3.medium"})
        for i in range(3)
    ]
    records = await driver.create_many(managers + workers, shared)
    assert driver.api_calls()["RunInstances"] == 2  # one per launch configuration
    types = {r.name: r.data["instance_type"] for r in records}
    assert types == {
        "mixed-m0": "t3.small",
        "mixed-w0": "t3.medium",
        "mixed-w1": "t3.medium",
        "mixed-w2": "t3.medium",
    }
    await driver.sweep(owner)
    assert nothing_left(ec2)


def _child(endpoint: str, home: Path, cluster_name: str, count: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen(
        [
            sys.executable,
            str(HERE / "child_create.py"),
            endpoint,
            str(home),
            INSTALLATION,
            cluster_name,
            str(count),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _wait_for(predicate: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


async def test_killed_create_is_resumed(
    make_driver: Any, ec2: Any, moto_endpoint: str, fault_proxy_factory: Any, tmp_path: Path
) -> None:
    """SIGKILL after RunInstances, before the instances got their names: a re-run adopts
    the unnamed instances instead of launching more."""
    # Hold CreateTags open so the kill lands between launch and naming.
    proxy = fault_proxy_factory(moto_endpoint, slow=[(ec2_action("CreateTags"), 30.0)])
    child = _child(proxy.url, tmp_path, "kill", 5)
    try:
        _wait_for(lambda: len(named(ec2, "kill")) == 5)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    unnamed = named(ec2, "kill")
    assert all(name.startswith("?") for name in unnamed), unnamed

    driver = make_driver()  # same home and installation as the killed process
    group, owner = cluster("kill")
    shared = await driver.prepare(group)
    records = await driver.create_many(nodes(owner, 5), shared)
    assert driver.api_calls()["RunInstances"] == 0
    assert {r.provider_id for r in records} == set(unnamed.values())
    assert set(named(ec2, "kill")) == {r.name for r in records}
    assert len(flotte_resources(ec2)["key_pairs"]) == 1
    await driver.release(group, shared)
    assert nothing_left(ec2)


async def test_killed_create_then_delete_leaves_nothing(
    make_driver: Any, ec2: Any, moto_endpoint: str, fault_proxy_factory: Any, tmp_path: Path
) -> None:
    """Killed while waiting for the instances to run: delete finds everything by tag."""

    def waiting(req: Any) -> bool:  # the wait after launch asks by ID, not by tag
        return bool(ec2_action("DescribeInstances")(req) and req.param("InstanceId.1"))

    proxy = fault_proxy_factory(moto_endpoint, slow=[(waiting, 30.0)])
    child = _child(proxy.url, tmp_path, "gone", 4)
    try:
        _wait_for(lambda: len(named(ec2, "gone")) == 4)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert flotte_resources(ec2)["security_groups"]
    driver = make_driver()
    _, owner = cluster("gone")
    assert await driver.sweep(owner) >= 6  # 4 instances, a key pair, a security group
    assert nothing_left(ec2)
    assert not list((tmp_path / "machines" / "keys").glob("gone-*/id_ed25519"))
