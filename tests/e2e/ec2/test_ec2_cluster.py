"""Clusters on EC2 at the API level: one RunInstances, resize, delete, killed creates."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ec2_helpers import INSTALLATION, flotte_resources, node_instances, nothing_left

from fixtures.fault_proxy import ec2_action
from flotte.drivers.base import GroupSpec
from flotte.models import NodeRecord, NodeSpec, Owner, Role

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


def named(ec2: Any, cluster: str, home: Path) -> dict[str, str]:
    """node name -> instance ID of the live instances of ``cluster`` (``?ID``: unknown)."""
    return dict(node_instances(ec2, cluster, home))


async def test_one_run_instances_per_node_group_resize_delete(make_driver: Any, ec2: Any) -> None:
    assert nothing_left(ec2)
    driver = make_driver()
    group, owner = cluster()
    shared = await driver.prepare(group)
    shared_calls = sum(driver.api_calls().values())
    specs = nodes(owner, 5)
    records = await driver.create_many(specs, shared)

    calls = driver.api_calls()
    # One per node group (the manager's, the workers'): node group and role are tags
    # given at launch; the nodes are told apart by the launch journal, not by a
    # CreateTags each.
    assert calls["RunInstances"] == 2
    assert calls["CreateTags"] == 0, calls
    per_node = (sum(calls.values()) - shared_calls) / len(specs)
    assert per_node <= 4, calls
    tags = {
        i["InstanceId"]: {t["Key"]: t["Value"] for t in i["Tags"]}
        for r in ec2.describe_instances(InstanceIds=[r.provider_id for r in records])[
            "Reservations"
        ]
        for i in r["Instances"]
    }
    assert {(t["flotte:nodegroup"], t["flotte:role"]) for t in tags.values()} == {
        ("manager", "manager"),
        ("worker", "worker"),
    }
    assert tags[records[0].provider_id]["flotte:node"] == "lab-m0"  # launched alone: named
    assert [r.name for r in records] == [s.name for s in specs]
    assert set(named(ec2, "lab", driver.ctx.home)) == {s.name for s in specs}
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
    assert driver.api_calls()["RunInstances"] == 3
    assert {r.provider_id for r in grown} >= {r.provider_id for r in records}
    assert len(named(ec2, "lab", driver.ctx.home)) == 7

    # Shrink to 4: remove three workers.
    for record in grown[4:]:
        await driver.remove(record)
    assert set(named(ec2, "lab", driver.ctx.home)) == {r.name for r in grown[:4]}

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
    assert driver.api_calls()["RunInstances"] == 2  # one per node group
    assert len({r.provider_id for r in records}) == 6
    assert set(named(ec2, "par", driver.ctx.home)) == {s.name for s in specs}
    # And removed in parallel: one TerminateInstances.
    await asyncio.gather(*(driver.remove(r) for r in records))
    assert driver.api_calls()["TerminateInstances"] == 1
    assert named(ec2, "par", driver.ctx.home) == {}
    await driver.release(group, shared)
    assert nothing_left(ec2)


async def test_a_user_data_file_keeps_one_run_instances_per_node_group(
    make_driver: Any, ec2: Any, tmp_path: Path
) -> None:
    """The user's part makes a MIME document, whose boundary is random: each node's
    document must still be the same one, or every node launches alone."""
    script = tmp_path / "hello.sh"
    script.write_text("#!/bin/sh\necho hello > /tmp/hello\n")
    driver = make_driver(ec2_user_data_file=str(script))
    group, owner = cluster("ud")
    shared = await driver.prepare(group)
    specs = nodes(owner, 6)
    records = await asyncio.gather(*(driver.create(s, shared) for s in specs))
    assert driver.api_calls()["RunInstances"] == 2  # one per node group, not one per node
    assert set(named(ec2, "ud", driver.ctx.home)) == {s.name for s in specs}
    await asyncio.gather(*(driver.remove(r) for r in records))
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


def _waiting(req: Any) -> bool:
    """The wait after launch (DescribeInstances by ID, not by tag)."""
    return bool(ec2_action("DescribeInstances")(req) and req.param("InstanceId.1"))


def _killed_after_launch(
    ec2: Any, endpoint: str, fault_proxy_factory: Any, home: Path, name: str, count: int
) -> dict[str, str]:
    """Run the child until its instances exist, SIGKILL it before it returns them;
    node name -> instance ID as the journal under ``home`` tells."""
    proxy = fault_proxy_factory(endpoint, slow=[(_waiting, 30.0)])
    child = _child(proxy.url, home, name, count)
    try:
        _wait_for(lambda: len(named(ec2, name, home / "machines")) == count)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    return named(ec2, name, home / "machines")


def _child_specs(owner: Owner, count: int) -> list[NodeSpec]:
    """The nodes child_create.py makes: a re-run asks for the same ones."""
    return [NodeSpec(f"{owner.cluster}-n{i}", Role.WORKER, owner, "ec2") for i in range(count)]


async def test_killed_create_is_resumed(
    make_driver: Any, ec2: Any, moto_endpoint: str, fault_proxy_factory: Any, tmp_path: Path
) -> None:
    """SIGKILL after RunInstances, before the nodes were returned (so never recorded):
    a re-run adopts each instance as the node its launch journal says, launches
    nothing, and names the adopted instances with a tag then."""
    before = _killed_after_launch(ec2, moto_endpoint, fault_proxy_factory, tmp_path, "kill", 5)
    assert sorted(before) == [f"kill-n{i}" for i in range(5)], before
    untagged = [n for n, _ in node_instances(ec2, "kill", tmp_path / "nowhere")]
    assert all(n.startswith("?") for n in untagged), untagged  # one tag set for the launch

    driver = make_driver()  # same home and installation as the killed process
    group, owner = cluster("kill")
    shared = await driver.prepare(group)
    records = await driver.create_many(_child_specs(owner, 5), shared)
    assert driver.api_calls()["RunInstances"] == 0
    assert {r.name: r.provider_id for r in records} == before
    # Adopted: now named by tag too, so any later lookup needs no journal.
    assert named(ec2, "kill", tmp_path / "nowhere") == before
    assert len(flotte_resources(ec2)["key_pairs"]) == 1
    await driver.release(group, shared)
    assert nothing_left(ec2)
    assert not (tmp_path / "machines" / "launches").exists()  # the journal goes with the group


async def test_killed_create_without_journal_adopts_unnamed(
    make_driver: Any, ec2: Any, moto_endpoint: str, fault_proxy_factory: Any, tmp_path: Path
) -> None:
    """The journal lost too: the instances of the launch are still handed to the nodes
    missing (one each, by launch configuration), not launched again."""
    before = _killed_after_launch(ec2, moto_endpoint, fault_proxy_factory, tmp_path, "lost", 3)
    shutil.rmtree(tmp_path / "machines" / "launches")
    driver = make_driver()
    group, owner = cluster("lost")
    shared = await driver.prepare(group)
    records = await driver.create_many(_child_specs(owner, 3), shared)
    assert driver.api_calls()["RunInstances"] == 0
    assert {r.provider_id for r in records} == set(before.values())
    assert set(named(ec2, "lost", tmp_path / "nowhere")) == {r.name for r in records}
    await driver.release(group, shared)
    assert nothing_left(ec2)


async def test_killed_create_then_remove_by_name(
    make_driver: Any, ec2: Any, moto_endpoint: str, fault_proxy_factory: Any, tmp_path: Path
) -> None:
    """A node whose create was killed has no record: removing it by name finds its
    instance through the journal, and only that one."""
    before = _killed_after_launch(ec2, moto_endpoint, fault_proxy_factory, tmp_path, "byname", 3)
    driver = make_driver()
    await driver.remove(NodeRecord(name="byname-n1", driver="ec2"))
    after = named(ec2, "byname", tmp_path / "machines")
    assert after == {k: v for k, v in before.items() if k != "byname-n1"}
    assert await driver.sweep(Owner(cluster="byname", installation=INSTALLATION)) >= 4
    assert nothing_left(ec2)


async def test_killed_create_then_delete_leaves_nothing(
    make_driver: Any, ec2: Any, moto_endpoint: str, fault_proxy_factory: Any, tmp_path: Path
) -> None:
    """Killed while waiting for the instances to run: delete finds everything by tag."""
    _killed_after_launch(ec2, moto_endpoint, fault_proxy_factory, tmp_path, "gone", 4)
    assert flotte_resources(ec2)["security_groups"]
    driver = make_driver()
    _, owner = cluster("gone")
    assert await driver.sweep(owner) >= 6  # 4 instances, a key pair, a security group
    assert nothing_left(ec2)
    assert not list((tmp_path / "machines" / "keys").glob("gone-*/id_ed25519"))
    assert not (tmp_path / "machines" / "launches").exists()
