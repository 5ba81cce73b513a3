"""The health verdicts and the healing rules, on facts as a round would read them.

``assess`` and ``decide`` are pure functions: these tests hand them the facts a round
reads from engines, the swarm and the provider, and check what a heal may do.
"""

from __future__ import annotations

from flotte.coe.probe import EngineInfo, Member
from flotte.models import Endpoint, NodeRecord, NodeState, Role
from flotte.service.health_probe import NodeFacts, SwarmFacts, parse_pressure
from flotte.service.health_rules import (
    GRACE,
    ClusterHealth,
    History,
    assess,
    decide,
)
from flotte.specs import ClusterSpec, NodeGroupSpec
from flotte.state.records import ClusterRecord, Node
from flotte.state.status import HEALTHY, UNHEALTHY, UPDATE_COMPLETE

NOW = 1_800_000_000.0
SWARM = "swarm-id-1"


def cluster(managers: int, workers: int, driver: str = "local") -> tuple[ClusterRecord, list[Node]]:
    spec = ClusterSpec(
        name="r",
        driver=driver,
        nodegroups=(
            NodeGroupSpec(name="default-master", role="master", node_count=managers),
            NodeGroupSpec(name="default-worker", role="worker", node_count=workers),
        ),
    )
    record = ClusterRecord("r", "u", spec, UPDATE_COMPLETE, coe_data={"swarm_id": SWARM})
    nodes = [
        Node(
            f"r-{kind}-{i}",
            driver,
            "r",
            group,
            role,
            i,
            record=NodeRecord(f"r-{kind}-{i}", driver, addresses=[f"10.0.{n}.{i}"]),
            endpoint=Endpoint(f"10.0.{n}.{i}"),
        )
        for n, (kind, group, role, count) in enumerate(
            [
                ("master", "default-master", Role.MANAGER, managers),
                ("node", "default-worker", Role.WORKER, workers),
            ]
        )
        for i in range(count)
    ]
    return record, nodes


def healthy_facts(nodes: list[Node]) -> tuple[dict[str, NodeFacts], SwarmFacts]:
    facts, members = {}, []
    for n in nodes:
        manager = n.role == Role.MANAGER
        facts[n.name] = NodeFacts(
            engine=EngineInfo("20.10", "active", f"id-{n.name}", SWARM if manager else "", manager)
        )
        members.append(
            Member(
                f"id-{n.name}",
                n.name,
                "manager" if manager else "worker",
                "active",
                "ready",
                leader=n.name.endswith("master-0"),
                reachability="reachable" if manager else "",
            )
        )
    return facts, SwarmFacts(members, via=nodes[0].name)


def engine_down(facts: dict[str, NodeFacts], name: str, provider: NodeState) -> None:
    facts[name] = NodeFacts(engine_error="connection refused", provider=provider)


def seen_before(h: ClusterHealth) -> ClusterHealth:
    """As if the previous round had recorded the same verdict."""
    h.previous = dict(h.reason)
    return h


def judge(
    record: ClusterRecord,
    nodes: list[Node],
    facts: dict[str, NodeFacts],
    swarm: SwarmFacts,
    adopt: bool = False,
    history: dict[str, History] | None = None,
) -> ClusterHealth:
    return assess(record, nodes, facts, swarm, {record.driver: adopt}, history or {}, NOW)


def test_a_healthy_cluster_and_its_quorum() -> None:
    record, nodes = cluster(3, 2)
    h = judge(record, nodes, *healthy_facts(nodes))
    assert h.status == HEALTHY and set(h.reason.values()) == {"ok"}
    assert h.quorum is not None
    assert (h.quorum.managers, h.quorum.reachable, h.quorum.needed, h.quorum.can_lose) == (
        3,
        3,
        2,
        1,
    )
    assert h.quorum.leader == "r-master-0"
    d = decide(seen_before(h), {}, NOW, auto=True, group_sizes={"default-worker": 2})
    assert not d.acts


