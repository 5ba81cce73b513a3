"""A flaky EC2 API (throttling, 500s, lost answers) between flotte and moto."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from ec2_helpers import INSTALLATION, flotte_resources, node_instances, nothing_left

from fixtures.fault_proxy import Fault, ec2_action, ec2_error, server_error, throttling
from flotte.drivers.base import GroupSpec
from flotte.errors import QuotaExceeded
from flotte.models import NodeSpec, Owner, Role


def cluster(name: str) -> tuple[GroupSpec, Owner, list[NodeSpec]]:
    owner = Owner(cluster=name, installation=INSTALLATION)
    group = GroupSpec(name=name, owner=owner, roles=("cluster", "manager", "worker"), size=5)
    specs = [NodeSpec(f"{name}-n{i}", Role.WORKER, owner, "ec2") for i in range(5)]
    return group, owner, specs


def live_names(ec2: Any, name: str, home: Path) -> list[str]:
    """Node names of the cluster's live instances, one per instance (doubles show)."""
    return [node for node, _ in node_instances(ec2, name, home, ("pending", "running"))]


async def test_throttling_and_500s_converge(
    make_driver: Any, ec2: Any, moto_endpoint: str, fault_proxy_factory: Any
) -> None:
    proxy = fault_proxy_factory(moto_endpoint, [throttling(0.3), server_error(0.1)], seed=7)
    driver = make_driver(proxy.url)
    group, _owner, specs = cluster("flaky")
    shared = await driver.prepare(group)
    records = await driver.create_many(specs, shared)
    assert proxy.stats.injected["RequestLimitExceeded"] > 0
    assert proxy.stats.injected["InternalError"] > 0
    assert live_names(ec2, "flaky", driver.ctx.home) == sorted(s.name for s in specs)
    assert len({r.provider_id for r in records}) == 5
    for record in records:
        await driver.remove(record)
    await driver.release(group, shared)
    assert nothing_left(ec2)


async def test_lost_run_instances_answer_leaves_no_duplicate(
    make_driver: Any, ec2: Any, moto_endpoint: str, fault_proxy_factory: Any
) -> None:
    """The server launched, the answer was lost, the client retried: still 5 instances."""
    lost = server_error(1.0, after=True, match=ec2_action("RunInstances"), limit=1)
    proxy = fault_proxy_factory(moto_endpoint, [lost])
    driver = make_driver(proxy.url)
    group, _owner, specs = cluster("lost")
    shared = await driver.prepare(group)
    await driver.create_many(specs, shared)
    assert proxy.stats.injected["InternalError"] == 1
    assert live_names(ec2, "lost", driver.ctx.home) == sorted(s.name for s in specs)
    await driver.release(group, shared)
    assert nothing_left(ec2)


async def test_lost_answers_everywhere_converge(
    make_driver: Any, ec2: Any, moto_endpoint: str, fault_proxy_factory: Any
) -> None:
    """Every mutating call may act and lose its answer once: prepare, create, delete.

    (A create names no instance with CreateTags any more: its nodes are named at launch.)
    """
    actions = (
        "CreateSecurityGroup",
        "AuthorizeSecurityGroupIngress",
        "ImportKeyPair",
        "RunInstances",
        "TerminateInstances",
        "DeleteKeyPair",
        "DeleteSecurityGroup",
    )
    faults = [server_error(1.0, after=True, match=ec2_action(a), limit=1) for a in actions]
    proxy = fault_proxy_factory(moto_endpoint, faults)
    driver = make_driver(proxy.url)
    group, _owner, specs = cluster("lossy")
    shared = await driver.prepare(group)
    assert len(flotte_resources(ec2)["security_groups"]) == 1
    records = await driver.create_many(specs, shared)
    assert live_names(ec2, "lossy", driver.ctx.home) == sorted(s.name for s in specs)
    for record in records:
        await driver.remove(record)
    await driver.release(group, shared)
    assert proxy.stats.injected["InternalError"] == len(actions)
    assert nothing_left(ec2)


async def test_failed_launch_rolls_back_cleanly(
    make_driver: Any, ec2: Any, moto_endpoint: str, fault_proxy_factory: Any
) -> None:
    no_capacity = Fault(
        500,
        ec2_error("InsufficientInstanceCapacity", "We currently do not have sufficient capacity"),
        "text/xml",
        match=ec2_action("RunInstances"),
    )
    proxy = fault_proxy_factory(moto_endpoint, [no_capacity, throttling(0.2)])
    driver = make_driver(proxy.url)
    group, _owner, specs = cluster("full")
    shared = await driver.prepare(group)
    with pytest.raises(QuotaExceeded) as err:
        await driver.create_many(specs, shared)
    assert "InsufficientInstanceCapacity" in str(err.value) and "\n" not in str(err.value)
    # The same through parallel create() calls (batched): every caller gets the error.
    results = await asyncio.gather(
        *(driver.create(s, shared) for s in specs), return_exceptions=True
    )
    assert all(isinstance(r, QuotaExceeded) for r in results), results
    # Rollback (what the service does after a failed create) under throttling still works.
    await driver.release(group, shared)
    assert nothing_left(ec2)


async def test_sweep_under_heavy_throttling(
    make_driver: Any, ec2: Any, moto_endpoint: str, fault_proxy_factory: Any
) -> None:
    driver = make_driver()
    group, owner, specs = cluster("slow")
    await driver.create_many(specs, await driver.prepare(group))
    proxy = fault_proxy_factory(moto_endpoint, [throttling(0.5)], seed=3)
    flaky = make_driver(proxy.url)
    assert await flaky.sweep(owner) == 7
    assert proxy.stats.injected["RequestLimitExceeded"] > 0
    assert nothing_left(ec2)


async def test_instance_not_yet_visible_is_waited_for(
    make_driver: Any, ec2: Any, moto_endpoint: str, fault_proxy_factory: Any
) -> None:
    """Right after RunInstances, AWS may answer InvalidInstanceID.NotFound for a while."""

    def by_id(req: Any) -> bool:  # CreateTags on a new ID, or DescribeInstances by ID
        if ec2_action("CreateTags")(req):
            return True
        return bool(ec2_action("DescribeInstances")(req) and req.param("InstanceId.1"))

    not_yet = Fault(
        400,
        ec2_error("InvalidInstanceID.NotFound", "The instance ID 'i-x' does not exist"),
        "text/xml",
        match=by_id,
        limit=4,
        name="NotFound",
    )
    proxy = fault_proxy_factory(moto_endpoint, [not_yet])
    driver = make_driver(proxy.url)
    group, _owner, specs = cluster("eventual")
    shared = await driver.prepare(group)
    records = await driver.create_many(specs, shared)
    assert proxy.stats.injected["NotFound"] == 4
    assert live_names(ec2, "eventual", driver.ctx.home) == sorted(r.name for r in records)
    await driver.release(group, shared)
    assert nothing_left(ec2)


def test_token_bucket_paces_after_the_burst() -> None:
    from flotte.drivers.ec2.pacing import Buckets, TokenBucket

    bucket = TokenBucket(5, 2)
    assert [bucket.take() for _ in range(5)] == [0.0] * 5  # the burst is free
    wait = bucket.take()
    assert 0.4 < wait <= 0.5  # then one token every 1/2 s
    assert 0.9 < bucket.take() <= 1.0  # queued behind the previous caller
    buckets = Buckets()
    assert buckets.request("RunInstances").capacity == 5
    assert buckets.request("DescribeInstances").capacity == 100
    assert buckets.request("CreateTags") is buckets.request("CreateTags")  # one per API
    assert buckets.request("CreateTags") is not buckets.request("TerminateInstances")
