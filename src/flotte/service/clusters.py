"""Cluster use cases: create, change (resize, node groups, apply), delete.

Each one, under the cluster's lock: read what is recorded, plan the change
(``planner.plan``), hand the plan to whoever asked to see it (``on_plan``: the CLI
prints it, the API returns it), stop there on a dry run, else record the desired
state and run that same plan. Statuses are Magnum's.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from typing import Any

from flotte import contexts
from flotte.engine.executor import errors_line
from flotte.errors import AlreadyExists, Busy, NotFound, PlanFailed, UsageError
from flotte.models import Role
from flotte.planner import Action, Plan, Recorded, RecordedNode, plan
from flotte.service.installation import Installation
from flotte.service.lifecycle import Runner, swarm_hostname
from flotte.service.stopped import stopped_nodes
from flotte.specs import WORKER_GROUP, ClusterSpec
from flotte.state.database import StateError
from flotte.state.node_rows import clusters_of
from flotte.state.records import ClusterRecord
from flotte.state.status import (
    CREATE_COMPLETE,
    CREATE_FAILED,
    CREATE_IN_PROGRESS,
    DELETE_FAILED,
    DELETE_IN_PROGRESS,
    HEALTHY,
    IN_PROGRESS,
    READY,
    UNFINISHED,
    UPDATE_COMPLETE,
    UPDATE_FAILED,
    UPDATE_IN_PROGRESS,
)

OnPlan = Callable[[Plan], None]


def _quiet(p: Plan) -> None:
    return None


class Clusters:
    """Cluster use cases over an installation."""

    def __init__(self, inst: Installation) -> None:
        self.inst = inst
        self.store = inst.store

    # -- reading ------------------------------------------------------------------------
    def recorded(self, name: str) -> Recorded:
        cluster = self.store.find_cluster(name)
        if cluster is None:
            return Recorded(name)
        nodes = tuple(
            RecordedNode(
                name=n.name,
                group=n.group,
                role=n.role,
                index=n.index,
                driver=n.driver,
                status=n.status,
                created=n.record is not None,
                provisioned=n.endpoint is not None,
                host=n.host,
            )
            for n in self.store.nodes(cluster=name)
        )
        return Recorded(
            name,
            "cluster",
            exists=True,
            nodes=nodes,
            prepared=frozenset(cluster.shared),
            swarm=bool(cluster.coe_data.get("swarm_id")),
        )

    def get(self, name: str) -> ClusterRecord:
        return self.store.cluster(name)

    def runner(self, cluster: ClusterRecord | None, spec: ClusterSpec) -> Runner:
        secrets = self.inst.options.load("clusters", spec.name)
        return Runner(
            self.inst,
            spec,
            secrets=secrets,
            shared=cluster.shared if cluster else None,
            coe_data=cluster.coe_data if cluster else None,
        )

    # -- create ---------------------------------------------------------------------------
    async def create(
        self,
        spec: ClusterSpec,
        secrets: dict[str, Any] | None = None,
        *,
        rollback: bool = True,
        dry_run: bool = False,
        on_plan: OnPlan = _quiet,
        remove: Iterable[str] = (),
    ) -> Plan:
        """Create ``spec``; a cluster whose create was killed or failed is resumed.

        ``remove`` names half-made nodes to take out while resuming (an overflow group
        whose provider refused them)."""
        with self.inst.lock("cluster", spec.name):
            existing = self.store.find_cluster(spec.name)
            if existing is not None and existing.status not in (CREATE_IN_PROGRESS, CREATE_FAILED):
                raise AlreadyExists(
                    f"cluster {spec.name!r} already exists ({existing.status})",
                    hint="delete it first or choose another name",
                )
            if existing is None and self.store.find_node(spec.name) is not None:
                raise AlreadyExists(f"{spec.name!r} is already the name of a machine")
            if existing is not None:
                spec = existing.spec  # resume what was asked then
            p = plan(self.recorded(spec.name), spec, remove=remove)
            on_plan(p)
            if dry_run:
                return p
            self._check_names(spec.name, p)
            runner = (
                Runner(self.inst, spec, secrets=secrets or {})
                if existing is None
                else (self.runner(existing, spec))
            )
            await self._check_drivers(runner, p)
            if existing is None:
                self.inst.options.save("clusters", spec.name, secrets or {})
                self.store.add_cluster(spec, CREATE_IN_PROGRESS)
            else:
                self.store.set_status(spec.name, status=CREATE_IN_PROGRESS, status_reason="")
            started = time.monotonic()
            steps, result = await runner.run(p, operation="create")
            if result.ok:
                self._complete(
                    spec,
                    CREATE_COMPLETE,
                    f"ready in {time.monotonic() - started:.1f} s",
                )
                return p
            if not rollback:
                self._failed(spec.name, CREATE_FAILED, errors_line(result))
                raise PlanFailed(
                    f"creating cluster {spec.name} failed (resources kept: --no-rollback; "
                    f"re-run to resume or 'flotte cluster delete {spec.name}')",
                    result.errors,
                )
            await runner.rollback(steps, result)
            await self._sweep(runner, p)
            self.store.delete_cluster(spec.name)
            self.inst.options.forget("clusters", spec.name)
            raise PlanFailed(
                f"creating cluster {spec.name} failed and was rolled back", result.errors
            )

    def _complete(self, spec: ClusterSpec, status: str, reason: str) -> None:
        health: dict[str, Any] = {}
        swarm = not spec.no_provision and bool(spec.coe)
        nodes = self.store.nodes(cluster=spec.name) if swarm else []
        if nodes and all(n.status == READY for n in nodes):
            # A create (new or resumed) ends with swarm:ready seeing its nodes Ready, each
            # recorded so: the cluster's health is known with its status, so a client
            # that waits for CREATE_COMPLETE reads HEALTHY, not UNKNOWN until a check.
            health = {
                "health_status": HEALTHY,
                "health_status_reason": {
                    swarm_hostname(n.record): "ready" for n in nodes if n.record
                },
            }
        # One transaction: a kill cannot leave the cluster done and a node group not.
        self.store.set_status(spec.name, status=status, status_reason=reason, **health)
        if swarm:
            self.write_context(spec.name)

    def write_context(self, name: str) -> None:
        """The cluster's Docker context (``flotte-NAME``), at its first manager as recorded."""
        endpoint = self.endpoint(name)
        contexts.write(name, endpoint.docker_url, self.inst.ca_of(name), f"flotte cluster {name}")

    def _failed(self, name: str, status: str, reason: str) -> None:
        self.store.set_status(name, status=status, status_reason=reason, group_reason=reason)

    async def _sweep(self, runner: Runner, p: Plan) -> None:
        """After a rollback: anything made and never recorded goes, by its owner marks."""
        for driver in sorted({s.driver for s in p.steps if s.driver}):
            for instance in runner.instances(driver):
                await instance.sweep(runner.owner)
            d = runner.driver(driver)
            await d.release(runner.group_spec(driver), runner.shared.get(driver, {}))

    def _check_names(self, cluster: str, p: Plan) -> None:
        names = list(p.nodes(Action.CREATE))
        recorded = self.store.now(clusters_of, names)
        for node in names:
            if node in recorded and recorded[node] != cluster:
                raise AlreadyExists(
                    f"node {node!r} of cluster {cluster!r} would take the name of machine {node!r}",
                    hint="remove that machine, or choose another cluster or node group name",
                )

    async def _check_drivers(self, runner: Runner, p: Plan) -> None:
        """Every driver that will create nodes checks them before anything changes."""
        # One driver instance per node group: each checks its own credentials and quota.
        # One driver instance per node group (groups with the same options share one):
        # each checks its own credentials and quota, once.
        wanted = sorted({(s.driver, s.group or "") for s in p.of(Action.CREATE) if s.driver})
        checks: dict[int, tuple[str, list[str]]] = {}
        for driver, group in wanted:
            instance = runner.driver(driver, group or None)
            checks.setdefault(id(instance), (driver, []))[1].append(group)
        for driver, groups in checks.values():
            await runner.driver(driver, groups[0] or None).check(
                runner.group_spec(driver, p, tuple(g for g in groups if g))
            )
        if runner.mesh:  # nodes joined off the mesh cannot move onto it: said here
            runner.mesh.wanted(self.store.nodes(cluster=runner.spec.name), p)

    # -- change -------------------------------------------------------------------------
    async def change(
        self,
        name: str,
        edit: Callable[[ClusterSpec], ClusterSpec],
        *,
        remove: Iterable[str] = (),
        replace: Iterable[str] = (),
        restart: Iterable[str] = (),
        secrets: dict[str, Any] | None = None,
        rollback: bool = True,
        dry_run: bool = False,
        on_plan: OnPlan = _quiet,
        touched: Iterable[str] | None = None,
        operation: str = "update",
        locked: bool = False,
    ) -> Plan:
        """Converge cluster ``name`` to ``edit(its desired spec)``.

        ``touched`` names the node groups whose status follows the change (default:
        every group the plan touches); ``operation`` names the run in the journal.
        ``locked``: the caller already holds the cluster's lock (heal decides what to
        replace and runs it under one lock, so no other command slips between).
        """
        with contextlib.nullcontext() if locked else self.inst.lock("cluster", name):
            cluster = self.store.cluster(name)
            if cluster.status in UNFINISHED:
                raise UsageError(
                    f"cluster {name!r} is {cluster.status}: finish it first "
                    f"(re-run 'flotte cluster create {name}') or delete it"
                )
            old = cluster.spec
            new = edit(old)
            remove, replace = tuple(remove), tuple(replace)
            if not old.no_provision:
                # a stopped node comes back first, so running the change again converges
                skip = {*remove, *replace}
                nodes = self.store.nodes(cluster=name)
                restart = {*restart, *await stopped_nodes(self.runner(cluster, old), nodes, skip)}
            p = plan(self.recorded(name), new, remove=remove, replace=replace, restart=restart)
            on_plan(p)
            if dry_run:
                return p
            if p.empty:
                if new != old:
                    self.store.set_desired(new)  # e.g. a max_node_count: nothing to run
                # A change killed after its last step, before its status: what is
                # recorded is what is wanted, so its re-run (or any change) finishes it.
                self.store.settle(name)
                return p
            self._check_names(name, p)
            if secrets:
                merged = {**self.inst.options.load("clusters", name), **secrets}
                self.inst.options.save("clusters", name, merged)
            runner = self.runner(cluster, new)
            await self._check_drivers(runner, p)
            groups = sorted(
                set(touched)
                if touched is not None
                else {s.group for s in p.steps if s.group}
                | {g.name for g in new.nodegroups if not old.has_group(g.name)}
            )
            # The new spec and its status in one transaction, and each status below in
            # one: wherever a kill lands, the statuses say whether a change is under way.
            self.store.set_desired(new, status=UPDATE_IN_PROGRESS, groups=groups)
            steps, result = await runner.run(p, operation=operation)
            if result.ok:
                reason = "; ".join(f"{k} {v}" for k, v in p.summary().items() if v)
                self.store.set_status(
                    name, status=UPDATE_COMPLETE, status_reason=reason, groups=groups
                )
                if p.of(Action.RESTART) and not new.no_provision and new.coe:
                    self.write_context(name)  # a restarted manager may have a new address
                return p
            removed = any(s.startswith("remove:") for s in result.results)
            error = errors_line(result)
            if rollback:
                await runner.rollback(steps, result)
            if rollback and not removed:  # nothing changed for good: back to before
                self.store.set_desired(old, status=UPDATE_FAILED, reason=error, group_reason=error)
            else:
                self.store.set_status(
                    name, status=UPDATE_FAILED, status_reason=error, group_reason=error
                )
            what = "and was rolled back" if rollback else "(re-run to converge)"
            raise PlanFailed(f"changing cluster {name} failed {what}", result.errors)

    def settle(self, name: str) -> None:
        """Record ``*_COMPLETE`` over a change of cluster ``name`` killed after its last
        step, when nothing is left to do; for a command about to answer that its work is
        done already ("already exists"), so it leaves no status saying otherwise. Does
        nothing while another command holds the cluster: its change is under way."""
        cluster = self.store.find_cluster(name)
        statuses = [g.status for g in cluster.nodegroups] if cluster else []
        if cluster is None or not any(s in IN_PROGRESS for s in [cluster.status, *statuses]):
            return
        with contextlib.suppress(Busy, StateError), self.inst.lock("cluster", name):
            again = self.store.find_cluster(name)
            if again is None or again.status in UNFINISHED:
                return  # deleted meanwhile, or a create or delete to re-run
            if plan(self.recorded(name), again.spec).empty:
                self.store.settle(name)

    async def resize(
        self,
        name: str,
        node_count: int,
        *,
        nodegroup: str | None = None,
        nodes_to_remove: Iterable[str] = (),
        hosts: Iterable[str] = (),
        dry_run: bool = False,
        on_plan: OnPlan = _quiet,
    ) -> Plan:
        """Magnum's resize: the node count of one node group (default-worker by default)."""
        if node_count < 0:
            raise UsageError(f"--node-count cannot be negative (got {node_count})")
        extra = tuple(hosts)
        target = nodegroup or WORKER_GROUP
        members = {n.name: n for n in self.store.nodes(cluster=name)}
        for node in nodes_to_remove:
            found = members.get(node)
            if found is not None and found.group != target:
                what = "a manager" if found.role == Role.MANAGER else "a node"
                raise UsageError(
                    f"node {node!r} is {what} of node group {found.group}, not of {target}",
                    hint=f"resize that group: --nodegroup {found.group}",
                )

        def edit(spec: ClusterSpec) -> ClusterSpec:
            group_name = target
            if not spec.has_group(group_name):
                raise NotFound(
                    f"cluster {name!r} has no node group {group_name!r}",
                    hint=f"see 'flotte cluster nodegroup list {name}'",
                )
            group = spec.group(group_name)
            from flotte.service.resolve import build
            from flotte.specs import NodeGroupSpec

            data = group.model_dump()
            data["node_count"] = node_count
            if extra:
                data["hosts"] = tuple(dict.fromkeys((*group.hosts, *extra)))
            return spec.with_group(build(NodeGroupSpec, data, f"node group {group_name}"))

        return await self.change(
            name,
            edit,
            remove=nodes_to_remove,
            dry_run=dry_run,
            on_plan=on_plan,
            touched=[nodegroup] if nodegroup else None,
        )

    async def converge(self, name: str, *, dry_run: bool = False, on_plan: OnPlan = _quiet) -> Plan:
        """Bring a cluster to its recorded desired state: finish a killed create, or an
        update that failed (``cluster plan NAME`` shows what this would do)."""
        cluster = self.store.cluster(name)
        if cluster.status in (CREATE_IN_PROGRESS, CREATE_FAILED):
            return await self.create(cluster.spec, dry_run=dry_run, on_plan=on_plan)
        return await self.change(name, lambda spec: spec, dry_run=dry_run, on_plan=on_plan)

    # -- delete -------------------------------------------------------------------------
    async def delete(self, name: str, *, dry_run: bool = False, on_plan: OnPlan = _quiet) -> Plan:
        with self.inst.lock("cluster", name):
            cluster = self.store.cluster(name)
            p = plan(self.recorded(name), None)
            on_plan(p)
            if dry_run:
                return p
            self.store.set_cluster(name, status=DELETE_IN_PROGRESS, status_reason="")
            self.store.set_groups_status(name, DELETE_IN_PROGRESS)
            runner = self.runner(cluster, cluster.spec)
            _, result = await runner.run(p, operation="delete")
            if result.errors:
                failure = PlanFailed(f"deleting cluster {name} failed", result.errors)
                self._failed(name, DELETE_FAILED, errors_line(result))
                raise failure
            contexts.remove(name)
            self.store.delete_cluster(name)
            self.inst.options.forget("clusters", name)
            return p

    # -- endpoints ----------------------------------------------------------------------
    def endpoint(self, name: str) -> Any:
        """The Docker endpoint of a cluster: its first manager that has one."""
        self.store.cluster(name)
        for node in self.store.nodes(cluster=name):
            if node.role == Role.MANAGER and node.endpoint is not None:
                return node.endpoint
        raise UsageError(f"cluster {name!r} has no manager with a Docker engine yet")