def test_engine_down_on_a_running_node_is_restarted_a_third_of_a_group_per_round() -> None:
    record, nodes = cluster(1, 9)
    facts, swarm = healthy_facts(nodes)
    for i in range(4):
        engine_down(facts, f"r-node-{i}", NodeState.RUNNING)
    h = seen_before(judge(record, nodes, facts, swarm))
    assert h.status == UNHEALTHY
    assert (
        h.reason["r-node-0"]
        == "engine: connection refused; container running: the engine needs a restart"
    )
    # what each engine said it is this round; one that did not answer said nothing
    down, up = h.node("r-node-0"), h.node("r-node-4")
    assert down is not None and up is not None
    assert (down.engine_version, down.view()["engine_version"]) == ("", None)
    assert (up.engine_version, up.view()["engine_version"]) == ("20.10", "20.10")
    d = decide(h, {}, NOW, auto=True, group_sizes={"default-worker": 9})
    assert d.restart == ["r-node-0", "r-node-1", "r-node-2"] and d.replace == []
    assert d.deferred == {
        "r-node-3": "storm limit: at most 3 of the 9 nodes of default-worker per round"
    }
    by_hand = decide(h, {}, NOW, auto=False, group_sizes={"default-worker": 9})
    assert len(by_hand.restart) == 4 and not by_hand.deferred


def test_one_replacement_per_group_and_a_first_sighting_waits() -> None:
    record, nodes = cluster(1, 6)
    facts, swarm = healthy_facts(nodes)
    engine_down(facts, "r-node-0", NodeState.STOPPED)
    engine_down(facts, "r-node-1", NodeState.NOT_FOUND)
    h = judge(record, nodes, facts, swarm)
    assert h.reason["r-node-0"] == "engine: connection refused; container stopped"
    assert h.reason["r-node-1"] == "engine: connection refused; container gone"
    first = decide(h, {}, NOW, auto=True, group_sizes={"default-worker": 6})
    assert not first.acts and set(first.deferred) == {"r-node-0", "r-node-1"}
    d = decide(seen_before(h), {}, NOW, auto=True, group_sizes={"default-worker": 6})
    assert d.replace == ["r-node-0"]
    assert d.deferred == {"r-node-1": "storm limit: one replacement in default-worker at a time"}


def test_a_restart_that_did_not_hold_becomes_a_replacement_then_settles() -> None:
    record, nodes = cluster(1, 3)
    facts, swarm = healthy_facts(nodes)
    engine_down(facts, "r-node-2", NodeState.RUNNING)
    h = seen_before(judge(record, nodes, facts, swarm))
    old = {"r-node-2": History([NOW - 120], "restart", "engine down")}
    d = decide(h, old, NOW, auto=True, group_sizes={"default-worker": 3})
    assert d.replace == ["r-node-2"] and d.restart == []
    recent = {"r-node-2": History([NOW - GRACE / 2], "restart", "engine down")}
    d = decide(h, recent, NOW, auto=True, group_sizes={"default-worker": 3})
    assert not d.acts and d.deferred["r-node-2"].endswith("left to settle")


def test_healed_twice_and_bad_again_is_left_for_an_operator() -> None:
    record, nodes = cluster(1, 3)
    facts, swarm = healthy_facts(nodes)
    engine_down(facts, "r-node-1", NodeState.NOT_FOUND)
    past = {"r-node-1": History([NOW - 900, NOW - 300], "replace", "container gone")}
    h = seen_before(judge(record, nodes, facts, swarm, history=past))
    node = h.node("r-node-1")
    assert node is not None and node.given_up
    assert "healed 2 times and bad again" in h.reason["r-node-1"]
    d = decide(h, past, NOW, auto=True, group_sizes={"default-worker": 3})
    assert not d.acts and "r-node-1" in d.given_up
    assert decide(h, past, NOW, auto=False, group_sizes={}).replace == ["r-node-1"]


