"""Machine use cases: lone Docker hosts with docker-machine's verbs.

A machine is planned like a cluster of one node without a COE: create and rm are
plans run by the same lifecycle. The other verbs (start, stop, restart, kill,
regenerate-certs, snapshot) act on one node, a lone machine or a cluster's node,
under the lock of whatever owns it, with the driver options of that owner.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from flotte import certificates, contexts, listing
from flotte.drivers.base import Driver
from flotte.engine.executor import errors_line
from flotte.errors import AlreadyExists, PlanFailed, UsageError
from flotte.models import DOCKER_ENV, EngineOptions, NodeSpec, NodeState, Role
from flotte.planner import Plan, Recorded, RecordedNode, plan
from flotte.service import migration_imported as imported
from flotte.service import options as opts
from flotte.service.installation import Installation
from flotte.service.lifecycle import Runner
from flotte.specs import ClusterSpec, machine_spec
from flotte.state.node_rows import delete_node, set_node
from flotte.state.records import Node
from flotte.state.status import CREATING, FAILED, REMOVING

# Clusters, spec resolution and engine checks are imported where used: ``machine ls``
# loads this module and needs none of them.
OnPlan = Callable[[Plan], None]


def _quiet(p: Plan) -> None:
    return None


class Machines:
    def __init__(self, inst: Installation) -> None:
        self.inst = inst
        self.store = inst.store
        # Scopes whose lock this object holds for re-signing engines, with how many
        # re-signs share the hold (a CA rotation re-signs a cluster's nodes at once).
        self._resigning: dict[tuple[str, str], tuple[contextlib.ExitStack, int]] = {}

    # -- reading ------------------------------------------------------------------------
    def all(self) -> list[Node]:
        return self.store.nodes()

    def get(self, name: str) -> Node:
        return self.store.node(name)

    def desired(self, name: str) -> ClusterSpec:
        """A lone machine's recorded spec (its options hold no secret)."""
        return self.store.machine_spec(name)

    def lone(self, name: str) -> Node:
        node = self.store.node(name)
        if node.cluster:
            raise UsageError(
                f"{name!r} is a node of cluster {node.cluster!r}",
                hint=f"use 'flotte cluster resize {node.cluster} --nodes-to-remove {name}'",
            )
        return node

    def recorded(self, name: str) -> Recorded:
        node = self.store.find_node(name)
        if node is None:
            return Recorded(name, "machine")
        return Recorded(
            name,
            "machine",
            exists=True,
            nodes=(
                RecordedNode(
                    name,
                    node.group,
                    Role.MACHINE,
                    0,
                    node.driver,
                    node.status,
                    created=node.record is not None,
                    provisioned=node.endpoint is not None,
                    host=node.host,
                ),
            ),
            prepared=frozenset(self.store.machine_shared(name)),
        )

    def runner(
        self,
        node: Node,
        recorded: tuple[ClusterSpec, dict[str, dict[str, Any]]] | None = None,
    ) -> Runner:
        """A runner for the owner of ``node`` (its cluster, or itself), with its secrets;
        a lone machine's spec and shared resources ``recorded`` if already read."""
        if node.cluster:
            cluster = self.store.cluster(node.cluster)
            secrets = self.inst.options.load("clusters", node.cluster)
            return Runner(
                self.inst,
                cluster.spec,
                secrets=secrets,
                shared=cluster.shared,
                coe_data=cluster.coe_data,
            )
        spec, shared = recorded or (
            self.store.machine_spec(node.name),
            self.store.machine_shared(node.name),
        )
        secrets = self.inst.options.load("machines", node.name)
        return Runner(self.inst, spec, secrets=secrets, shared=shared)

    def driver(self, node: Node) -> Driver:
        return self.runner(node).driver(node.driver)

    # -- create and rm --------------------------------------------------------------------
    def spec(
        self,
        name: str,
        driver: str,
        flags: Mapping[str, Any],
        engine: EngineOptions,
        *,
        no_provision: bool = False,
    ) -> tuple[ClusterSpec, dict[str, Any]]:
        """The machine's spec and secret options; only ``driver``'s flags are kept."""
        from flotte.models import check_name
        from flotte.provision import engine_config
        from flotte.service.resolve import build, check_driver

        check_name("machine", name)
        check_driver(driver)
        engine_config.validate(engine, allow_insecure=engine.insecure)
        options = opts.only([driver], flags)
        where = opts.placement(driver)
        host = options.pop(where, None) if where else None
        public, secret = opts.split([driver], options)
        spec = machine_spec(name, driver, public, engine, host=host, no_provision=no_provision)
        return build(ClusterSpec, spec.model_dump(), f"machine {name}"), secret

    async def create(
        self,
        spec: ClusterSpec,
        secrets: dict[str, Any] | None = None,
        *,
        rollback: bool = True,
        dry_run: bool = False,
        on_plan: OnPlan = _quiet,
    ) -> Node:
        name = spec.name
        with self.inst.lock("machine", name):
            existing = self.store.find_node(name)
            if existing is not None and (existing.status != CREATING or existing.cluster):
                owner = f" (a node of cluster {existing.cluster!r})" if existing.cluster else ""
                raise AlreadyExists(
                    f"machine {name!r} already exists{owner}",
                    hint="remove it first or choose another name",
                )
            if self.store.find_cluster(name) is not None:
                raise AlreadyExists(f"{name!r} is already the name of a cluster")
            if existing is not None:  # a killed create: resume what was asked then
                spec = self.store.machine_spec(name)
                secrets = self.inst.options.load("machines", name)
            runner = Runner(
                self.inst,
                spec,
                secrets=secrets or {},
                shared=self.store.machine_shared(name),
            )
            p = plan(self.recorded(name), spec)
            on_plan(p)
            if dry_run:
                return Node(name, spec.driver, None, "default", Role.MACHINE, status="planned")
            group = runner.group_spec(spec.driver, p)
            await runner.driver(spec.driver).check(group)
            if existing is None:
                self.inst.options.save("machines", name, secrets or {})
                self.store.add_machine(spec, CREATING)
            steps, result = await runner.run(p, operation="create")
            if result.ok:
                return self.store.node(name)
            if not rollback:
                self.store.now(set_node, name, status=FAILED, status_reason=errors_line(result))
                raise PlanFailed(
                    f"creating machine {name} failed (left as is: --no-rollback)", result.errors
                )
            await runner.rollback(steps, result)
            driver = runner.driver(spec.driver)
            await driver.sweep(runner.owner)
            await driver.release(group, runner.shared.get(spec.driver, {}))
            self.store.now(delete_node, name)
            self.inst.options.forget("machines", name)
            raise PlanFailed(f"creating machine {name} failed and was rolled back", result.errors)

    async def remove(self, name: str, *, force: bool = False, purge: bool = False) -> Plan:
        node = self.lone(name)
        with self.inst.lock("machine", name):
            if imported.forgets(node):  # not flotte's host: only flotte's record goes
                imported.forget(self.inst, name)
                return plan(Recorded(name, "machine"), None)
            runner = self.runner(node)
            runner.purge = purge
            p = plan(self.recorded(name), None)
            self.store.now(set_node, name, status=REMOVING)
            _, result = await runner.run(p, operation="delete")
            if result.errors and not force:
                self.store.now(set_node, name, status=FAILED, status_reason=errors_line(result))
                raise PlanFailed(
                    f"removing machine {name} failed",
                    result.errors,
                )
            imported.forget(self.inst, name)  # record, secrets, copied keys, context
            return p

    # -- one node's verbs -----------------------------------------------------------------
    def _lock(self, node: Node) -> Any:
        kind, owner = node.scope
        return self.inst.lock(kind, owner)

    async def state(self, node: Node, driver: Callable[[], Driver] | None = None) -> NodeState:
        """``driver``: makes the node's driver when asked (default: its owner's)."""
        if imported.forgets(node) and node.endpoint is not None and node.status != CREATING:
            from flotte import dockerapi  # a host flotte does not drive: ask its engine

            ctx = dockerapi.ssl_context(self.inst.ca, node.endpoint.tls_dir)
            if await dockerapi.ping(node.endpoint, ctx, timeout=3.0):
                return NodeState.RUNNING
        return await listing.node_state(node, driver or (lambda: self.driver(node)))

    async def states(self, nodes: list[Node]) -> list[NodeState]:
        """Every node's state, with one driver per owner (``ls``)."""
        # lone machines' specs in one query: two queries per machine cost 2,000 for 1,000
        lone = self.store.machine_specs() if any(not n.cluster for n in nodes) else {}

        def driver_of(node: Node) -> Driver:
            runner = self.runner(node, None if node.cluster else lone.get(node.name))
            return runner.driver(node.driver)

        return await listing.states(nodes, driver_of, self.state)

    async def action(self, name: str, action: str) -> Node:
        """start, stop, restart or kill a machine or a cluster's node."""
        node = self.store.node(name)
        imported.refuse_change(node, action)
        driver = self.driver(node)
        caps = driver.capabilities
        if action in ("start", "stop", "restart") and not caps.start_stop:
            raise UsageError(f"the {node.driver} driver cannot {action} machines")
        if action == "kill" and not caps.kill:
            raise UsageError(f"the {node.driver} driver cannot kill machines")
        if node.record is None:
            raise UsageError(f"machine {name!r} was never made (status {node.status})")
        with self._lock(node):
            record = node.record
            if action == "stop":
                await driver.stop(record)
            elif action == "kill":
                await driver.kill(record)
            else:
                method = driver.start if action == "start" else driver.restart
                record = await method(record)
                endpoint = imported.keep_tls(node.endpoint, driver.endpoint(record))
                node = self.store.now(set_node, name, record=record, endpoint=endpoint)
                await self._remesh(node)
                if not node.cluster:
                    imported.write_context(self.inst, name, endpoint)
            return node

    async def regenerate_certs(self, name: str, *, client_certs: bool = False) -> Node:
        node = self.store.node(name)
        imported.refuse_change(node, "regenerating the certificates of")
        if node.record is None:
            raise UsageError(f"machine {name!r} has no engine to re-sign (status {node.status})")
        if client_certs:
            certificates.renew_client(self.inst.ca)  # flotte's contexts get it too
        runner = self.runner(node)
        driver = runner.driver(node.driver)
        async with self._resign_hold(node):
            owner = runner.owner
            spec = NodeSpec(
                name=name,
                role=node.role,
                owner=owner,
                driver=node.driver,
                options={},
                engine=node.engine if node.cluster else runner.spec.engine,
                group=node.group,
                index=node.index,
                host=node.host,
            )
            endpoint = await driver.provision(spec, node.record, spec.engine)
            node = self.store.now(set_node, name, endpoint=endpoint, record=node.record)
            await self._remesh(node, runner, rotate=True)
            if not node.cluster:
                contexts.write(name, endpoint.docker_url, self.inst.ca, f"flotte machine {name}")
            elif node.role == Role.MANAGER:
                # A re-signed engine may restart on another address (the local driver
                # restarts its container), and two nodes restarted at once may swap
                # theirs: the cluster's context follows its managers. Each manager's
                # re-sign writes it, so the last to finish leaves their new addresses.
                from flotte.service.clusters import Clusters

                Clusters(self.inst).write_context(node.cluster)
            return node

    async def _remesh(
        self, node: Node, runner: Runner | None = None, *, rotate: bool = False
    ) -> None:
        """A node of a meshed cluster that restarted (or gets a new mesh key with its
        certificates) is set up again, and every other member with it."""
        if not node.cluster:
            return
        runner = runner or self.runner(node)
        if runner.mesh and runner.mesh.indices():
            runner.reload()
            live = list(runner.members().values())
            await runner.mesh.refresh(live, [node.name] if rotate else [])

    @contextlib.asynccontextmanager
    async def _resign_hold(self, node: Node) -> AsyncIterator[None]:
        """The node's lock, shared by re-signs of the same cluster's nodes at once.

        Re-signing touches only each node's own engine certificate, so a CA rotation
        re-signs a cluster's nodes side by side under one hold of the cluster's lock;
        any other command (from this process too) still waits for it.
        """
        scope = node.scope
        held = self._resigning.get(scope)
        if held is None:
            stack = contextlib.ExitStack()
            stack.enter_context(self._lock(node))
            held = (stack, 0)
        self._resigning[scope] = (held[0], held[1] + 1)
        try:
            yield
        finally:
            stack, count = self._resigning[scope]
            if count == 1:
                del self._resigning[scope]
                stack.close()
            else:
                self._resigning[scope] = (stack, count - 1)

    async def snapshot(self, name: str, image_name: str) -> str:
        node = self.store.node(name)
        driver = self.driver(node)
        snap = getattr(driver, "snapshot", None)
        if not driver.capabilities.snapshot or snap is None:
            raise UsageError(f"the {node.driver} driver cannot snapshot machines")
        if node.record is None:
            raise UsageError(f"machine {name!r} was never made (status {node.status})")
        with self._lock(node):
            return str(await snap(node.record, image_name))

    def shell(self, name: str, command: list[str]) -> list[str]:
        node = self.store.node(name)
        if node.record is None:
            raise UsageError(f"machine {name!r} was never made (status {node.status})")
        imported.refuse_shell(node)
        return self.driver(node).shell_command(node.record, command)

    def env(self, name: str) -> dict[str, str]:
        """DOCKER_* variables that point the docker CLI at a machine or a cluster."""
        node = self.store.find_node(name)
        if node is None:
            from flotte.service.clusters import Clusters

            endpoint = Clusters(self.inst).endpoint(name)
        elif node.endpoint is None:
            raise UsageError(f"machine {name!r} has no Docker engine yet (status {node.status})")
        else:
            endpoint = node.endpoint
        certs = endpoint.tls_dir or str(self.inst.ca.client.directory)
        # in DOCKER_ENV's order: TLS_VERIFY, HOST, CERT_PATH, MACHINE_NAME
        return dict(zip(DOCKER_ENV, ("1", endpoint.docker_url, certs, name), strict=True))

    async def engine_versions(self, nodes: list[Node], timeout: float = 3.0) -> dict[str, str]:
        """Docker version of each engine, asked in parallel (for ``ls``)."""
        found = await listing.engine_versions(nodes, self.inst.ca, timeout)
        # asked anyway: keep the recorded version (inspect, cluster pages) current
        self.inst.store.set_engine_versions(listing.changed_versions(nodes, found))
        return found

    async def errors(self, nodes: list[Node], timeout: float = 3.0) -> dict[str, str]:
        """``ls``'s ERRORS column (``listing.errors``)."""
        return await listing.errors(nodes, self.inst.ca, timeout)
