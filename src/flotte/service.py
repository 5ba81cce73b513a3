"""Use cases shared by the CLI and the API: machines here, clusters in ``clusters.py``.

A ``Service`` owns one installation: its state store, its CA, its drivers. Each use
case validates its input first (one clear error, nothing changed), takes the lock of
the object it changes, builds a plan of steps and hands it to the executor.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from flotte import certificates, contexts, drivers
from flotte.config import Paths, paths, write_secret
from flotte.drivers.base import Driver, DriverContext, GroupSpec
from flotte.engine.executor import Events, Executor, RunResult, Step
from flotte.errors import AlreadyExists, FlotteError, PlanFailed, UsageError
from flotte.models import (
    Endpoint,
    EngineOptions,
    NodeRecord,
    NodeSpec,
    NodeState,
    Owner,
    Role,
    check_name,
)
from flotte.pki import CertificateAuthority
from flotte.provision import engine_config
from flotte.state.lock import locked
from flotte.state.store import Store
from flotte.state.tables import Machine

# Lifecycle of a record, beside the live state the driver reports.
CREATING, READY, FAILED, REMOVING = "creating", "ready", "failed", "removing"


def _no_events(step: Step, phase: str, detail: str = "") -> None:
    return None


def record_of(row: Machine) -> NodeRecord:
    return NodeRecord(**row.record) if row.record else NodeRecord(name=row.name, driver=row.driver)


def endpoint_of(row: Machine) -> Endpoint | None:
    return Endpoint(**row.endpoint) if row.endpoint else None


class Service:
    """One flotte installation (``FLOTTE_HOME``), with every use case on it."""

    def __init__(
        self,
        home: str | os.PathLike[str] | None = None,
        *,
        events: Events | None = None,
        parallelism: int | None = None,
        lock_wait: float = 0.0,
    ) -> None:
        self.paths: Paths = paths(home).ensure()
        url = os.environ.get("FLOTTE_DATABASE_URL")
        self.store = Store(url) if url else Store.at(self.paths.database)
        self.ca = CertificateAuthority(self.paths.certs).ensure()
        self.events: Events = events or _no_events
        self.parallelism = parallelism
        self.lock_wait = lock_wait
        self._drivers: dict[tuple[str, str], Driver] = {}

    def close(self) -> None:
        self.store.close()

    # -- drivers and options -----------------------------------------------------------
    def driver(self, name: str, options: Mapping[str, Any] | None = None) -> Driver:
        """A driver instance for ``name`` with ``options`` (instances are reused per options)."""
        key = (name, json.dumps(options or {}, sort_keys=True, default=str))
        if key not in self._drivers:
            cls = drivers.get(name)
            ctx = DriverContext(
                home=self.paths.machines,
                ca=self.ca,
                installation=self.store.installation,
                options=dict(options or {}),
                known_hosts=self.paths.known_hosts,
                progress=getattr(self.events, "note", None),
            )
            self._drivers[key] = cls(ctx)
        return self._drivers[key]

    def _secret_file(self, scope: str, name: str) -> Path:
        return self.paths.secrets / scope / name / "options.json"

    def save_options(
        self, scope: str, name: str, driver: str, options: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Split options: secrets go to a 0600 file, the rest is returned for the database."""
        secret_keys = {o.key for o in drivers.get(driver).options if o.secret}
        public = {
            k: v for k, v in options.items() if k not in secret_keys and v not in (None, (), [])
        }
        secret = {k: v for k, v in options.items() if k in secret_keys and v not in (None, "")}
        if secret:
            write_secret(self._secret_file(scope, name), json.dumps(secret).encode())
        return public

    def load_options(self, scope: str, name: str, public: Mapping[str, Any]) -> dict[str, Any]:
        path = self._secret_file(scope, name)
        secret = json.loads(path.read_text()) if path.exists() else {}
        return {**public, **secret}

    def forget_options(self, scope: str, name: str) -> None:
        path = self._secret_file(scope, name)
        if path.exists():
            path.unlink()

    def executor(self, driver: Driver, scope: str, operation: str) -> Executor:
        parallelism = self.parallelism or driver.capabilities.max_parallel
        return Executor(
            parallelism=parallelism,
            journal=self.store.journal(scope, operation),
            events=self.events,
        )

    # -- machines -----------------------------------------------------------------------
    def machines(self) -> list[Machine]:
        return self.store.machines()

    def machine(self, name: str) -> Machine:
        return self.store.machine(name)

    def machine_driver(self, row: Machine) -> Driver:
        options = self.load_options(
            "machines", row.cluster or row.name, row.spec.get("options", {})
        )
        return self.driver(row.driver, options)

    async def create_machine(
        self,
        name: str,
        driver_name: str,
        options: Mapping[str, Any],
        engine: EngineOptions,
        *,
        no_provision: bool = False,
        rollback: bool = True,
    ) -> Machine:
        check_name("machine", name)
        engine_config.validate(engine)
        driver = self.driver(driver_name, options)
        with locked(self.paths.locks, "machine", name, wait=self.lock_wait):
            existing = self.store.find_machine(name)
            if existing is not None and existing.status != CREATING:
                raise AlreadyExists(
                    f"machine {name!r} already exists",
                    hint="remove it first or choose another name",
                )
            if self.store.find_cluster(name) is not None:
                raise AlreadyExists(f"{name!r} is already the name of a cluster")
            owner = Owner(machine=name, installation=self.store.installation)
            group = GroupSpec(name=name, owner=owner, options=options)
            spec = NodeSpec(name, Role.MACHINE, owner, driver_name, dict(options), engine)
            await driver.check(group)
            public = self.save_options("machines", name, driver_name, options)
            self.store.add_machine(
                Machine(
                    name=name,
                    driver=driver_name,
                    cluster=None,
                    role=Role.MACHINE,
                    status=CREATING,
                    status_reason="",
                    spec={
                        "options": public,
                        "engine": engine.to_dict(),
                        "no_provision": no_provision,
                    },
                    record={},
                    endpoint={},
                    shared={},
                ),
                replace=existing is not None,  # a killed create is resumed, not duplicated
            )
            shared: dict[str, Any] = {}
            record: list[NodeRecord] = []

            async def prepare() -> None:
                shared.update(await driver.prepare(group))
                self.store.update_machine(name, shared=shared)

            async def create() -> None:
                node = await driver.create(spec, shared)
                record.append(node)
                self.store.update_machine(name, record=asdict(node))

            async def provision() -> None:
                ep = await driver.provision(spec, record[0], engine)
                self.store.update_machine(name, endpoint=asdict(ep), record=asdict(record[0]))
                contexts.write(name, ep.docker_url, self.ca, f"flotte machine {name}")

            async def unprepare() -> None:
                await driver.release(group, shared)

            async def uncreate() -> None:
                await driver.remove(record[0])

            steps = [
                Step("prepare", prepare, undo=unprepare, label=f"{name} network"),
                Step("create", create, ("prepare",), undo=uncreate, label=f"{name} create"),
            ]
            if not no_provision:
                steps.append(Step("provision", provision, ("create",), label=f"{name} engine"))
            ex = self.executor(driver, f"machine:{name}", "create")
            result = await ex.run(steps)
            if not result.ok:
                await self._fail_machine(
                    name, driver, owner, group, shared, steps, result, ex, rollback
                )
            return self.store.update_machine(name, status=READY, status_reason="")

    async def _fail_machine(
        self,
        name: str,
        driver: Driver,
        owner: Owner,
        group: GroupSpec,
        shared: Mapping[str, Any],
        steps: list[Step],
        result: RunResult,
        ex: Executor,
        rollback: bool,
    ) -> None:
        reason = str(PlanFailed(f"creating machine {name} failed", result.errors))
        if rollback:
            await ex.rollback(steps, result)
            await driver.sweep(owner)
            await driver.release(group, shared)
            self.store.delete_machine(name)
            self.forget_options("machines", name)
            raise PlanFailed(f"creating machine {name} failed and was rolled back", result.errors)
        self.store.update_machine(name, status=FAILED, status_reason=reason)
        raise PlanFailed(
            f"creating machine {name} failed (left as is: --no-rollback)", result.errors
        )

    def _lone(self, name: str) -> Machine:
        row = self.store.machine(name)
        if row.cluster:
            raise UsageError(
                f"{name!r} is a node of cluster {row.cluster!r}",
                hint=f"use 'flotte cluster resize {row.cluster} --nodes-to-remove {name}'",
            )
        return row

    async def machine_state(self, row: Machine) -> NodeState:
        if row.status == CREATING:
            return NodeState.STARTING
        if not row.record:
            return NodeState.ERROR
        try:
            return await self.machine_driver(row).state(record_of(row))
        except FlotteError:
            return NodeState.ERROR

    async def machine_action(self, name: str, action: str) -> Machine:
        """start, stop, restart or kill a machine (or a node) and record what changed."""
        row = self.store.machine(name)
        driver = self.machine_driver(row)
        caps = driver.capabilities
        if action in ("start", "stop", "restart") and not caps.start_stop:
            raise UsageError(f"the {row.driver} driver cannot {action} machines")
        if action == "kill" and not caps.kill:
            raise UsageError(f"the {row.driver} driver cannot kill machines")
        with locked(self.paths.locks, "machine", name, wait=self.lock_wait):
            node = record_of(row)
            if action == "stop":
                await driver.stop(node)
            elif action == "kill":
                await driver.kill(node)
            else:
                method = driver.start if action == "start" else driver.restart
                node = await method(node)
                ep = driver.endpoint(node)
                row = self.store.update_machine(name, record=asdict(node), endpoint=asdict(ep))
                if not row.cluster:
                    contexts.write(name, ep.docker_url, self.ca, f"flotte machine {name}")
            return row

    async def remove_machine(self, name: str, *, force: bool = False, purge: bool = False) -> None:
        row = self._lone(name)
        driver = self.machine_driver(row)
        with locked(self.paths.locks, "machine", name, wait=self.lock_wait):
            owner = Owner(machine=name, installation=self.store.installation)
            group = GroupSpec(name=name, owner=owner, options=row.spec.get("options", {}))
            self.store.update_machine(name, status=REMOVING)
            try:
                if row.record:
                    await driver.remove(record_of(row), purge=purge)
                await driver.sweep(owner)
                await driver.release(group, row.shared or {})
            except FlotteError:
                if not force:
                    raise
            contexts.remove(name)
            self.store.delete_machine(name)
            self.forget_options("machines", name)

    async def regenerate_certs(self, name: str, *, client_certs: bool = False) -> Machine:
        row = self.store.machine(name)
        if client_certs:
            certificates.renew_client(self.ca)  # flotte's contexts get it too
        driver = self.machine_driver(row)
        with locked(self.paths.locks, "machine", name, wait=self.lock_wait):
            node = record_of(row)
            spec = NodeSpec(
                name=name,
                role=Role(row.role),
                owner=Owner(
                    machine=name, cluster=row.cluster, installation=self.store.installation
                ),
                driver=row.driver,
                options=row.spec.get("options", {}),
                engine=EngineOptions.from_dict(row.spec.get("engine")),
            )
            ep = await driver.provision(spec, node, spec.engine)
            row = self.store.update_machine(name, endpoint=asdict(ep), record=asdict(node))
            if not row.cluster:
                contexts.write(name, ep.docker_url, self.ca, f"flotte machine {name}")
            return row

    def env(self, name: str) -> dict[str, str]:
        """DOCKER_* variables that point the docker CLI at a machine (or a cluster)."""
        row = self.store.find_machine(name)
        if row is None:
            from flotte.clusters import cluster_endpoint

            ep = cluster_endpoint(self, name)
        else:
            found = endpoint_of(row)
            if found is None:
                raise UsageError(f"machine {name!r} has no Docker engine yet (status {row.status})")
            ep = found
        return {
            "DOCKER_TLS_VERIFY": "1",
            "DOCKER_HOST": ep.docker_url,
            "DOCKER_CERT_PATH": str(self.ca.client.directory),
            "DOCKER_MACHINE_NAME": name,
        }

    async def engine_versions(self, rows: list[Machine], timeout: float = 3.0) -> dict[str, str]:
        """Docker version of each machine's engine, asked in parallel (for ``ls``)."""
        from flotte import dockerapi

        async def one(row: Machine) -> tuple[str, str]:
            ep = endpoint_of(row)
            if ep is None:
                return row.name, ""

            def ask() -> str:
                with dockerapi.connected(ep, self.ca, timeout=int(timeout)) as cli:
                    return str(cli.version().get("Version", ""))

            try:
                return row.name, await asyncio.wait_for(asyncio.to_thread(ask), timeout + 1)
            except Exception:  # an unreachable engine shows as an empty version
                return row.name, "Unknown"

        pairs = await asyncio.gather(*(one(r) for r in rows))
        return dict(pairs)
