"""Running a plan: each ``PlanStep`` becomes an executor step that calls a driver, the
swarm or the store, and records its outcome.

This is the one lifecycle of flotte: machine create and rm, cluster create, resize,
node group changes, apply, delete and heal all hand a ``Plan`` to ``Runner.run``. The
executor journals every step's intent and outcome; the runner records what each step
made (driver records, endpoints, shared resources) as soon as it exists, so a killed
run is resumed by planning again from what is recorded.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

from flotte import contexts, dockerapi
from flotte.coe.swarm import Swarm, Tokens
from flotte.drivers.base import Driver, GroupSpec
from flotte.engine.executor import RunResult, Step
from flotte.errors import ClusterError
from flotte.listing import group_of
from flotte.models import Endpoint, NodeRecord, NodeSpec, Owner, Role
from flotte.planner import Action, Plan, PlanStep
from flotte.service.installation import Installation
from flotte.service.mesh import Live, Mesh
from flotte.service.options import field_keys
from flotte.specs import ClusterSpec, NodeGroupSpec, node_options
from flotte.state.node_rows import add_node, delete_node, set_node
from flotte.state.records import Node
from flotte.state.status import CREATING, READY

_LABELS = {
    Action.PREPARE: "network",
    Action.CREATE: "create",
    Action.PROVISION: "engine",
    Action.INIT: "swarm init",
    Action.JOIN: "swarm join",
    Action.READY: "ready",
    Action.RESTART: "restart",
    Action.REMOVE: "remove",
    Action.RELEASE: "release",
}


def swarm_hostname(record: NodeRecord) -> str:
    """The name Swarm knows a node by: its own hostname (adopted servers keep theirs)."""
    return str(record.data.get("hostname") or record.name)


def provisioned_version(record: NodeRecord) -> str:
    """The engine version the SSH provisioner read when it made the node a Docker host."""
    done = record.data.get("provision")
    version = done.get("docker_version") if isinstance(done, dict) else None
    return version if isinstance(version, str) else ""


class Runner:
    """Runs the plans of one cluster or lone machine."""

    def __init__(
        self,
        inst: Installation,
        spec: ClusterSpec,
        *,
        secrets: dict[str, Any] | None = None,
        shared: dict[str, dict[str, Any]] | None = None,
        coe_data: dict[str, Any] | None = None,
    ) -> None:
        self.inst = inst
        self.store = inst.store
        self.spec = spec
        self.machine = spec.kind == "machine"
        self.owner: Owner = (
            inst.owner(machine=spec.name) if self.machine else inst.owner(cluster=spec.name)
        )
        self.secrets = secrets or {}
        self.shared: dict[str, dict[str, Any]] = dict(shared or {})
        self.ca = inst.ca_of(None if self.machine else spec.name)
        self.swarm = Swarm(self.ca)
        self.records: dict[str, NodeRecord] = {}
        self.endpoints: dict[str, Endpoint] = {}
        self.nodes: dict[str, Node] = {}
        self._tokens: Tokens | None = None
        self._token_lock = asyncio.Lock()
        self._leaves = asyncio.Semaphore(16)
        self._doomed: set[str] = set()
        self._live: str | None = None  # the manager that answered, for this run
        self._holder: str | None = (coe_data or {}).get("manager")  # where the swarm began
        self.purge = False  # REMOVE: also undo what flotte installed on adopted hosts
        # the cross-site WireGuard mesh, for clusters over several sites (service/mesh.py)
        self.mesh = None if self.machine else Mesh(inst, spec, self.driver)
        self._meshed = False

    # -- what exists ----------------------------------------------------------------------
    def reload(self) -> None:
        found = (
            [self.store.find_node(self.spec.name)]
            if self.machine
            else self.store.nodes(cluster=self.spec.name)
        )
        self.nodes = {n.name: n for n in found if n is not None}
        for n in self.nodes.values():
            if n.record is not None:
                self.records[n.name] = n.record
            if n.endpoint is not None:
                self.endpoints[n.name] = n.endpoint

    def driver(self, name: str, group: str | None = None) -> Driver:
        """The driver ``name`` for the nodes of ``group``: one instance per node group.

        A group on the cluster's driver takes the cluster's options, then its own; a group
        on another driver (overflow onto another provider) only its own and the secrets.
        Without a group: the first group that uses the driver (shared resources).
        """
        g = self._group_of(name, group)
        options: dict[str, Any] = {}
        if name == self.spec.driver:
            options.update(self.spec.options)
        if g is not None:
            options.update(g.options)
        options.update(self.secrets)
        return self.inst.driver(name, options, ca=self.ca)

    def instances(self, driver: str) -> list[Driver]:
        """Every instance of ``driver`` the node groups use (one per distinct options):
        what sweeps by owner marks, so a group on another cloud leaks nothing."""
        found = {id(d): d for d in [self.driver(driver)]}
        for g in self.spec.nodegroups:
            if self.spec.driver_of(g) == driver:
                d = self.driver(driver, g.name)
                found.setdefault(id(d), d)
        return list(found.values())

    def _group_of(self, driver: str, group: str | None) -> NodeGroupSpec | None:
        if group is not None and self.spec.has_group(group):
            found = self.spec.group(group)
            if self.spec.driver_of(found) == driver:
                return found
        return group_of(self.spec, driver)  # none for the cluster's own driver

    def group_spec(
        self, driver: str, plan: Plan | None = None, groups: tuple[str, ...] = ()
    ) -> GroupSpec:
        """What the nodes of one driver (of these node groups, if named) share, with
        the nodes the plan will create."""
        nodes = tuple(
            self.node_spec(s)
            for s in (plan.of(Action.CREATE) if plan else [])
            if s.driver == driver and (not groups or s.group in groups)
        )
        roles = ("machine",) if self.machine else ("cluster", "manager", "worker")
        return GroupSpec(
            name=self.spec.name,
            owner=self.owner,
            options=self.driver(driver, groups[0] if groups else None).ctx.options,
            roles=roles,
            size=max(len(nodes), 1),
            nodes=nodes,
        )

    def _group(self, name: str | None) -> NodeGroupSpec:
        if name is not None and self.spec.has_group(name):
            return self.spec.group(name)
        return self.spec.nodegroups[0]

    def node_spec(self, step: PlanStep) -> NodeSpec:
        assert step.node is not None
        group = self._group(step.group)
        driver = step.driver or self.spec.driver_of(group)
        recorded = self.nodes.get(step.node)
        labels = tuple(f"{k}={v}" for k, v in group.labels.items())
        engine = dataclasses.replace(self.spec.engine, labels=self.spec.engine.labels + labels)
        return NodeSpec(
            name=step.node,
            role=step.role or (recorded.role if recorded else group.node_role),
            owner=self.owner,
            driver=driver,
            options=node_options(self.spec, group, field_keys(driver)),
            engine=engine,
            group=group.name,
            index=step.index if recorded is None else recorded.index,
            host=step.host if recorded is None else recorded.host,
        )

    # -- running ------------------------------------------------------------------------
    def steps(self, plan: Plan) -> list[Step]:
        self._doomed = set(plan.nodes(Action.REMOVE))
        self._live = None
        makers: dict[Action, Callable[[Plan, PlanStep], Step]] = {
            Action.PREPARE: self._prepare,
            Action.CREATE: self._create,
            Action.PROVISION: self._provision,
            Action.INIT: self._init,
            Action.JOIN: self._join,
            Action.READY: self._ready,
            Action.RESTART: self._restart,
            Action.REMOVE: self._remove,
            Action.RELEASE: self._release,
        }
        steps = [makers[s.action](plan, s) for s in plan.steps]
        return self.mesh.steps(steps, plan, self.members) if self._meshed and self.mesh else steps

    def members(self) -> dict[str, Live]:
        """The nodes that stay and have an engine: the mesh's members."""
        return {
            n: Live(node, self.records[n])
            for n, node in self.nodes.items()
            if n not in self._doomed and n in self.records and n in self.endpoints
        }

    def _addresses(self, node: str) -> tuple[str, str | None]:
        """Where ``node`` advertises itself to the swarm, and its data path: its mesh
        address on a meshed cluster, its cluster address otherwise."""
        mesh = self.mesh.address(node) if self._meshed and self.mesh else None
        return mesh or self.records[node].cluster_address, mesh

    async def run(self, plan: Plan, *, operation: str) -> tuple[list[Step], RunResult]:
        self.reload()
        self._meshed = bool(self.mesh and self.mesh.wanted(self.nodes.values(), plan))
        steps = self.steps(plan)
        max_parallel = min(
            (self.driver(d).capabilities.max_parallel for d in self._drivers(plan)), default=16
        )
        executor = self.inst.executor(max_parallel, self.owner.scope, operation)
        result = await executor.run(steps)
        self._executor = executor
        return steps, result

    async def rollback(self, steps: list[Step], result: RunResult) -> None:
        await self._executor.rollback(steps, result)

    def _drivers(self, plan: Plan) -> set[str]:
        return {s.driver for s in plan.steps if s.driver}

    def _step(
        self,
        s: PlanStep,
        run: Callable[[], Awaitable[Any]],
        undo: Callable[[], Awaitable[None]] | None = None,
        *,
        unbounded: bool = False,
    ) -> Step:
        who = s.node or self.spec.name
        label = f"{who} {_LABELS[s.action]}"
        return Step(s.id, run, s.requires, undo=undo, label=label, unbounded=unbounded)

    # -- step makers ----------------------------------------------------------------------
    def _prepare(self, plan: Plan, s: PlanStep) -> Step:
        assert s.driver is not None
        name = s.driver
        group = self.group_spec(name, plan)

        async def run() -> None:
            # check() ran in the use case, before anything was recorded
            self.shared[name] = await self.driver(name).prepare(group)
            self.store.set_shared(self.spec.name, name, self.shared[name])

        async def undo() -> None:
            await self.driver(name).release(group, self.shared.get(name, {}))
            self.store.set_shared(self.spec.name, name, None)

        return self._step(s, run, undo)

    def _create(self, plan: Plan, s: PlanStep) -> Step:
        spec = self.node_spec(s)

        async def run() -> None:
            if not self.machine:
                self.nodes[spec.name] = await self.store.soon(
                    add_node,
                    spec.name,
                    cluster=self.spec.name,
                    driver=spec.driver,
                    group=spec.group,
                    role=spec.role,
                    index=spec.index,
                    host=spec.host,
                    engine=spec.engine,
                    status=CREATING,
                )
            driver = self.driver(spec.driver, spec.group)
            record = await driver.create(spec, self.shared.get(spec.driver, {}))
            self.records[spec.name] = record
            # Without provisioning, a created node is as ready as it will get.
            status = READY if self.spec.no_provision else CREATING
            await self.store.soon(set_node, spec.name, record=record, status=status)

        async def undo() -> None:
            record = self.records.get(spec.name)
            if record is not None:
                await self.driver(spec.driver, spec.group).remove(record)
            if not self.machine:
                await self.store.soon(delete_node, spec.name)

        # A self-paced driver bounds its own calls and gathers creates: let all reach it.
        paced = self.driver(spec.driver).capabilities.self_paced
        return self._step(s, run, undo, unbounded=paced)

    def _provision(self, plan: Plan, s: PlanStep) -> Step:
        spec = self.node_spec(s)

        async def run() -> None:
            record = self.records[spec.name]
            endpoint = await self.driver(spec.driver, spec.group).provision(
                spec, record, spec.engine
            )
            self.endpoints[spec.name] = endpoint
            status = READY if self.machine else None
            version = provisioned_version(record)
            if not version and self.machine:
                # a cluster's nodes get theirs free from the swarm listing at "ready"
                version = await dockerapi.engine_version(endpoint, self.ca)
            await self.store.soon(
                set_node, spec.name, record=record, endpoint=endpoint, status=status,
                engine_version=version,
            )  # fmt: skip
            if self.machine:
                contexts.write(
                    spec.name, endpoint.docker_url, self.inst.ca, f"flotte machine {spec.name}"
                )

        return self._step(s, run)

    async def _tokens_from(self, manager: str) -> Tokens:
        async with self._token_lock:
            if self._tokens is None:
                self._tokens = await self.swarm.init(
                    self.endpoints[manager], *self._addresses(manager)
                )
                self._holder = manager
                recorded = self.store.find_cluster(self.spec.name)
                kept = recorded.coe_data if recorded else {}  # e.g. healing's history
                self.store.set_cluster(
                    self.spec.name,
                    coe_data={**kept, "swarm_id": self._tokens.cluster_id, "manager": manager},
                )
            return self._tokens

    def _managers(self) -> list[str]:
        return [
            n.name
            for n in sorted(self.nodes.values(), key=lambda n: n.index)
            if n.role == Role.MANAGER
            and n.status == READY
            and n.name not in self._doomed
            and n.name in self.endpoints
        ]

    async def _live_manager(self) -> str:
        """``_manager``, skipping managers whose engine does not answer (a dead manager
        that this plan does not replace is no place to send joins and removals)."""
        if self._live is None:
            ctx = dockerapi.ssl_context(self.ca)
            for name in self._managers():
                if await dockerapi.ping(self.endpoints[name], ctx, timeout=2.0):
                    self._live = name
                    break
        return self._live or self._manager()

    def _manager(self) -> str:
        """A manager that holds the swarm and stays: where joins and removals go.

        A Ready manager; else the one the swarm was started on (a create killed
        after ``swarm init`` has no Ready node yet).
        """
        managers = self._managers()
        if managers:
            return managers[0]
        holder = self._holder
        if holder and holder not in self._doomed and holder in self.endpoints:
            return holder
        raise ClusterError(f"cluster {self.spec.name!r} has no reachable manager")

    def _init(self, plan: Plan, s: PlanStep) -> Step:
        assert s.node is not None

        async def run() -> None:
            await self._tokens_from(str(s.node))

        return self._step(s, run)

    def _join(self, plan: Plan, s: PlanStep) -> Step:
        assert s.node is not None
        node = s.node

        async def run() -> None:
            manager = await self._live_manager()
            if manager == node:
                return  # the swarm was started here
            tokens = await self._tokens_from(manager)
            token = tokens.manager if s.role == Role.MANAGER else tokens.worker
            advertise, data_path = self._addresses(node)
            await self.swarm.join(
                self.endpoints[node],
                advertise,
                [self._addresses(manager)[0]],
                token,
                tokens.cluster_id,
                data_path,
            )

        async def undo() -> None:
            manager = await self._live_manager()
            if node in self.records:
                await self.swarm.remove(
                    self.endpoints[manager], None, swarm_hostname(self.records[node])
                )

        return self._step(s, run, undo)

    def _ready(self, plan: Plan, s: PlanStep) -> Step:
        names = [n for n in s.note.split(",") if n]

        async def run() -> None:
            manager = await self._live_manager()
            hostnames = {swarm_hostname(self.records[n]) for n in names}
            timeout = self.spec.create_timeout * 60
            listed = await self.swarm.wait_ready(self.endpoints[manager], hostnames, timeout)
            await self.swarm.prune(self.endpoints[manager], hostnames)
            # each Ready entry carries what its engine says it is: no call per node
            versions = {v["hostname"]: v["engine_version"] for v in listed if v["state"] == "ready"}
            await asyncio.gather(
                *(self.store.soon(set_node, n, status=READY, status_reason="",
                  engine_version=versions.get(swarm_hostname(self.records[n]), ""))
                  for n in names)
            )  # fmt: skip

        return self._step(s, run)

    def _restart(self, plan: Plan, s: PlanStep) -> Step:
        spec = self.node_spec(s)

        async def run() -> None:
            driver = self.driver(spec.driver, spec.group)
            record = await driver.restart(self.records[spec.name])
            endpoint = driver.endpoint(record)
            await self.store.soon(set_node, spec.name, record=record, endpoint=endpoint)
            # the steps after it (joins, removals) reach it where it is now
            self.records[spec.name], self.endpoints[spec.name] = record, endpoint

        return self._step(s, run)

    def _remove(self, plan: Plan, s: PlanStep) -> Step:
        assert s.node is not None and s.driver is not None
        node, driver_name = s.node, s.driver

        async def run() -> None:
            driver = self.driver(driver_name, s.group)
            record = self.records.get(node)
            if s.leave and self.spec.kind == "cluster" and record is not None:
                try:
                    manager = await self._live_manager()
                except ClusterError:
                    manager = ""
                if manager:
                    ends, host = self.endpoints, swarm_hostname(record)
                    async with self._leaves:  # swarm leaves stay bounded, removes may not
                        await self.swarm.remove(ends[manager], ends.get(node), host)
            if record is not None:
                await driver.remove(record, purge=self.purge)
            elif not driver.capabilities.adopt_existing:
                # A create killed before its record was written: the driver finds the
                # node by its name and owner marks.
                await driver.remove(NodeRecord(name=node, driver=driver_name))
            if not self.machine:
                await self.store.soon(delete_node, node)
            self.records.pop(node, None)
            self.endpoints.pop(node, None)
            if self._meshed and self.mesh:
                await self.mesh.forget(node, self.members())

        # A self-paced driver bounds its own calls and gathers removals: let all reach it.
        return self._step(s, run, unbounded=self.driver(driver_name).capabilities.self_paced)

    def _release(self, plan: Plan, s: PlanStep) -> Step:
        assert s.driver is not None
        name = s.driver

        async def run() -> None:
            driver = self.driver(name)
            # Anything a killed create made but never recorded is found by its marks.
            for instance in self.instances(name):
                await instance.sweep(self.owner)
            await driver.release(self.group_spec(name), self.shared.get(name, {}))
            self.shared.pop(name, None)
            if self.store.find_cluster(self.spec.name) or self.store.find_node(self.spec.name):
                self.store.set_shared(self.spec.name, name, None)
            if self.mesh and not self.store.nodes(cluster=self.spec.name):
                self.mesh.purge()  # the cluster is gone: no mesh key file left

        return self._step(s, run)