def test_quorum_lost_nothing_is_done() -> None:
    record, nodes = cluster(3, 1)
    facts, _ = healthy_facts(nodes)
    engine_down(facts, "r-master-1", NodeState.NOT_FOUND)
    engine_down(facts, "r-master-2", NodeState.NOT_FOUND)
    swarm = SwarmFacts(
        error="r-master-0: HTTP 503: The swarm does not have a leader", no_leader=True
    )
    h = seen_before(judge(record, nodes, facts, swarm))
    assert h.status == UNHEALTHY
    assert h.quorum is not None and h.quorum.can_lose == -1
    assert h.reason["swarm"].startswith("quorum lost: 0 of 3 managers reachable, 2 needed")
    d = decide(h, {}, NOW, auto=False, group_sizes={})
    assert not d.acts
    assert d.deferred["r-master-1"] == "the swarm has lost its quorum: nothing can join it"


def test_a_manager_whose_restart_would_lose_quorum_is_left() -> None:
    record, nodes = cluster(3, 1)
    facts, swarm = healthy_facts(nodes)
    assert swarm.members is not None
    engine_down(facts, "r-master-2", NodeState.NOT_FOUND)
    members = {m.hostname: m for m in swarm.members}
    members["r-master-2"] = Member("id-r-master-2", "r-master-2", "manager", "active", "down",
                                   reachability="unreachable")  # fmt: skip
    members["r-master-1"] = Member("id-r-master-1", "r-master-1", "manager", "active", "down",
                                   reachability="reachable")  # fmt: skip
    h = seen_before(judge(record, nodes, facts, SwarmFacts(list(members.values()))))
    assert h.quorum is not None and h.quorum.can_lose == 0
    d = decide(h, {}, NOW, auto=True, group_sizes={"default-master": 3})
    assert d.replace == ["r-master-2"]
    assert d.deferred == {"r-master-1": "restarting this manager would lose the swarm's quorum"}


def test_ssh_hosts_are_restarted_never_replaced() -> None:
    record, nodes = cluster(1, 2, driver="ssh")
    facts, swarm = healthy_facts(nodes)
    engine_down(facts, "r-node-0", NodeState.STOPPED)  # dockerd stopped, host answers SSH
    engine_down(facts, "r-node-1", NodeState.ERROR)  # host unreachable
    h = seen_before(judge(record, nodes, facts, swarm, adopt=True))
    assert (
        h.reason["r-node-0"]
        == "engine: connection refused; the Docker service is stopped on the host"
    )
    assert "host unreachable over SSH" in h.reason["r-node-1"]
    d = decide(h, {}, NOW, auto=False, group_sizes={})
    assert d.restart == ["r-node-0"] and d.replace == []
    past = {"r-node-0": History([NOW - 120], "restart", "stopped")}
    again = decide(h, past, NOW, auto=True, group_sizes={"default-worker": 2})
    assert again.restart == ["r-node-0"]  # nothing to replace a host with


def test_pressure_is_read_from_df_and_meminfo() -> None:
    out = (
        "Filesystem     1024-blocks     Used Available Capacity Mounted on\n"
        "/dev/vda         100000000 95000000   4000000      96% /var/lib/docker\n"
        "MemTotal:       8000000 kB\n"
        "MemAvailable:    200000 kB\n"
    )
    p = parse_pressure(out)
    assert p is not None
    assert round(p.disk_used_pct) == 96 and p.mem_available_mb == 195
    assert p.problem().startswith("disk pressure: 96% of the Docker disk used")
    assert "memory pressure: 2.5% available" in p.problem()
    assert parse_pressure("garbage\n") is None
    record, nodes = cluster(1, 1)
    facts, swarm = healthy_facts(nodes)
    facts["r-node-0"].pressure = p
    h = judge(record, nodes, facts, swarm)
    assert h.status == UNHEALTHY and h.node("r-node-0").action == "operator"  # type: ignore[union-attr]
