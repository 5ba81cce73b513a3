"""The driver contract, written once and run against every driver (see conftest.py).

Each property is checked with the peer's own client, never with the driver's answers:
create is idempotent; a killed create resumes; a node made by a killed run and never
recorded is adopted; delete and sweep leave nothing; two node groups of one owner, with
other driver options each, grow and shrink independently; a node stops and starts as
itself; every node carries its owner marks (``Owner.tags()``) and another installation
sees none of it; bad options are refused in one line before anything is made.
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from rigs import Rig

from flotte.drivers.base import Driver
from flotte.errors import FlotteError
from flotte.models import NodeRecord, NodeSpec, NodeState, Owner


async def make(
    rig: Rig, driver: Driver, owner: Owner, specs: list[NodeSpec], *, provision: bool = False
) -> tuple[dict[str, Any], list[NodeRecord]]:
    """What a create does: check, prepare, every node at once (and provision)."""
    group = rig.group(owner, specs)
    await driver.check(group)
    shared = await driver.prepare(group)
    records = list(await asyncio.gather(*(driver.create(s, shared) for s in specs)))
    if provision or rig.provision:
        await asyncio.gather(
            *(driver.provision(s, r, s.engine) for s, r in zip(specs, records, strict=True))
        )
    return shared, records


async def delete(
    rig: Rig, driver: Driver, owner: Owner, shared: dict[str, Any], records: list[NodeRecord]
) -> None:
    """What a delete does: every node at once, then what they shared."""
    await asyncio.gather(*(driver.remove(r) for r in records))
    await driver.release(rig.group(owner, []), shared)


def run_and_kill(rig: Rig, owner: Owner, specs: list[NodeSpec], when: Callable[[], bool]) -> None:
    """Run a create in a child process and SIGKILL it as soon as ``when()`` holds."""
    proc = subprocess.Popen(
        rig.child(owner, specs),
        env=rig.child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 240
    try:
        while not when():
            if proc.poll() is not None:
                _, err = proc.communicate()
                raise AssertionError(f"the create ended before the kill point: {err[-2000:]}")
            if time.monotonic() > deadline:
                raise AssertionError("the kill point never came")
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(30)


async def test_create_is_idempotent(rig: Rig) -> None:
    owner = rig.owner("idem")
    spec = rig.spec(owner, "a", 0)
    _, (first,) = await make(rig, rig.driver(), owner, [spec])
    assert rig.found(owner) == rig.expected(1)
    # The same create again, from another process: the node is adopted, nothing doubles.
    again, (second,) = await make(rig, rig.driver(), owner, [spec])
    assert second.provider_id == first.provider_id
    assert rig.found(owner) == rig.expected(1)
    assert list(rig.nodes(owner)) == [spec.name]
    await delete(rig, rig.driver(), owner, again, [second])
    assert rig.found(owner) == Counter()


async def test_a_killed_create_resumes(rig: Rig) -> None:
    owner = rig.owner("kill")
    specs = [rig.spec(owner, "a", i) for i in range(2)]
    # Killed at the first mark the peer shows: shared resources half made, nodes not yet.
    run_and_kill(rig, owner, specs, lambda: bool(rig.found(owner)))
    driver = rig.driver()
    shared, records = await make(rig, driver, owner, specs)
    assert rig.found(owner) == rig.expected(2)
    assert sorted(rig.nodes(owner)) == sorted(s.name for s in specs)
    for record in records:
        assert await driver.state(record) in (NodeState.RUNNING, NodeState.STARTING)
    await delete(rig, driver, owner, shared, records)
    assert rig.found(owner) == Counter()


async def test_a_node_made_by_a_killed_run_is_adopted(rig: Rig) -> None:
    owner = rig.owner("orphan")
    spec = rig.spec(owner, "a", 0)
    # Killed once the node exists for the peer: no record of it was ever kept.
    run_and_kill(rig, owner, [spec], lambda: spec.name in rig.nodes(owner))
    (made_id, _) = rig.nodes(owner)[spec.name]
    shared, (record,) = await make(rig, rig.driver(), owner, [spec])
    assert rig.nodes(owner) == {spec.name: (made_id, rig.variant("a"))}
    assert rig.found(owner) == rig.expected(1)
    assert record.name == spec.name
    await delete(rig, rig.driver(), owner, shared, [record])
    assert rig.found(owner) == Counter()


async def test_delete_and_sweep_leave_nothing(rig: Rig) -> None:
    owner = rig.owner("gone")
    specs = [rig.spec(owner, "a", i) for i in range(2)]
    driver = rig.driver()
    group = rig.group(owner, specs)
    await driver.check(group)
    shared = await driver.prepare(group)
    records = list(await asyncio.gather(*(driver.create(s, shared) for s in specs)))
    # One node provisioned (a TLS engine running, certificates delivered), one not.
    if rig.engines:
        await driver.provision(specs[0], records[0], specs[0].engine)
    if rig.provision:
        await driver.provision(specs[1], records[1], specs[1].engine)
    assert rig.found(owner) == rig.expected(2)
    await delete(rig, driver, owner, shared, records)
    assert rig.found(owner) == Counter()
    assert await rig.driver().leftovers(owner) == []

    # A run killed with its node made and no record: sweep (delete's crash path) finds it.
    orphan = rig.owner("swept")
    spec = rig.spec(orphan, "a", 0)
    run_and_kill(rig, orphan, [spec], lambda: spec.name in rig.nodes(orphan))
    assert rig.found(orphan)
    assert await rig.driver().leftovers(orphan)
    await rig.driver().sweep(orphan)
    assert rig.found(orphan) == Counter()
    assert await rig.driver().leftovers(orphan) == []


async def test_node_groups_grow_and_shrink_independently(rig: Rig) -> None:
    owner = rig.owner("groups")
    a0, b0 = rig.spec(owner, "a", 0), rig.spec(owner, "b", 0)
    driver = rig.driver()
    shared, records = await make(rig, driver, owner, [a0, b0])
    seen = rig.nodes(owner)
    assert {n: v for n, (_, v) in seen.items()} == {
        a0.name: rig.variant("a"),
        b0.name: rig.variant("b"),
    }
    assert rig.found(owner) == rig.expected(2)

    # Group a grows by one: b's node is untouched.
    a1 = rig.spec(owner, "a", 1)
    group = rig.group(owner, [a1])
    await driver.check(group)
    (grown,) = await asyncio.gather(driver.create(a1, shared))
    if rig.provision:
        await driver.provision(a1, grown, a1.engine)
    after = rig.nodes(owner)
    assert after[a1.name][1] == rig.variant("a")
    assert after[b0.name] == seen[b0.name] and after[a0.name] == seen[a0.name]
    assert rig.found(owner) == rig.expected(3)

    # Group b shrinks to nothing: a's two nodes are untouched.
    await driver.remove(records[1])
    left = rig.nodes(owner)
    assert sorted(left) == sorted([a0.name, a1.name])
    assert left[a0.name] == seen[a0.name]
    assert rig.found(owner) == rig.expected(2)

    await delete(rig, driver, owner, shared, [records[0], grown])
    assert rig.found(owner) == Counter()


async def test_stop_start_and_state(rig: Rig) -> None:
    owner = rig.owner("power")
    spec = rig.spec(owner, "a", 0)
    driver = rig.driver()
    shared, (record,) = await make(rig, driver, owner, [spec], provision=rig.engines)
    (made_id, _) = rig.nodes(owner)[spec.name]
    assert await driver.state(record) == NodeState.RUNNING
    await driver.stop(record)
    assert await rig.driver().state(record) == NodeState.STOPPED  # as another process sees it
    record = await driver.start(record)
    assert await rig.driver().state(record) == NodeState.RUNNING
    assert rig.nodes(owner)[spec.name][0] == made_id  # the same node, started again
    await delete(rig, driver, owner, shared, [record])
    assert await rig.driver().state(record) == NodeState.NOT_FOUND or rig.kind == "ssh"
    assert rig.found(owner) == Counter()


async def test_every_node_carries_its_owner_marks(rig: Rig) -> None:
    owner = rig.owner("marks")
    specs = [rig.spec(owner, "a", 0), rig.spec(owner, "b", 0)]
    driver = rig.driver()
    shared, records = await make(rig, driver, owner, specs)
    marks = rig.marks(owner)
    for spec in specs:  # Owner.tags() and the node's own: node, node group, role
        assert spec.tags().items() <= marks[spec.name].items()
    # The same cluster name in another installation owns none of it.
    stranger = Owner(cluster=owner.cluster, installation=f"{rig.installation}x")
    assert rig.found(stranger) == Counter()
    assert await rig.driver().leftovers(stranger) == []
    assert await rig.driver().sweep(stranger) == 0
    assert rig.found(owner) == rig.expected(2)
    await delete(rig, driver, owner, shared, records)
    assert rig.found(owner) == Counter()


async def test_bad_options_are_refused_before_anything_is_made(rig: Rig) -> None:
    owner = rig.owner("bad")
    options, word = rig.bad
    spec = rig.spec(owner, "a", 0)
    spec = dataclasses.replace(spec, options={**spec.options, **options})
    group = dataclasses.replace(rig.group(owner, [spec]), options={**rig.options, **options})
    with pytest.raises(FlotteError) as err:
        await rig.driver().check(group)
    line = str(err.value)
    assert word in line and "\n" not in line, line
    assert rig.found(owner) == Counter()
