"""The planner: ``plan(recorded, desired) -> Plan``. Pure: no I/O, no clock, no drivers.

What exists is ``Recorded`` (read from the state store by the service); what the user
wants is a ``ClusterSpec`` (or None, to delete). The plan is a graph of steps, each
naming the node, node group and driver it concerns and the steps it needs first, so
that ``--dry-run``, ``cluster plan``, the web page's preview and the executor all use
the same value (Terraform's plan/apply split; a controller's desired-vs-observed loop).

Rules the property tests hold it to:
- applying a plan and planning again gives an empty plan (convergence);
- a cluster never loses its last manager;
- no node group loses more nodes than asked (shrink surplus plus named replacements);
- a node that a killed run left half-made is resumed from where it stopped, never made
  twice (its create step adopts what exists).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from flotte.errors import PlanError
from flotte.models import Role
from flotte.specs import ClusterSpec, NodeGroupSpec, node_name
from flotte.state.status import CREATING, READY


class Action(StrEnum):
    PREPARE = "prepare"  # shared resources of one driver: network, security group, key
    CREATE = "create"  # make the node, or adopt what a killed run made
    PROVISION = "provision"  # a TLS Docker engine on the node
    INIT = "swarm-init"  # the first manager starts the swarm
    JOIN = "swarm-join"
    READY = "swarm-ready"  # wait until the swarm lists the new nodes Ready
    RESTART = "restart-engine"  # heal a node whose engine stopped
    REMOVE = "remove"  # drain, leave the swarm, delete the node's infrastructure
    RELEASE = "release"  # delete one driver's shared resources, sweep by owner marks


@dataclass(frozen=True, slots=True)
class RecordedNode:
    """What the store knows of one node."""

    name: str
    group: str
    role: Role
    index: int = 0
    driver: str = ""
    status: str = READY
    created: bool = True  # the driver's record of it exists
    provisioned: bool = True  # its engine answered once (an endpoint is recorded)
    host: str | None = None

    @property
    def joined(self) -> bool:
        return self.status == READY


@dataclass(frozen=True)
class Recorded:
    """What the store knows of one cluster or machine."""

    name: str
    kind: str = "cluster"  # cluster | machine
    exists: bool = False
    nodes: tuple[RecordedNode, ...] = ()
    prepared: frozenset[str] = frozenset()  # drivers whose shared resources are recorded
    swarm: bool = False  # a swarm was initialised

    def in_group(self, group: str) -> list[RecordedNode]:
        return sorted((n for n in self.nodes if n.group == group), key=lambda n: n.index)


@dataclass(frozen=True, slots=True)
class PlanStep:
    """One thing to do. ``id`` is unique in its plan; ``requires`` names other ids."""

    id: str
    action: Action
    node: str | None = None
    group: str | None = None
    driver: str | None = None
    role: Role | None = None
    index: int = 0
    host: str | None = None
    requires: tuple[str, ...] = ()
    note: str = ""  # why: new, resume, shrink, replace, delete...
    leave: bool = True  # REMOVE: leave the swarm first (not when the whole cluster goes)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "action": self.action.value}
        for key in ("node", "group", "driver", "host", "note"):
            value = getattr(self, key)
            if value:
                out[key] = value
        if self.role is not None:
            out["role"] = self.role.value
        if self.requires:
            out["requires"] = list(self.requires)
        return out


@dataclass(frozen=True)
class Plan:
    """The steps that take recorded state to desired state, as data."""

    name: str
    kind: str  # cluster | machine
    operation: str  # create | update | delete
    steps: tuple[PlanStep, ...]
    desired: ClusterSpec | None = field(default=None, compare=False)

    @property
    def empty(self) -> bool:
        return not self.steps

    def of(self, action: Action) -> list[PlanStep]:
        return [s for s in self.steps if s.action == action]

    def nodes(self, action: Action) -> list[str]:
        return [s.node for s in self.steps if s.action == action and s.node]

    def step(self, step_id: str) -> PlanStep:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)

    def summary(self) -> dict[str, int]:
        """How many nodes are created, adopted (resumed), removed, restarted."""
        resumed = {s.node for s in self.steps if s.note == "resume"}
        return {
            "create": sum(1 for s in self.of(Action.CREATE) if s.note != "resume"),
            "resume": len(resumed),
            "remove": len(self.of(Action.REMOVE)),
            "restart": len(self.of(Action.RESTART)),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "operation": self.operation,
            "summary": self.summary(),
            "steps": [s.to_dict() for s in self.steps],
        }


def plan(
    recorded: Recorded,
    desired: ClusterSpec | None,
    *,
    remove: Iterable[str] = (),
    replace: Iterable[str] = (),
    restart: Iterable[str] = (),
) -> Plan:
    """The plan from ``recorded`` to ``desired`` (None: delete everything).

    ``remove`` names nodes to take out first when a group shrinks (Magnum's
    ``nodes_to_remove``); ``replace`` names nodes to delete and make anew in their group
    (healing); ``restart`` names nodes whose engine only needs restarting.
    """
    if desired is None:
        return _delete(recorded)
    return _Planner(recorded, desired, set(remove), set(replace), set(restart)).build()


def _delete(recorded: Recorded) -> Plan:
    steps: list[PlanStep] = []
    by_driver: dict[str, list[str]] = {}
    for node in sorted(recorded.nodes, key=lambda n: n.name):
        sid = f"remove:{node.name}"
        steps.append(
            PlanStep(
                sid,
                Action.REMOVE,
                node=node.name,
                group=node.group,
                driver=node.driver,
                role=node.role,
                index=node.index,
                host=node.host,
                note="delete",
                leave=False,
            )
        )
        by_driver.setdefault(node.driver, []).append(sid)
    for driver in sorted(set(by_driver) | set(recorded.prepared)):
        steps.append(
            PlanStep(
                f"release:{driver}",
                Action.RELEASE,
                driver=driver,
                requires=tuple(by_driver.get(driver, ())),
                note="delete",
            )
        )
    return Plan(recorded.name, recorded.kind, "delete", tuple(steps))


class _Planner:
    def __init__(
        self,
        recorded: Recorded,
        desired: ClusterSpec,
        remove: set[str],
        replace: set[str],
        restart: set[str],
    ) -> None:
        self.r, self.d = recorded, desired
        self.remove, self.replace, self.restart = remove, replace, restart
        self.steps: list[PlanStep] = []
        self._restarts: tuple[str, ...] = ()  # what swarm steps and removals wait for
        self.swarm = desired.kind == "cluster" and desired.coe is not None
        self.provision = not desired.no_provision
        known = {n.name for n in recorded.nodes}
        for what, names in (("remove", remove), ("replace", replace), ("restart", restart)):
            missing = sorted(names - known)
            if missing:
                raise PlanError(
                    f"node {missing[0]!r} is not in cluster {desired.name!r}",
                    hint=f"cannot {what} it; see 'flotte cluster show {desired.name}'",
                )

    def build(self) -> Plan:
        d = self.d
        groups = {g.name for g in d.nodegroups}
        kept: list[tuple[NodeGroupSpec, RecordedNode]] = []
        new: list[tuple[NodeGroupSpec, int, str | None, str]] = []  # group, index, host, note
        doomed: list[tuple[RecordedNode, str]] = []
        # Nodes of groups that are no longer wanted go; so do their hosts.
        for node in self.r.nodes:
            if node.group not in groups:
                doomed.append((node, "node group removed"))
        for g in d.nodegroups:
            k, n, dm = self._group(g)
            kept += k
            new += n
            doomed += dm
        self._check_managers(kept, new, doomed)
        self._assign_hosts(kept, new, doomed)
        return self._steps(kept, new, doomed)

    def _group(
        self, g: NodeGroupSpec
    ) -> tuple[
        list[tuple[NodeGroupSpec, RecordedNode]],
        list[tuple[NodeGroupSpec, int, str | None, str]],
        list[tuple[RecordedNode, str]],
    ]:
        have = self.r.in_group(g.name)
        going = [n for n in have if n.name in self.replace]
        staying = [n for n in have if n.name not in self.replace]
        doomed: list[tuple[RecordedNode, str]] = [(n, "replace") for n in going]
        surplus = len(staying) - g.node_count
        named = [n for n in staying if n.name in self.remove]
        if len(named) > max(surplus, 0):
            raise PlanError(
                f"removing {len(named)} node(s) of {g.name} leaves "
                f"{len(staying) - len(named)}, not its node count {g.node_count}"
            )
        if surplus > 0:
            # Named nodes first, then broken ones, then the newest.
            rest = sorted(
                (n for n in staying if n.name not in self.remove),
                key=lambda n: (n.status == READY, -n.index),
            )
            chosen = named + rest[: surplus - len(named)]
            doomed += [(n, "shrink") for n in chosen]
            gone = {n.name for n in chosen}
            staying = [n for n in staying if n.name not in gone]
        kept = [(g, n) for n in staying]
        new: list[tuple[NodeGroupSpec, int, str | None, str]] = []
        used = {n.index for n in have}
        index = 0
        for i in range(max(g.node_count - len(staying), 0)):
            while index in used:
                index += 1
            used.add(index)
            note = f"replace {going[i].name}" if i < len(going) else "new"
            new.append((g, index, None, note))
        return kept, new, doomed

    def _check_managers(
        self,
        kept: list[tuple[NodeGroupSpec, RecordedNode]],
        new: list[tuple[NodeGroupSpec, int, str | None, str]],
        doomed: list[tuple[RecordedNode, str]],
    ) -> None:
        if self.d.kind != "cluster":
            return
        managers = sum(1 for _, n in kept if n.role == Role.MANAGER)
        managers += sum(1 for g, *_ in new if g.role == "master")
        if managers == 0:
            raise PlanError(f"this would remove the last manager of {self.d.name}")

    def _assign_hosts(
        self,
        kept: list[tuple[NodeGroupSpec, RecordedNode]],
        new: list[tuple[NodeGroupSpec, int, str | None, str]],
        doomed: list[tuple[RecordedNode, str]],
    ) -> None:
        """New nodes take the first hosts of their group that no kept node uses."""
        taken = {n.host for _, n in kept if n.host}
        for i, (g, index, _, note) in enumerate(new):
            if not g.hosts:
                continue
            free = [h for h in g.hosts if h not in taken]
            if not free:
                wanted = sum(1 for x in new if x[0].name == g.name)
                raise PlanError(
                    f"node group {g.name} needs {wanted} more host(s) and has none free: "
                    f"add hosts (--hosts) or lower its node count"
                )
            taken.add(free[0])
            new[i] = (g, index, free[0], note)

    # -- steps ------------------------------------------------------------------------
    def _add(self, step: PlanStep) -> str:
        self.steps.append(step)
        return step.id

    def _steps(
        self,
        kept: list[tuple[NodeGroupSpec, RecordedNode]],
        new: list[tuple[NodeGroupSpec, int, str | None, str]],
        doomed: list[tuple[RecordedNode, str]],
    ) -> Plan:
        d = self.d
        # Nodes to bring up: new ones, and kept ones a killed run left half-made.
        todo: list[tuple[NodeGroupSpec, RecordedNode, str]] = []
        for g, index, host, note in new:
            name = node_name(d.name, g.name, index)
            node = RecordedNode(
                name, g.name, g.node_role, index, d.driver_of(g), CREATING, False, False, host
            )
            todo.append((g, node, note))
        for g, n in kept:
            if (
                not n.created
                or (self.provision and not n.provisioned)
                or (self.swarm and self.provision and not n.joined)
            ):
                todo.append((g, n, "resume"))
        # Stopped nodes come back first (not those this plan removes): joins and removals
        # need engines, and a new local node would take a stopped one's address. One at
        # a time, managers first: a local node takes the lowest free address, its own.
        going = {n.name for n, _ in doomed}
        last: tuple[str, ...] = ()
        for node in sorted(self.r.nodes, key=lambda n: (n.role != Role.MANAGER, n.name)):
            if node.name in self.restart and node.name not in going:
                step = PlanStep(
                    f"restart:{node.name}",
                    Action.RESTART,
                    node=node.name,
                    group=node.group,
                    driver=node.driver,
                    role=node.role,
                    requires=last,
                    note="engine down",
                )
                last = (self._add(step),)
        self._restarts = last
        drivers = sorted({d.driver_of(g) for g, n, _ in todo if not n.created})
        prepare = {
            drv: self._add(PlanStep(f"prepare:{drv}", Action.PREPARE, driver=drv, note="shared"))
            for drv in drivers
            if drv not in self.r.prepared
        }
        provisioned: dict[str, str] = {}
        for g, n, note in todo:
            after: tuple[str, ...] = ()
            if not n.created:
                req: tuple[str, ...] = (prepare[n.driver],) if n.driver in prepare else ()
                req += self._restarts
                req += tuple(f"remove:{x.name}" for x, _ in doomed if n.host and x.host == n.host)
                after = (
                    self._add(
                        PlanStep(
                            f"create:{n.name}",
                            Action.CREATE,
                            node=n.name,
                            group=g.name,
                            driver=n.driver,
                            role=n.role,
                            index=n.index,
                            host=n.host,
                            requires=req,
                            note=note,
                        )
                    ),
                )
            if self.provision and not n.provisioned:
                after = (
                    self._add(
                        PlanStep(
                            f"provision:{n.name}",
                            Action.PROVISION,
                            node=n.name,
                            group=g.name,
                            driver=n.driver,
                            role=n.role,
                            requires=after,
                            note=note,
                        )
                    ),
                )
            provisioned[n.name] = after[0] if after else ""
        joins = self._swarm(kept, todo, provisioned) if self.swarm and self.provision else []
        reused = {r for s in self.steps if s.action == Action.CREATE for r in s.requires}
        self._removals(doomed, joins, reused)
        operation = "create" if not self.r.exists else "update"
        return Plan(d.name, d.kind, operation, tuple(self.steps), d)

    def _swarm(
        self,
        kept: list[tuple[NodeGroupSpec, RecordedNode]],
        todo: list[tuple[NodeGroupSpec, RecordedNode, str]],
        provisioned: dict[str, str],
    ) -> list[str]:
        joining = [(g, n, note) for g, n, note in todo if not n.joined]
        if not joining:
            return []
        init: tuple[str, ...] = ()
        first: str | None = None
        if not self.r.swarm:
            masters = sorted(
                (n for _, n, _ in joining if n.role == Role.MANAGER), key=lambda n: n.index
            ) or sorted((n for _, n in kept if n.role == Role.MANAGER), key=lambda n: n.index)
            if not masters:
                raise PlanError(f"{self.d.name} has no manager to start its swarm on")
            first = masters[0].name
            req = self._restarts + ((provisioned[first],) if provisioned.get(first) else ())
            init = (
                self._add(
                    PlanStep(
                        "swarm:init",
                        Action.INIT,
                        node=first,
                        group=masters[0].group,
                        driver=masters[0].driver,
                        role=Role.MANAGER,
                        requires=req,
                    )
                ),
            )
        joins = list(init)
        for g, n, note in joining:
            if n.name == first:
                continue
            after: tuple[str, ...] = (provisioned[n.name],) if provisioned.get(n.name) else ()
            joins.append(
                self._add(
                    PlanStep(
                        f"join:{n.name}",
                        Action.JOIN,
                        node=n.name,
                        group=g.name,
                        driver=n.driver,
                        role=n.role,
                        requires=init + self._restarts + after,
                        note=note,
                    )
                )
            )
        names = ",".join(n.name for _, n, _ in joining)
        ready = self._add(PlanStep("swarm:ready", Action.READY, requires=tuple(joins), note=names))
        return [ready]

    def _removals(
        self, doomed: list[tuple[RecordedNode, str]], ready: list[str], reused: set[str]
    ) -> None:
        # Managers leave one at a time, after any new manager is in: quorum never drops.
        # A manager whose host a new node takes must go first, or the plan would wait
        # on itself.
        previous: tuple[str, ...] = tuple(ready)
        for node, note in sorted(doomed, key=lambda x: (x[0].role != Role.MANAGER, x[0].name)):
            sid = f"remove:{node.name}"
            requires: tuple[str, ...] = self._restarts
            if node.role == Role.MANAGER:
                requires += tuple(r for r in previous if sid not in reused or r not in ready)
            self._add(
                PlanStep(
                    f"remove:{node.name}",
                    Action.REMOVE,
                    node=node.name,
                    group=node.group,
                    driver=node.driver,
                    role=node.role,
                    index=node.index,
                    host=node.host,
                    requires=requires,
                    note=note,
                )
            )
            if node.role == Role.MANAGER:
                previous = (sid,)
