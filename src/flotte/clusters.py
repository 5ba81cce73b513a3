"""Cluster use cases: create, resize, delete, with Magnum's statuses.

A cluster is a Swarm of managers and workers made by one driver. Creation is one plan:
shared resources, then every node created and provisioned in parallel, then the swarm
initialised on the first manager and joined by every other node as soon as that node's
engine answers. Every step is idempotent, so re-running a killed create converges.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from flotte import contexts
from flotte.coe.swarm import Swarm, Tokens
from flotte.drivers.base import Driver, GroupSpec
from flotte.engine.executor import Step
from flotte.errors import AlreadyExists, ClusterError, FlotteError, NotFound, PlanFailed, UsageError
from flotte.models import Endpoint, EngineOptions, NodeRecord, NodeSpec, Owner, Role, check_name
from flotte.provision import engine_config
from flotte.service import CREATING, READY, Service, endpoint_of, record_of
from flotte.state.lock import locked
from flotte.state.tables import Cluster, Machine

CREATE_IN_PROGRESS, CREATE_COMPLETE, CREATE_FAILED = (
    "CREATE_IN_PROGRESS",
    "CREATE_COMPLETE",
    "CREATE_FAILED",
)
UPDATE_IN_PROGRESS, UPDATE_COMPLETE, UPDATE_FAILED = (
    "UPDATE_IN_PROGRESS",
    "UPDATE_COMPLETE",
    "UPDATE_FAILED",
)
DELETE_IN_PROGRESS, DELETE_FAILED = "DELETE_IN_PROGRESS", "DELETE_FAILED"
COES = ("swarm",)

# Magnum ClusterTemplate fields flotte understands, with their defaults.
TEMPLATE_FIELDS: dict[str, Any] = {
    "coe": "swarm",
    "driver": "local",
    "image_id": None,
    "flavor_id": None,
    "master_flavor_id": None,
    "keypair_id": None,
    "external_network_id": None,
    "fixed_network": None,
    "fixed_subnet": None,
    "dns_nameserver": None,
    "docker_volume_size": None,
    "docker_storage_driver": None,
    "network_driver": "overlay",
    "labels": {},
    "insecure_registry": None,
    "registry_mirrors": [],
    "http_proxy": None,
    "https_proxy": None,
    "no_proxy": None,
    "tls_disabled": False,
    "public": False,
    "floating_ip_enabled": True,
    "server_type": "vm",
    "master_count": 1,
    "node_count": 1,
    "driver_options": {},
}


def node_name(cluster: str, role: Role, index: int) -> str:
    return f"{cluster}-{'master' if role == Role.MANAGER else 'node'}-{index}"


def _check_counts(master_count: int, node_count: int) -> None:
    if master_count < 1:
        raise UsageError(f"--master-count must be at least 1 (got {master_count})")
    if node_count < 0:
        raise UsageError(f"--node-count cannot be negative (got {node_count})")


def engine_from_template(spec: Mapping[str, Any]) -> EngineOptions:
    """Engine options a template implies (registry, storage driver, proxies, labels)."""
    env = []
    for key in ("http_proxy", "https_proxy", "no_proxy"):
        if spec.get(key):
            env.append(f"{key.upper()}={spec[key]}")
    insecure = spec.get("insecure_registry")
    return EngineOptions(
        labels=tuple(f"{k}={v}" for k, v in (spec.get("labels") or {}).items()),
        insecure_registries=(insecure,) if insecure else (),
        registry_mirrors=tuple(spec.get("registry_mirrors") or ()),
        env=tuple(env),
        storage_driver=spec.get("docker_storage_driver"),
    )


def cluster_endpoint(service: Service, name: str) -> Endpoint:
    """The Docker endpoint of a cluster: its first manager that has one."""
    service.store.cluster(name)
    for row in service.store.machines(cluster=name):
        if row.role == Role.MANAGER and row.endpoint:
            return Endpoint(**row.endpoint)
    raise UsageError(f"cluster {name!r} has no manager with a Docker engine yet")


class Clusters:
    """Cluster use cases over a ``Service``."""

    def __init__(self, service: Service) -> None:
        self.s = service
        self.store = service.store
        self.swarm = Swarm(service.ca)

    # -- templates ------------------------------------------------------------------------
    def create_template(self, name: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        check_name("template", name)
        unknown = set(fields) - set(TEMPLATE_FIELDS)
        if unknown:
            raise UsageError(f"unknown template field(s): {', '.join(sorted(unknown))}")
        spec = {**TEMPLATE_FIELDS, **{k: v for k, v in fields.items() if v is not None}}
        if spec["coe"] not in COES:
            raise UsageError(f"unknown COE {spec['coe']!r}: flotte forms {', '.join(COES)}")
        from flotte import drivers

        drivers.get(spec["driver"])  # unknown driver -> one clear line
        _check_counts(int(spec["master_count"]), int(spec["node_count"]))
        self.store.add_template(name, spec)
        return spec

    # -- create -----------------------------------------------------------------------------
    def resolve(
        self,
        *,
        template: str | None,
        driver: str | None,
        coe: str | None,
        master_count: int | None,
        node_count: int | None,
        options: Mapping[str, Any],
        labels: Mapping[str, str],
        engine: EngineOptions | None,
        timeout_min: float,
    ) -> dict[str, Any]:
        """Merge template and flags into the cluster's spec, validating everything."""
        base: dict[str, Any] = dict(TEMPLATE_FIELDS)
        if template:
            base.update(self.store.template(template).spec)
        elif not driver:
            raise UsageError("give --template NAME, or --driver (and --coe) to create without one")
        if driver:
            base["driver"] = driver
        if coe:
            base["coe"] = coe
        if base["coe"] not in COES:
            raise UsageError(f"unknown COE {base['coe']!r}: flotte forms {', '.join(COES)}")
        from flotte import drivers

        drivers.get(base["driver"])
        masters = master_count if master_count is not None else int(base["master_count"])
        workers = node_count if node_count is not None else int(base["node_count"])
        _check_counts(masters, workers)
        if timeout_min <= 0:
            raise UsageError(f"--timeout must be positive (got {timeout_min})")
        eng = engine_from_template({**base, "labels": {**base.get("labels", {}), **labels}})
        if engine is not None:
            eng = EngineOptions(
                opts=engine.opts,
                labels=eng.labels + engine.labels,
                insecure_registries=eng.insecure_registries + engine.insecure_registries,
                registry_mirrors=eng.registry_mirrors + engine.registry_mirrors,
                env=eng.env + engine.env,
                storage_driver=engine.storage_driver or eng.storage_driver,
                tls_sans=engine.tls_sans,
            )
        engine_config.validate(eng)
        opts = {**base.get("driver_options", {}), **dict(options)}
        manager_opts: dict[str, Any] = {}
        for opt in drivers.get(base["driver"]).options:
            # Template fields (image_id, flavor_id, ...) reach the driver option that
            # declares them; a flag given on the command line wins.
            field = opt.template_field
            if field and base.get(field) is not None and opts.get(opt.key) in (None, ""):
                opts[opt.key] = base[field]
            if field == "flavor_id" and base.get("master_flavor_id"):
                manager_opts[opt.key] = base["master_flavor_id"]
        return {
            "template": template,
            "driver": base["driver"],
            "coe": base["coe"],
            "master_count": masters,
            "node_count": workers,
            "timeout": timeout_min,
            "options": opts,
            "manager_options": manager_opts,
            "engine": eng.to_dict(),
            "labels": {**base.get("labels", {}), **labels},
            "template_fields": {k: base[k] for k in TEMPLATE_FIELDS if k in base},
        }

    def _node_specs(self, name: str, spec: Mapping[str, Any], owner: Owner) -> list[NodeSpec]:
        engine = EngineOptions.from_dict(spec["engine"])
        per_node: list[dict[str, Any]] = list(spec["options"].get("hosts_per_node") or [])
        out = []
        roles = [Role.MANAGER] * spec["master_count"] + [Role.WORKER] * spec["node_count"]
        counters = {Role.MANAGER: 0, Role.WORKER: 0}
        for i, role in enumerate(roles):
            opts = dict(spec["options"])
            opts.pop("hosts_per_node", None)
            if role == Role.MANAGER:
                opts.update(spec.get("manager_options") or {})
            if i < len(per_node):
                opts.update(per_node[i])
            n = node_name(name, role, counters[role])
            counters[role] += 1
            out.append(NodeSpec(n, role, owner, spec["driver"], opts, engine, group=role.value))
        return out

    async def create(
        self,
        name: str,
        spec: dict[str, Any],
        *,
        rollback: bool = True,
        no_provision: bool = False,
    ) -> Cluster:
        check_name("cluster", name)
        options = spec["options"]
        driver = self.s.driver(spec["driver"], options)
        with locked(self.s.paths.locks, "cluster", name, wait=self.s.lock_wait):
            existing = self.store.find_cluster(name)
            if existing is not None:
                if existing.status not in (CREATE_IN_PROGRESS, CREATE_FAILED):
                    raise AlreadyExists(
                        f"cluster {name!r} already exists ({existing.status})",
                        hint="delete it first or choose another name",
                    )
                # Resume a create that was killed or failed without rollback.
                spec = {
                    **existing.spec,
                    "options": self.s.load_options("clusters", name, existing.spec["options"]),
                }
                options = spec["options"]
                driver = self.s.driver(spec["driver"], options)
            elif self.store.find_machine(name) is not None:
                raise AlreadyExists(f"{name!r} is already the name of a machine")
            owner = Owner(cluster=name, installation=self.store.installation)
            group = GroupSpec(
                name=name,
                owner=owner,
                options=options,
                roles=("cluster", "manager", "worker"),
                size=spec["master_count"] + spec["node_count"],
            )
            await driver.check(group)
            if existing is None:
                public = self.s.save_options("clusters", name, spec["driver"], options)
                self.store.add_cluster(
                    Cluster(
                        name=name,
                        uuid=str(uuid.uuid4()),
                        driver=spec["driver"],
                        coe=spec["coe"],
                        template=spec.get("template"),
                        master_count=spec["master_count"],
                        node_count=spec["node_count"],
                        status=CREATE_IN_PROGRESS,
                        status_reason="",
                        spec={**spec, "options": public, "no_provision": no_provision},
                        shared={},
                        coe_data={},
                    )
                )
            else:
                no_provision = bool(existing.spec.get("no_provision"))
                self.store.update_cluster(name, status=CREATE_IN_PROGRESS, status_reason="")
            started = time.monotonic()
            nodes = self._node_specs(name, spec, owner)
            shared: dict[str, Any] = dict(existing.shared) if existing is not None else {}
            steps = self._create_steps(name, driver, group, shared, nodes, spec, no_provision)
            ex = self.s.executor(driver, f"cluster:{name}", "create")
            result = await ex.run(steps)
            if result.ok:
                if not no_provision:
                    ep = cluster_endpoint(self.s, name)
                    contexts.write(name, ep.docker_url, self.s.ca, f"flotte cluster {name}")
                reason = f"ready in {time.monotonic() - started:.1f} s"
                return self.store.update_cluster(name, status=CREATE_COMPLETE, status_reason=reason)
            failure = PlanFailed(f"creating cluster {name} failed", result.errors)
            if not rollback:
                self.store.update_cluster(name, status=CREATE_FAILED, status_reason=str(failure))
                raise PlanFailed(
                    f"creating cluster {name} failed (resources kept: --no-rollback; "
                    f"re-run to resume or 'flotte cluster delete {name}')",
                    result.errors,
                )
            await ex.rollback(steps, result)
            await driver.sweep(owner)
            await driver.release(group, shared)
            self.store.delete_cluster(name)
            self.s.forget_options("clusters", name)
            raise PlanFailed(f"creating cluster {name} failed and was rolled back", result.errors)

    def _create_steps(
        self,
        name: str,
        driver: Driver,
        group: GroupSpec,
        shared: dict[str, Any],
        nodes: list[NodeSpec],
        spec: Mapping[str, Any],
        no_provision: bool,
    ) -> list[Step]:
        records: dict[str, NodeRecord] = {}
        endpoints: dict[str, Endpoint] = {}
        tokens: list[Tokens] = []
        timeout = float(spec["timeout"]) * 60
        first = nodes[0]

        async def prepare() -> None:
            shared.update(await driver.prepare(group))
            self.store.update_cluster(name, shared=shared)

        async def unprepare() -> None:
            await driver.release(group, shared)

        steps = [Step("prepare", prepare, undo=unprepare, label=f"{name} network")]
        for node in nodes:
            steps += self._node_steps(name, driver, node, shared, records, endpoints, no_provision)
        if no_provision:
            return steps

        async def init() -> None:
            ep = endpoints[first.name]
            tokens.append(await self.swarm.init(ep, records[first.name].cluster_address))
            self.store.update_cluster(name, coe_data={"swarm_id": tokens[0].cluster_id})

        steps.append(
            Step("swarm:init", init, (f"provision:{first.name}",), label=f"{first.name} swarm init")
        )
        for node in nodes[1:]:
            steps.append(self._join_step(node, records, endpoints, tokens, first.name))

        async def ready() -> None:
            names = {swarm_hostname(records[n.name]) for n in nodes}
            await self.swarm.wait_ready(endpoints[first.name], names, timeout)
            for n in nodes:
                self.store.update_machine(n.name, status=READY)

        steps.append(
            Step(
                "swarm:ready",
                ready,
                ("swarm:init", *(f"join:{n.name}" for n in nodes[1:])),
                label=f"{name} ready",
            )
        )
        return steps

    def _node_steps(
        self,
        cluster: str,
        driver: Driver,
        node: NodeSpec,
        shared: Mapping[str, Any],
        records: dict[str, NodeRecord],
        endpoints: dict[str, Endpoint],
        no_provision: bool,
    ) -> list[Step]:
        async def create() -> None:
            if self.store.find_machine(node.name) is None:
                self.store.add_machine(
                    Machine(
                        name=node.name,
                        driver=node.driver,
                        cluster=cluster,
                        role=node.role.value,
                        group=node.group,
                        status=CREATING,
                        status_reason="",
                        spec={
                            "options": {},
                            "engine": node.engine.to_dict(),
                            "node_options": _public(node.options),
                        },
                        record={},
                        endpoint={},
                        shared={},
                    )
                )
            rec = await driver.create(node, shared)
            records[node.name] = rec
            # Without provisioning, a created node is as ready as it will get.
            status = READY if no_provision else CREATING
            self.store.update_machine(node.name, record=asdict(rec), status=status)

        async def uncreate() -> None:
            await driver.remove(records[node.name])

        async def provision() -> None:
            ep = await driver.provision(node, records[node.name], node.engine)
            endpoints[node.name] = ep
            self.store.update_machine(
                node.name, endpoint=asdict(ep), record=asdict(records[node.name])
            )

        steps = [
            Step(
                f"create:{node.name}",
                create,
                ("prepare",),
                undo=uncreate,
                label=f"{node.name} create",
            )
        ]
        if not no_provision:
            steps.append(
                Step(
                    f"provision:{node.name}",
                    provision,
                    (f"create:{node.name}",),
                    label=f"{node.name} engine",
                )
            )
        return steps

    def _join_step(
        self,
        node: NodeSpec,
        records: Mapping[str, NodeRecord],
        endpoints: Mapping[str, Endpoint],
        tokens: list[Tokens],
        first: str,
    ) -> Step:
        async def join() -> None:
            t = tokens[0]
            token = t.manager if node.role == Role.MANAGER else t.worker
            await self.swarm.join(
                endpoints[node.name],
                records[node.name].cluster_address,
                [records[first].cluster_address],
                token,
                t.cluster_id,
            )

        return Step(
            f"join:{node.name}",
            join,
            ("swarm:init", f"provision:{node.name}"),
            label=f"{node.name} swarm join",
        )

    # -- resize -----------------------------------------------------------------------------
    async def resize(self, name: str, node_count: int, nodes_to_remove: list[str]) -> Cluster:
        if node_count < 0:
            raise UsageError(f"--node-count cannot be negative (got {node_count})")
        with locked(self.s.paths.locks, "cluster", name, wait=self.s.lock_wait):
            cluster = self.store.cluster(name)
            if cluster.status in (CREATE_IN_PROGRESS, CREATE_FAILED, DELETE_IN_PROGRESS):
                raise UsageError(
                    f"cluster {name!r} is {cluster.status}: finish or delete it before resizing"
                )
            rows = self.store.machines(cluster=name)
            workers = sorted(
                (r for r in rows if r.role == Role.WORKER), key=lambda r: _index(r.name)
            )
            by_name = {r.name: r for r in rows}
            for n in nodes_to_remove:
                if n not in by_name:
                    raise NotFound(f"node {n!r} is not in cluster {name!r}")
                if by_name[n].role != Role.WORKER:
                    raise UsageError(f"node {n!r} is a manager: only workers can be removed")
            if nodes_to_remove and len(workers) - len(nodes_to_remove) != node_count:
                raise UsageError(
                    f"removing {len(nodes_to_remove)} of {len(workers)} workers leaves "
                    f"{len(workers) - len(nodes_to_remove)}, not --node-count {node_count}"
                )
            spec = {
                **cluster.spec,
                "options": self.s.load_options("clusters", name, cluster.spec["options"]),
            }
            driver = self.s.driver(cluster.driver, spec["options"])
            self.store.update_cluster(name, status=UPDATE_IN_PROGRESS, status_reason="")
            try:
                if node_count > len(workers):
                    await self._grow(
                        name, cluster, spec, driver, workers, node_count - len(workers)
                    )
                elif node_count < len(workers):
                    doomed = nodes_to_remove or [w.name for w in workers[node_count:]]
                    await self._shrink(name, cluster, driver, [by_name[n] for n in doomed])
            except FlotteError as err:
                self.store.update_cluster(name, status=UPDATE_FAILED, status_reason=str(err))
                raise
            return self.store.update_cluster(
                name, status=UPDATE_COMPLETE, status_reason="", node_count=node_count
            )

    async def _grow(
        self,
        name: str,
        cluster: Cluster,
        spec: Mapping[str, Any],
        driver: Driver,
        workers: list[Machine],
        count: int,
    ) -> None:
        owner = Owner(cluster=name, installation=self.store.installation)
        engine = EngineOptions.from_dict(spec["engine"])
        used = {_index(w.name) for w in workers}
        indices = [i for i in range(len(workers) + count + 1) if i not in used][:count]
        extra_hosts: list[dict[str, Any]] = list(spec["options"].get("extra_hosts") or [])
        base_opts = {
            k: v for k, v in spec["options"].items() if k not in ("hosts_per_node", "extra_hosts")
        }
        new = []
        for j, i in enumerate(indices):
            opts = {**base_opts, **(extra_hosts[j] if j < len(extra_hosts) else {})}
            new.append(
                NodeSpec(
                    node_name(name, Role.WORKER, i),
                    Role.WORKER,
                    owner,
                    cluster.driver,
                    opts,
                    engine,
                    group="worker",
                )
            )
        no_provision = bool(cluster.spec.get("no_provision"))
        records: dict[str, NodeRecord] = {}
        endpoints: dict[str, Endpoint] = {}
        tokens: list[Tokens] = []
        manager_ep: Endpoint | None = None
        manager = next(r for r in self.store.machines(cluster=name) if r.role == Role.MANAGER)
        if not no_provision:
            manager_ep = endpoint_of(manager)
            if manager_ep is None:
                raise ClusterError(f"cluster {name!r} has no reachable manager")
            tokens.append(await self.swarm.init(manager_ep, record_of(manager).cluster_address))
            records[manager.name] = record_of(manager)
            endpoints[manager.name] = manager_ep

        async def noop() -> None:
            return None

        steps = [Step("prepare", noop, label="-"), Step("swarm:init", noop, label="-")]
        for node in new:
            steps += self._node_steps(
                name, driver, node, cluster.shared, records, endpoints, no_provision
            )
            if not no_provision:
                steps.append(self._join_step(node, records, endpoints, tokens, manager.name))
        timeout = float(spec.get("timeout", 60)) * 60

        async def ready() -> None:
            assert manager_ep is not None
            names = {swarm_hostname(records[n.name]) for n in new}
            await self.swarm.wait_ready(manager_ep, names, timeout)
            for n in new:
                self.store.update_machine(n.name, status=READY)

        if not no_provision:
            steps.append(
                Step(
                    "swarm:ready",
                    ready,
                    tuple(f"join:{n.name}" for n in new),
                    label=f"{name} ready",
                )
            )
        ex = self.s.executor(driver, f"cluster:{name}", "resize")
        result = await ex.run(steps)
        if not result.ok:
            await ex.rollback(steps, result)
            for node in new:
                if node.name in records and manager_ep is not None:
                    await self.swarm.remove(manager_ep, None, swarm_hostname(records[node.name]))
                self.store.delete_machine(node.name)
            raise PlanFailed(f"growing cluster {name} failed and was rolled back", result.errors)

    async def _shrink(
        self, name: str, cluster: Cluster, driver: Driver, doomed: list[Machine]
    ) -> None:
        manager = next(r for r in self.store.machines(cluster=name) if r.role == Role.MANAGER)
        manager_ep = endpoint_of(manager)

        def step(row: Machine) -> Step:
            async def run() -> None:
                if manager_ep is not None:
                    await self.swarm.remove(
                        manager_ep, endpoint_of(row), swarm_hostname(record_of(row))
                    )
                if row.record:
                    await driver.remove(record_of(row))
                self.store.delete_machine(row.name)

            return Step(f"remove:{row.name}", run, label=f"{row.name} remove")

        ex = self.s.executor(driver, f"cluster:{name}", "resize")
        result = await ex.run([step(r) for r in doomed])
        if not result.ok:
            raise PlanFailed(f"shrinking cluster {name} failed", result.errors)

    # -- delete ------------------------------------------------------------------------------
    async def delete(self, name: str) -> None:
        with locked(self.s.paths.locks, "cluster", name, wait=self.s.lock_wait):
            cluster = self.store.cluster(name)
            options = self.s.load_options("clusters", name, cluster.spec["options"])
            driver = self.s.driver(cluster.driver, options)
            owner = Owner(cluster=name, installation=self.store.installation)
            group = GroupSpec(name=name, owner=owner, options=options, roles=("cluster",))
            self.store.update_cluster(name, status=DELETE_IN_PROGRESS, status_reason="")

            def step(row: Machine) -> Step:
                async def run() -> None:
                    if row.record:
                        await driver.remove(record_of(row))
                    self.store.delete_machine(row.name)

                return Step(f"remove:{row.name}", run, label=f"{row.name} remove")

            ex = self.s.executor(driver, f"cluster:{name}", "delete")
            result = await ex.run([step(r) for r in self.store.machines(cluster=name)])
            try:
                # Anything a killed create made but never recorded is found by its labels.
                await driver.sweep(owner)
                await driver.release(group, cluster.shared or {})
            except FlotteError as err:
                result.errors["release"] = err
            if result.errors:
                failure = PlanFailed(f"deleting cluster {name} failed", result.errors)
                self.store.update_cluster(name, status=DELETE_FAILED, status_reason=str(failure))
                raise failure
            contexts.remove(name)
            self.store.delete_cluster(name)
            self.s.forget_options("clusters", name)

    async def health(self, name: str) -> tuple[str, list[dict[str, Any]]]:
        """Magnum's health_status (HEALTHY / UNHEALTHY / UNKNOWN) and the swarm's nodes."""
        try:
            ep = cluster_endpoint(self.s, name)
            nodes = await self.swarm.nodes(ep)
        except (FlotteError, OSError, Exception):  # any failure to ask means we don't know
            return "UNKNOWN", []
        healthy = all(n["state"] == "ready" for n in nodes)
        return ("HEALTHY" if healthy else "UNHEALTHY"), nodes


def swarm_hostname(record: NodeRecord) -> str:
    """The name Swarm knows a node by: its own hostname.

    flotte names the nodes it makes; servers it adopts over SSH keep their hostname,
    which the driver records.
    """
    return str(record.data.get("hostname") or record.name)


def _index(node: str) -> int:
    try:
        return int(node.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return 0


def _public(options: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if isinstance(v, str | int | float | bool)}
