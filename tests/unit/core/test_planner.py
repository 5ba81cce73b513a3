"""The planner, pure: convergence, never the last manager, never more than asked."""

from __future__ import annotations

import dataclasses
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flotte.errors import PlanError
from flotte.models import EngineOptions, Role
from flotte.planner import Action, Plan, Recorded, RecordedNode, plan
from flotte.specs import (
    MASTER_GROUP,
    WORKER_GROUP,
    ClusterSpec,
    NodeGroupSpec,
    default_groups,
    machine_spec,
)
from flotte.state.status import CREATING, READY


def spec(masters: int = 1, workers: int = 2, *extra: NodeGroupSpec, **kw: object) -> ClusterSpec:
    return ClusterSpec(
        name="c",
        driver="fake",
        nodegroups=(*default_groups(masters, workers), *extra),
        **kw,  # type: ignore[arg-type]
    )


def apply(recorded: Recorded, p: Plan, *, fail: set[str] | None = None) -> Recorded:
    """What a successful run of ``p`` leaves in the store (the service's bookkeeping)."""
    nodes = {n.name: n for n in recorded.nodes}
    prepared = set(recorded.prepared)
    swarm = recorded.swarm
    no_provision = p.desired is not None and p.desired.no_provision
    for s in p.steps:
        if fail and s.id in fail:
            break
        if s.action == Action.PREPARE:
            prepared.add(str(s.driver))
        elif s.action == Action.CREATE:
            assert s.node and s.group and s.role
            nodes[s.node] = RecordedNode(
                s.node,
                s.group,
                s.role,
                s.index,
                str(s.driver),
                READY if no_provision else CREATING,
                True,
                False,
                s.host,
            )
        elif s.action == Action.PROVISION:
            assert s.node
            n = nodes[s.node]
            status = READY if p.kind == "machine" else n.status
            nodes[s.node] = dataclasses.replace(n, provisioned=True, status=status)
        elif s.action in (Action.INIT, Action.JOIN):
            assert s.node
            swarm = True
            nodes[s.node] = dataclasses.replace(nodes[s.node], status=READY)
        elif s.action == Action.REMOVE:
            assert s.node
            nodes.pop(s.node)
        elif s.action == Action.RELEASE:
            prepared.discard(str(s.driver))
    if p.operation == "delete":
        return Recorded(recorded.name)
    return Recorded(
        recorded.name, recorded.kind, True, tuple(nodes.values()), frozenset(prepared), swarm
    )


def test_create_plan_shape() -> None:
    p = plan(Recorded("c"), spec(1, 2))
    assert p.operation == "create"
    assert p.nodes(Action.CREATE) == ["c-master-0", "c-node-0", "c-node-1"]
    assert p.step("swarm:init").node == "c-master-0"
    assert p.step("join:c-node-0").requires == ("swarm:init", "provision:c-node-0")
    assert p.step("create:c-node-1").requires == ("prepare:fake",)
    assert p.summary() == {"create": 3, "resume": 0, "remove": 0, "restart": 0}
    assert apply(Recorded("c"), p) != Recorded("c")
    assert plan(apply(Recorded("c"), p), spec(1, 2)).empty


def test_machine_plan() -> None:
    m = machine_spec("box", "fake", {}, EngineOptions())
    p = plan(Recorded("box", "machine"), m)
    assert [s.id for s in p.steps] == ["prepare:fake", "create:box", "provision:box"]
    done = apply(Recorded("box", "machine"), p)
    assert plan(done, m).empty
    gone = plan(done, None)
    assert [s.id for s in gone.steps] == ["remove:box", "release:fake"]


def test_resume_after_kill() -> None:
    s = spec(1, 2)
    p = plan(Recorded("c"), s)
    half = apply(Recorded("c"), p, fail={"provision:c-node-1"})
    again = plan(half, s)
    assert again.summary()["create"] == 0
    assert again.nodes(Action.PROVISION) == ["c-node-1"]
    assert again.nodes(Action.JOIN) == ["c-node-0", "c-node-1"] or "c-node-1" in again.nodes(
        Action.JOIN
    )
    assert plan(apply(half, again), s).empty


def test_shrink_named_then_broken_then_newest() -> None:
    full = apply(Recorded("c"), plan(Recorded("c"), spec(1, 4)))
    p = plan(full, spec(1, 2), remove={"c-node-1"})
    assert sorted(p.nodes(Action.REMOVE)) == ["c-node-1", "c-node-3"]
    with pytest.raises(PlanError, match="leaves"):
        plan(full, spec(1, 3), remove={"c-node-0", "c-node-1"})
    with pytest.raises(PlanError, match="not in cluster"):
        plan(full, spec(1, 3), remove={"nope"})


def test_hosts_are_assigned_and_reused_after_removal() -> None:
    hosts = ("h1", "h2", "h3")
    s = ClusterSpec(
        name="c",
        driver="ssh",
        nodegroups=(
            NodeGroupSpec(name=MASTER_GROUP, role="master", node_count=1, hosts=hosts[:1]),
            NodeGroupSpec(name=WORKER_GROUP, node_count=2, hosts=hosts[1:]),
        ),
    )
    done = apply(Recorded("c"), plan(Recorded("c"), s))
    assert {n.name: n.host for n in done.nodes} == {
        "c-master-0": "h1",
        "c-node-0": "h2",
        "c-node-1": "h3",
    }
    with pytest.raises(PlanError, match="host"):
        plan(done, s.resized(WORKER_GROUP, 3))
    # A replaced node gets the host its predecessor frees, after it is gone.
    p = plan(done, s, replace={"c-node-0"})
    create = p.of(Action.CREATE)[0]
    assert create.host == "h2" and "remove:c-node-0" in create.requires


