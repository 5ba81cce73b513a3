"""From facts to a verdict, and from a verdict to what healing may do now. Pure: no I/O.

``assess`` turns what a round read (``health_probe``) into each node's health, the
swarm's quorum and Magnum's ``health_status`` / ``health_status_reason``.
``decide`` chooses which nodes a heal restarts or replaces, under the storm limits
when healing runs by itself (``flotte watch``):

- a node is acted on only when the previous check saw it bad too (one bad answer
  is not enough), and not within ``GRACE`` seconds of its last heal;
- at most one replacement per node group at a time, and at most a third of a group
  (at least one node) acted on per round;
- a node (or the node that replaced it) healed twice within ``WINDOW`` seconds and
  bad again is left UNHEALTHY with its reason: healing it again would loop forever;
- nothing is done while the swarm has lost its quorum, and a manager whose restart
  would lose the quorum is not restarted.

A heal asked for by hand (``flotte cluster heal``) skips the first three rules: the
operator has looked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flotte.coe.probe import Member
from flotte.models import NodeState, Role
from flotte.service.health_probe import NodeFacts, SwarmFacts
from flotte.service.lifecycle import swarm_hostname
from flotte.state.records import ClusterRecord, Node
from flotte.state.status import HEALTHY, IN_PROGRESS, READY, UNHEALTHY, UNKNOWN

GRACE = 30.0  # seconds after a heal during which its node is left to settle
WINDOW = 86400.0  # heal attempts older than this (a day) are forgotten
MAX_ATTEMPTS = 2  # heals within WINDOW after which a node is left to an operator
OK = "ok"

# How each driver's console names a node and a node that is gone (for reasons only).
NOUNS = {
    "local": ("container", "gone"),
    "openstack": ("server", "gone (deleted)"),
    "ec2": ("instance", "terminated or gone"),
    "ssh": ("host", "gone"),
}

RESTART, REPLACE, WAIT, OPERATOR, RESUME = "restart", "replace", "wait", "operator", "resume"


@dataclass
class NodeHealth:
    name: str
    group: str
    role: str
    driver: str
    status: str = "healthy"  # healthy | unhealthy | unknown
    reason: str = OK
    action: str = ""  # restart | replace | wait | operator | resume | ""
    engine: str = ""  # "ok", why not, or "" (no engine)
    engine_version: str = ""  # what the engine said it is this round ("" if it did not)
    swarm: str = ""  # the swarm's word: ready, down, unknown...
    availability: str = ""
    manager: str = ""  # leader | reachable | unreachable | unknown
    provider: str = ""  # the driver's state, when it was asked
    pressure: dict[str, Any] | None = None
    replaceable: bool = True  # its driver makes nodes (ssh hosts are not flotte's to make)
    given_up: bool = False  # healed MAX_ATTEMPTS times within WINDOW and bad again

    def view(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "nodegroup": self.group,
            "role": self.role,
            "driver": self.driver,
            "health": self.status,
            "reason": self.reason,
            "action": self.action,
            "engine": self.engine,
            "engine_version": self.engine_version or None,
            "swarm": self.swarm,
            "availability": self.availability,
            "manager": self.manager,
            "provider": self.provider,
            "pressure": self.pressure,
            "given_up": self.given_up,
        }


@dataclass
class Quorum:
    managers: int
    reachable: int
    leader: str = ""

    @property
    def needed(self) -> int:
        return self.managers // 2 + 1

    @property
    def can_lose(self) -> int:
        """How many more managers may be lost before the swarm stops (-1: lost already)."""
        return self.reachable - self.needed if self.reachable >= self.needed else -1

    def view(self) -> dict[str, Any]:
        return {
            "managers": self.managers,
            "reachable": self.reachable,
            "needed": self.needed,
            "can_lose": self.can_lose,
            "leader": self.leader,
        }


@dataclass
class ClusterHealth:
    name: str
    status: str
    reason: dict[str, str]
    nodes: list[NodeHealth]
    quorum: Quorum | None = None
    swarm_error: str = ""
    cluster_status: str = ""
    previous: dict[str, str] = field(default_factory=dict)  # the reason recorded before
    previous_status: str = ""
    seconds: float = 0.0
    calls: dict[str, int] = field(default_factory=dict)
    members: list[Member] = field(default_factory=list)  # the swarm's node list, as read

    def node(self, name: str) -> NodeHealth | None:
        return next((n for n in self.nodes if n.name == name), None)

    def view(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "health_status": self.status,
            "health_status_reason": self.reason,
            "status": self.cluster_status,
            "quorum": self.quorum.view() if self.quorum else None,
            "nodes": [n.view() for n in self.nodes],
            "seconds": round(self.seconds, 3),
            "calls": self.calls,
        }


def _member(node: Node, f: NodeFacts, swarm: SwarmFacts) -> Member | None:
    listed = swarm.members or []
    if f.engine is not None and f.engine.node_id:
        found = next((m for m in listed if m.id == f.engine.node_id), None)
        if found is not None:
            return found
    name = swarm_hostname(node.record) if node.record else node.name
    same = [m for m in listed if m.hostname == name]
    # a Down twin left by an interrupted join sits beside the Ready entry
    return next((m for m in same if m.state == "ready"), same[0] if same else None)


def _unhealthy(h: NodeHealth, reason: str, action: str) -> None:
    h.status, h.reason, h.action = "unhealthy", reason, action


def _judge_engine_down(h: NodeHealth, node: Node, f: NodeFacts, adopt: bool) -> None:
    """The engine did not answer (or the node has none): what does the provider say?"""
    noun, gone = NOUNS.get(node.driver, ("node", "gone"))
    engine = f"engine: {f.engine_error}; " if f.engine_error else ""
    p = f.provider
    if p is None:
        h.status, h.action = "unknown", ""
        h.reason = f"unknown: {engine}{noun} state not read ({f.provider_error or 'not asked'})"
    elif p == NodeState.RUNNING:
        if node.endpoint is None:
            h.status, h.reason = "healthy", OK  # no engine wanted (--no-provision)
        else:
            _unhealthy(h, f"{engine}{noun} running: the engine needs a restart", RESTART)
    elif p == NodeState.STOPPED:
        if adopt:
            _unhealthy(h, f"{engine}the Docker service is stopped on the {noun}", RESTART)
        else:
            _unhealthy(h, f"{engine}{noun} stopped", REPLACE)
    elif p == NodeState.NOT_FOUND:
        _unhealthy(h, f"{engine}{noun} {gone}", OPERATOR if adopt else REPLACE)
    elif p == NodeState.ERROR:
        if adopt:
            _unhealthy(h, f"{engine}{noun} unreachable over SSH (not made by flotte)", OPERATOR)
        else:
            _unhealthy(h, f"{engine}{noun} in ERROR", REPLACE)
    elif p in (NodeState.STARTING, NodeState.STOPPING):
        _unhealthy(h, f"{engine}{noun} {p.value.lower()}", WAIT)
    else:
        h.status, h.action = "unknown", ""
        h.reason = f"unknown: {engine}{noun} state {p.value}"


def _judge(node: Node, f: NodeFacts, swarm: SwarmFacts, adopt: bool, swarm_id: str) -> NodeHealth:
    h = NodeHealth(node.name, node.group, node.role.value, node.driver, replaceable=not adopt)
    h.provider = f.provider.value if f.provider is not None else ""
    h.pressure = f.pressure.view() if f.pressure else None
    m = _member(node, f, swarm)
    if m is not None:
        h.swarm, h.availability = m.state, m.availability
        h.manager = "leader" if m.leader else m.reachability
    if f.engine is None:
        h.engine = f.engine_error or ("" if node.endpoint is None else "not asked")
        _judge_engine_down(h, node, f, adopt)
        return h
    h.engine = OK
    e = f.engine
    h.engine_version = e.version
    fix = OPERATOR if adopt else REPLACE
    if e.swarm_state == "locked":
        _unhealthy(h, "swarm locked (autolock): unlock it with 'docker swarm unlock'", OPERATOR)
    elif e.swarm_state != "active":
        why = f": {e.error}" if e.error else ""
        _unhealthy(h, f"the engine answers but is not in the swarm ({e.swarm_state}{why})", fix)
    elif swarm_id and e.cluster_id and e.cluster_id != swarm_id:
        _unhealthy(h, f"the engine is a manager of another swarm ({e.cluster_id[:12]})", fix)
    elif swarm.members is not None and m is None:
        _unhealthy(h, "the swarm's managers do not list it", fix)
    elif m is not None and m.state != "ready":
        why = f" ({m.message})" if m.message else ""
        _unhealthy(h, f"swarm: {m.state}{why} while its engine answers", RESTART)
    elif f.pressure is not None and f.pressure.problem():
        _unhealthy(h, f.pressure.problem(), OPERATOR)
    return h


def _quorum(nodes: list[Node], facts: Mapping[str, NodeFacts], swarm: SwarmFacts) -> Quorum:
    if swarm.members is not None:
        managers = [m for m in swarm.members if m.role == "manager"]
        reachable = sum(1 for m in managers if m.reachability == "reachable")
        leader = next((m.hostname for m in managers if m.leader), "")
        return Quorum(len(managers), reachable, leader)
    recorded = [n for n in nodes if n.role == Role.MANAGER]
    answering = sum(1 for n in recorded if (e := facts[n.name].engine) and e.manager)
    return Quorum(len(recorded), 0 if swarm.no_leader else answering)


def assess(
    cluster: ClusterRecord,
    nodes: list[Node],
    facts: Mapping[str, NodeFacts],
    swarm: SwarmFacts,
    adopting: Mapping[str, bool],
    history: Mapping[str, History],
    now: float,
) -> ClusterHealth:
    """Each node's health and the cluster's, with Magnum's reason map (node -> reason).

    A node healed ``MAX_ATTEMPTS`` times within ``WINDOW`` that is bad again is marked
    given up: its reason says so, and only a heal asked for by hand touches it again.
    """
    spec = cluster.spec
    busy = cluster.status in IN_PROGRESS
    swarm_id = str(cluster.coe_data.get("swarm_id") or "")
    result: list[NodeHealth] = []
    for node in nodes:
        if node.status != READY:
            h = NodeHealth(node.name, node.group, node.role.value, node.driver)
            if busy:
                h.status, h.reason = "unknown", f"unknown: being made ({cluster.status})"
            else:
                _unhealthy(h, f"left half-made ({node.status}) by an earlier run", RESUME)
            result.append(h)
            continue
        adopt = adopting.get(node.driver, False)
        result.append(_judge(node, facts[node.name], swarm, adopt, swarm_id))
    for h in result:
        past = history.get(h.name)
        recent = past.recent(now) if past else []
        if (
            h.status == "unhealthy"
            and h.action in (RESTART, REPLACE)
            and len(recent) >= MAX_ATTEMPTS
        ):
            assert past is not None
            h.given_up = True
            h.reason = (
                f"{h.reason}; healed {len(recent)} times and bad again (last: {past.last}): "
                f"left for an operator ('flotte cluster heal {cluster.name}' tries again)"
            )
    reason = {h.name: h.reason for h in result}
    quorum: Quorum | None = None
    if spec.coe and not spec.no_provision:
        quorum = _quorum(nodes, facts, swarm)
        if quorum.managers and quorum.can_lose < 0:
            reason["swarm"] = (
                f"quorum lost: {quorum.reachable} of {quorum.managers} managers reachable, "
                f"{quorum.needed} needed ({swarm.error or 'no leader'}); recover by hand with "
                "'docker swarm init --force-new-cluster' on a surviving manager"
            )
        elif swarm.members is None and nodes:
            reason["swarm"] = f"unknown: the swarm's node list was not read ({swarm.error})"
    if not busy:
        for g in spec.nodegroups:
            have = sum(1 for n in nodes if n.group == g.name)
            if have < g.node_count:
                reason[f"nodegroup:{g.name}"] = (
                    f"{have} of {g.node_count} nodes: heal makes the rest"
                )
    bad = any(v != OK and not v.startswith("unknown") for v in reason.values())
    doubt = any(v.startswith("unknown") for v in reason.values())
    status = UNHEALTHY if bad else UNKNOWN if doubt or not nodes else HEALTHY
    return ClusterHealth(
        cluster.name,
        status,
        reason,
        result,
        quorum,
        swarm.error,
        cluster_status=cluster.status,
        previous=dict(cluster.health_status_reason),
        previous_status=cluster.health_status,
        members=swarm.members or [],
    )


# -- what to do ----------------------------------------------------------------------------
@dataclass
class History:
    """A node's heals (kept in the cluster's ``coe_data["healing"]``, carried over to the
    node that replaces it)."""

    attempts: list[float] = field(default_factory=list)  # epoch seconds
    action: str = ""
    last: str = ""  # the reason it was healed for, or how its heal failed

    def recent(self, now: float) -> list[float]:
        return [t for t in self.attempts if now - t < WINDOW]

    def to_dict(self) -> dict[str, Any]:
        return {"attempts": self.attempts, "action": self.action, "last": self.last}

    @classmethod
    def from_dict(cls, data: Any) -> History:
        if not isinstance(data, dict):
            return cls()
        attempts = [float(t) for t in data.get("attempts", []) if isinstance(t, int | float)]
        return cls(attempts, str(data.get("action", "")), str(data.get("last", "")))


@dataclass
class Decision:
    replace: list[str] = field(default_factory=list)
    restart: list[str] = field(default_factory=list)
    converge: bool = False  # a group is short or a node half-made: the plan finishes them
    deferred: dict[str, str] = field(default_factory=dict)  # node -> why not this round
    given_up: dict[str, str] = field(default_factory=dict)  # node -> reason left UNHEALTHY

    @property
    def acts(self) -> bool:
        return bool(self.replace or self.restart or self.converge)

    def view(self) -> dict[str, Any]:
        return {
            "replace": self.replace,
            "restart": self.restart,
            "converge": self.converge,
            "deferred": self.deferred,
            "given_up": self.given_up,
        }


def decide(
    health: ClusterHealth,
    history: Mapping[str, History],
    now: float,
    *,
    auto: bool,
    group_sizes: Mapping[str, int],
) -> Decision:
    """Which nodes to restart or replace now (see the module's rules)."""
    d = Decision()
    d.converge = any(k.startswith("nodegroup:") for k in health.reason) or any(
        n.action == RESUME for n in health.nodes
    )
    q = health.quorum
    if q is not None and q.managers and q.can_lose < 0:
        for n in health.nodes:
            if n.status == "unhealthy":
                d.deferred[n.name] = "the swarm has lost its quorum: nothing can join it"
        d.converge = False
        return d
    wanted: list[tuple[NodeHealth, str]] = []
    for n in health.nodes:
        if n.status != "unhealthy" or n.action not in (RESTART, REPLACE):
            continue
        h = history.get(n.name, History())
        recent = h.recent(now)
        action = n.action
        if action == RESTART and h.action == RESTART and recent and n.engine != OK:
            # a restart did not hold: make a new node where the driver can
            action = REPLACE if n.replaceable else RESTART
        if auto:
            if recent and now - max(recent) < GRACE:
                d.deferred[n.name] = f"healed {now - max(recent):.0f} s ago: left to settle"
                continue
            if n.given_up:
                d.given_up[n.name] = n.reason
                continue
            if health.previous.get(n.name, OK) == OK:
                d.deferred[n.name] = "seen bad once: healed if still bad at the next check"
                continue
        if (
            action == RESTART
            and n.role == Role.MANAGER.value
            and n.engine == OK
            and q is not None
            and q.can_lose < 1
            and n.manager == "reachable"
        ):
            d.deferred[n.name] = "restarting this manager would lose the swarm's quorum"
            continue
        wanted.append((n, action))
    for group in sorted({n.group for n, _ in wanted}):
        size = group_sizes.get(group, 0)
        budget = max(1, size // 3) if auto else len(wanted)
        replacements = 1 if auto else len(wanted)
        for n, action in sorted((x for x in wanted if x[0].group == group), key=_order):
            if budget <= 0:
                d.deferred[n.name] = (
                    f"storm limit: at most {max(1, size // 3)} of the {size} nodes of "
                    f"{group} per round"
                )
            elif action == REPLACE and replacements <= 0:
                d.deferred[n.name] = f"storm limit: one replacement in {group} at a time"
            else:
                budget -= 1
                if action == REPLACE:
                    replacements -= 1
                    d.replace.append(n.name)
                else:
                    d.restart.append(n.name)
    return d


def _order(item: tuple[NodeHealth, str]) -> tuple[int, str]:
    # restarts first: they are cheap and leave the replacement slot to the next round
    return (0 if item[1] == RESTART else 1, item[0].name)