def test_manager_replacement_keeps_quorum() -> None:
    s = spec(3, 1)
    done = apply(Recorded("c"), plan(Recorded("c"), s))
    p = plan(done, s, replace={"c-master-1"})
    remove = p.step("remove:c-master-1")
    assert remove.requires == ("swarm:ready",)  # the new manager is in before the old goes
    assert plan(apply(done, p), s).empty
    one = apply(Recorded("c"), plan(Recorded("c"), spec(1, 1)))
    with pytest.raises(PlanError, match="leaves 0"):
        plan(one, spec(1, 1), remove={"c-master-0"})


def test_delete_removes_all_and_releases() -> None:
    s = spec(1, 1, NodeGroupSpec(name="gpu", node_count=1, driver="other"))
    done = apply(Recorded("c"), plan(Recorded("c"), s))
    p = plan(done, None)
    assert sorted(p.nodes(Action.REMOVE)) == ["c-gpu-0", "c-master-0", "c-node-0"]
    assert {s.driver for s in p.of(Action.RELEASE)} == {"fake", "other"}
    assert all(not s.leave for s in p.of(Action.REMOVE))


def test_node_group_removed_and_restart() -> None:
    s = spec(1, 1, NodeGroupSpec(name="extra", node_count=2))
    done = apply(Recorded("c"), plan(Recorded("c"), s))
    p = plan(done, spec(1, 1), restart={"c-node-0"})
    assert sorted(p.nodes(Action.REMOVE)) == ["c-extra-0", "c-extra-1"]
    assert p.nodes(Action.RESTART) == ["c-node-0"]


def test_stopped_nodes_restart_first_one_at_a_time_managers_first() -> None:
    # A change over stopped nodes (their dockerd died): they come back before anything
    # that needs an engine or could take their address, one at a time, the manager
    # first; a node the change removes is not restarted.
    done = apply(Recorded("c"), plan(Recorded("c"), spec(1, 2)))
    p = plan(done, spec(1, 2), restart={"c-node-0", "c-master-0", "c-node-1"})
    restarts = [s.id for s in p.of(Action.RESTART)]
    assert restarts == ["restart:c-master-0", "restart:c-node-0", "restart:c-node-1"]
    steps = {s.id: s for s in p.steps}
    assert steps["restart:c-node-0"].requires == ("restart:c-master-0",)
    grown = plan(done, spec(1, 3), restart={"c-master-0", "c-node-1"})
    shrunk = plan(
        done,
        spec(
            1,
            1,
        ),
        remove={"c-node-0"},
        restart={"c-master-0", "c-node-0"},
    )
    assert [s.node for s in shrunk.of(Action.RESTART)] == ["c-master-0"]
    for q in (grown, shrunk):
        for s in q.steps:
            if s.action in (Action.CREATE, Action.JOIN, Action.REMOVE):
                assert q.of(Action.RESTART)[-1].id in s.requires, s


def test_no_provision_has_no_swarm_steps() -> None:
    s = spec(1, 2, no_provision=True)
    p = plan(Recorded("c"), s)
    assert {st.action for st in p.steps} == {Action.PREPARE, Action.CREATE}
    assert plan(apply(Recorded("c"), p), s).empty


group_counts = st.lists(st.integers(0, 4), min_size=0, max_size=3)


@st.composite
def specs(draw: st.DrawFn) -> ClusterSpec:
    masters = draw(st.integers(1, 3))
    workers = draw(st.integers(0, 4))
    extra = tuple(
        NodeGroupSpec(name=f"g{i}", node_count=c) for i, c in enumerate(draw(group_counts))
    )
    return spec(masters, workers, *extra, no_provision=draw(st.booleans()))


@settings(max_examples=150, deadline=None)
@given(st.lists(specs(), min_size=1, max_size=5), st.data())
def test_any_sequence_converges(sequence: list[ClusterSpec], data: st.DataObject) -> None:
    recorded = Recorded("c")
    for desired in sequence:
        desired = desired.model_copy(update={"no_provision": sequence[0].no_provision})
        before = {g: len(recorded.in_group(g)) for g in {n.group for n in recorded.nodes}}
        names = [n.name for n in recorded.nodes]
        named = (
            set(data.draw(st.lists(st.sampled_from(names), max_size=2, unique=True)))
            if names
            else set()
        )
        try:
            p = plan(recorded, desired, remove=named)
        except PlanError:
            p = plan(recorded, desired)
        # never more removed than asked
        for g, count in before.items():
            wanted = desired.group(g).node_count if desired.has_group(g) else 0
            removed = sum(1 for s in p.of(Action.REMOVE) if s.group == g)
            assert removed <= max(count - wanted, 0)
        # a run killed at any step, then re-planned, converges too
        steps = [s.id for s in p.steps]
        if steps and data.draw(st.booleans()):
            cut = data.draw(st.sampled_from(steps))
            recorded = apply(recorded, p, fail={cut})
            p = plan(recorded, desired)
        recorded = apply(recorded, p)
        assert plan(recorded, desired).empty
        assert any(n.role == Role.MANAGER for n in recorded.nodes)
        counts = {g.name: len(recorded.in_group(g.name)) for g in desired.nodegroups}
        assert counts == {g.name: g.node_count for g in desired.nodegroups}


def test_planning_1000_nodes_in_5_groups_is_fast() -> None:
    groups = tuple(NodeGroupSpec(name=f"g{i}", node_count=200) for i in range(3))
    big = spec(3, 397, *groups)
    assert big.master_count + big.node_count == 1000 and len(big.nodegroups) == 5
    started = time.perf_counter()
    p = plan(Recorded("c"), big)
    assert len(p.of(Action.CREATE)) == 1000
    assert time.perf_counter() - started < 5  # the figure itself comes from bench/plan.py
