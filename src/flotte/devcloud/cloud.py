"""devcloud's use cases: ``up``, ``down`` and ``status`` of one devcloud directory.

``up`` converges: whatever is missing (packages, databases, a stopped process,
seeded resources) is made, whatever runs is left alone; when everything runs it
changes nothing. ``down`` stops only the processes ``up`` recorded. Both hold an
exclusive lock on the directory, so concurrent test sessions wait for each other.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flotte.devcloud import (
    agent,
    computes,
    guest,
    install,
    ironic,
    ironic_conf,
    procs,
    render,
    seed,
    services,
)
from flotte.devcloud.layout import (
    API_PORTS,
    CLOUD_ADMIN,
    CLOUD_ALT,
    CLOUD_DEMO,
    IRONIC_PROCESSES,
    PROCESSES,
    Layout,
    default_clouds_yaml,
    default_dir,
)
from flotte.errors import FlotteError

AGENT = "compute-agent"

StepFn = Callable[[str], AbstractContextManager[None]]


def _no_progress(label: str) -> AbstractContextManager[None]:
    return nullcontext()


@dataclass
class UpResult:
    changed: bool
    seconds: float
    steps: list[tuple[str, float]] = field(default_factory=list)
    clouds_yaml: list[str] = field(default_factory=list)


class DevCloud:
    """One devcloud: its directory, and the clouds.yaml it registers itself in.

    ``clouds_yaml`` is the user's file to merge the entries into (openstacksdk's
    default location unless given); ``None`` writes only ``<dir>/clouds.yaml``.
    """

    def __init__(
        self,
        root: Path | None = None,
        clouds_yaml: Path | str | None = "default",
    ) -> None:
        self.layout = Layout(root or default_dir())
        self.user_clouds_yaml: Path | None = (
            default_clouds_yaml()
            if clouds_yaml == "default"
            else (Path(clouds_yaml) if clouds_yaml else None)
        )

    # -- state -----------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.layout.state_file.read_text())
        except (FileNotFoundError, ValueError):
            data = {}
        return data

    def _save_state(self, **changes: Any) -> None:
        data = self._state()
        data.update(changes)
        self.layout.state_file.write_text(json.dumps(data, indent=2))

    @contextmanager
    def _lock(self) -> Iterator[None]:
        self.layout.root.mkdir(parents=True, exist_ok=True)
        with open(self.layout.lock, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _fingerprint(self) -> str:
        marker = self.layout.venv / ".flotte-constraints"
        return marker.read_text() if marker.exists() else ""

    @staticmethod
    def _seed_mark(fingerprint: str) -> str:
        # Keystone keeps the cost each password was hashed with: a new cost seeds again,
        # which sets (so re-hashes) every seeded user's password.
        return f"{fingerprint}|bcrypt-{render.PASSWORD_HASH_ROUNDS}"

    def processes(self) -> tuple[str, ...]:
        """The processes of this devcloud, in start order (bare metal's and the agent's
        when turned on)."""
        state = self._state()
        return (
            PROCESSES
            + computes.extra_processes(state.get("computes", 1))
            + (IRONIC_PROCESSES if state.get("ironic") else ())
            + ((AGENT,) if state.get("docker") else ())
        )

    def _missing_processes(self) -> list[str]:
        missing = []
        for name in self.processes():
            if procs.running(self.layout, name) is not None:
                continue
            if name == "epmd" and procs.port_open(4369):
                continue  # a system epmd serves our RabbitMQ just as well
            missing.append(name)
        return missing

    def is_up(self) -> bool:
        """Everything runs, was seeded by this install, and Keystone answers."""
        state = self._state()
        return (
            bool(state.get("seeded"))
            and state.get("fingerprint") == self._fingerprint() != ""
            and not self._missing_processes()
            and self.layout.clouds_yaml.exists()
            and state.get("config") == self._config_hash()
            and (
                not state.get("ironic")
                or state.get("ironic_config") == render.config_hash(self._ironic_configs())
            )
            and services.api_answers("keystone")
        )

    def _configs(self) -> dict[Path, str]:
        return render.render_all(self.layout, self.secrets(), self.layout.venv / "etc")

    def _ironic_configs(self) -> dict[Path, str]:
        # Hashed apart from the others: a change restarts Ironic's processes only, and
        # turning bare metal on or off restarts nothing else.
        return ironic_conf.files(self.layout, self.secrets())

    def _config_hash(self) -> str:
        try:
            return render.config_hash(self._configs())
        except FileNotFoundError:  # no venv yet
            return ""

    def secrets(self) -> dict[str, str]:
        return render.load_secrets(self.layout)

    def clouds(self) -> dict[str, dict[str, Any]]:
        return seed.clouds(self.secrets())

    # -- up --------------------------------------------------------------------

    def up(
        self,
        step: StepFn = _no_progress,
        *,
        wipe: bool = False,
        docker: bool | None = None,
        ironic: bool | None = None,
        compute_hosts: int | None = None,
    ) -> UpResult:
        """Converge to a running devcloud; ``docker`` turns Docker-backed servers on or
        off, ``ironic`` bare metal, ``compute_hosts`` sets the number of fake compute
        hosts (None keeps the previous choice; the first time: off, off, 1)."""
        start = time.monotonic()
        with self._lock():
            if wipe:
                self._down(wipe=True)
            self.layout.ensure()
            toggled = False
            # First: it may refuse (servers on a host to take away), before any change.
            if compute_hosts is not None and self._state().get("computes", 1) != compute_hosts:
                toggled = True
                self._set_compute_hosts(compute_hosts)
            if docker is not None and bool(self._state().get("docker")) != docker:
                toggled = True
                if not docker:
                    procs.stop(self.layout, AGENT)
                    agent.cleanup(self.layout.root)
                self._save_state(docker=docker)
            if ironic is not None and bool(self._state().get("ironic")) != ironic:
                toggled = True
                if not ironic:
                    self._stop_ironic()
                self._save_state(ironic=ironic)
            if self.is_up():
                self._converge_boot_mode()
                self._register()
                return UpResult(toggled, time.monotonic() - start, [], self._registered())
            timings: list[tuple[str, float]] = []

            @contextmanager
            def timed(label: str) -> Iterator[None]:
                t0 = time.monotonic()
                with step(label):
                    yield
                timings.append((label, round(time.monotonic() - t0, 1)))

            self._up(timed)
            return UpResult(True, time.monotonic() - start, timings, self._registered())

    def _start_ironic(self, pw: dict[str, str], conn: Any) -> Any:
        layout, state = self.layout, self._state()
        config = render.config_hash(self._ironic_configs())
        if state.get("ironic_config") not in (None, config):
            ironic.stop(layout, None)  # to reread changed settings
        fingerprint = install.pins_fingerprint(layout)
        synced = state.get("ironic_synced") == fingerprint
        conn = ironic.start(layout, pw, conn, synced=synced)
        self._save_state(ironic_synced=fingerprint, ironic_config=config, ironic_boot=None)
        return conn

    def _stop_ironic(self) -> None:
        """Bare metal off: its processes, and (when devcloud answers) its Nova host."""
        conn = seed.connect(self.secrets()) if services.api_answers("keystone") else None
        try:
            ironic.stop(self.layout, conn)
        finally:
            if conn is not None:
                conn.close()

    def _set_compute_hosts(self, count: int) -> None:
        """Record the new number of hosts; fewer: take the others away now (refused
        while they hold servers), more: the coming `up` starts them."""
        computes.check_count(self._state().get("computes", 1), count)
        going = computes.beyond(self.layout, count)
        if going and not services.api_answers("keystone"):
            raise FlotteError(
                "devcloud must be up to take compute hosts away (their servers are checked)",
                hint=f"run `flotte devcloud up`, then `flotte devcloud up --computes {count}`",
            )
        conn = seed.connect(self.secrets()) if going else None
        try:
            if conn is not None:
                computes.check_empty(conn, count, going)
            computes.remove(self.layout, conn, going, count)
        finally:
            if conn is not None:
                conn.close()
        self._save_state(computes=count)

    def _converge_boot_mode(self, conn: Any = None) -> None:
        """With bare metal on, nodes wait for the compute agent exactly when it runs."""
        state = self._state()
        wanted = bool(state.get("docker"))
        if not state.get("ironic") or state.get("ironic_boot") == wanted:
            return
        own = conn is None
        conn = conn or seed.connect(self.secrets())
        try:
            ironic.set_boot_mode(conn, container=wanted)
        finally:
            if own:
                conn.close()
        self._save_state(ironic_boot=wanted)

    def _up(self, step: StepFn) -> None:
        layout = self.layout
        # Before anything is installed: a clash is reported at once, nothing changed.
        services.check_ports(layout)
        if self._state().get("ironic"):
            ironic.check_port(layout)
        with step("MariaDB and RabbitMQ packages (apt)"):
            install.install_system_packages(layout)
        with step("OpenStack services in their venv (pinned)"):
            install.install_services(layout)
        if self._state().get("ironic"):
            with step("Ironic in the same venv (pinned)"):
                install.install_ironic(layout)
        pw = render.load_secrets(layout)
        configs = self._configs()
        render.write_all(layout, {**configs, **self._ironic_configs()})
        if self._state().get("config") not in (None, render.config_hash(configs)):
            # Settings changed (a flotte upgrade): running services must reread them.
            with step("restarting services on changed settings"):
                self._down(wipe=False)
        services.check_ports(layout)
        with step("MariaDB"):
            services.start_mariadb(layout, pw)
            services.start_rabbitmq(layout)  # boots while migrations run
        state = self._state()
        fingerprint = self._fingerprint()
        if state.get("synced") != fingerprint:
            with step("database migrations"):
                services.sync_databases(layout, pw)
            self._save_state(synced=fingerprint)
        with step("RabbitMQ"):
            services.wait_rabbitmq(layout)
        seeded = self._state().get("seeded") == self._seed_mark(fingerprint)
        with step("Keystone"):
            services.start_apis(layout)
            services.wait_api(layout, "keystone")
            conn = seed.connect(pw)
            if not seeded:
                seed.seed_identity(conn, pw)
                # A new token: the first one's catalog predates the endpoints just made.
                conn.close()
                conn = seed.connect(pw)
            # They authenticate as their service users at start: after the catalog.
            services.start_nova_daemon(layout, "nova-conductor")
            services.start_nova_daemon(layout, "nova-scheduler")
        with step("Glance, Placement, Nova, Neutron APIs"):
            for service in API_PORTS:
                services.wait_api(layout, service)
            # nova-compute starts ~10 s sooner when the conductor already answers RPC.
            services.wait_service(layout, conn, "nova-conductor")
            computes.adopt_first(layout, conn)
            services.start_nova_daemon(layout, "nova-compute")
        if not seeded:
            with step("flavors, image, networks, quotas"):
                seed.seed_flavors(conn)
                seed.seed_image(conn)
                seed.seed_networks(conn)
                seed.seed_quotas(conn)
        count = self._state().get("computes", 1)
        with step("compute host" if count == 1 else f"{count} compute hosts"):
            computes.start(layout, count)
            computes.map_first(layout, conn)
            services.wait_service(layout, conn, "nova-scheduler")
            computes.wait_ready(layout, conn, count)
        if self._state().get("ironic"):
            with step("Ironic, bare-metal nodes and their nova-compute"):
                conn = self._start_ironic(pw, conn)
                self._converge_boot_mode(conn)
        conn.close()
        if self._state().get("docker"):
            with step("Docker-backed compute (guest image, agent)"):
                self._start_agent()
        missing = self._missing_processes()
        if missing:
            name = missing[0]
            raise FlotteError(f"{name} stopped during start-up: see {layout.log(name)}")
        self._register()
        self._save_state(
            seeded=self._seed_mark(fingerprint),
            fingerprint=fingerprint,
            config=render.config_hash(configs),
        )

    def _start_agent(self) -> None:
        import docker as docker_sdk

        try:
            client = docker_sdk.from_env()
            client.ping()
        except Exception as err:
            raise FlotteError(
                "Docker-backed devcloud needs a running Docker engine",
                hint="start dockerd, or run `flotte devcloud up --no-docker`",
            ) from err
        install.ensure_debootstrap(self.layout)
        guest.ensure_guest_image(client)
        client.close()
        if procs.running(self.layout, AGENT) is not None:
            return
        log = self.layout.log(AGENT)
        offset = log.stat().st_size if log.exists() else 0
        procs.start(
            self.layout,
            AGENT,
            [sys.executable, "-m", "flotte.devcloud.agent", "--dir", str(self.layout.root)],
        )
        procs.wait_until(
            lambda: "watching Nova" in log.read_text()[offset:],
            what="compute agent",
            timeout=120,
            layout=self.layout,
            process=AGENT,
        )

    def _register(self) -> None:
        entries = self.clouds()
        seed.write_clouds_yaml(self.layout.clouds_yaml, entries)
        if self.user_clouds_yaml is not None:
            seed.write_clouds_yaml(self.user_clouds_yaml, entries)
            self._save_state(user_clouds_yaml=str(self.user_clouds_yaml))

    def _registered(self) -> list[str]:
        out = [str(self.layout.clouds_yaml)]
        if self.user_clouds_yaml is not None:
            out.append(str(self.user_clouds_yaml))
        return out

    # -- down ------------------------------------------------------------------

    def down(self, *, wipe: bool = False) -> list[str]:
        """Stop what ``up`` started; with ``wipe`` also delete data (the venv stays)."""
        with self._lock():
            return self._down(wipe=wipe)

    def _down(self, *, wipe: bool) -> list[str]:
        # OpenStack services first, side by side (nova's take seconds each to shut
        # down gracefully); then RabbitMQ, epmd and MariaDB, which they use.
        backing = ("rabbitmq", "epmd", "mariadb")
        stopped = [AGENT] if procs.stop(self.layout, AGENT) else []
        if stopped or self._state().get("docker"):
            # Its containers and networks go with it: Nova forgets fake instances too.
            agent.cleanup(self.layout.root)
        stopped += ironic.stop_processes(self.layout)
        openstack = computes.made_processes(self.layout) + [
            name for name in reversed(PROCESSES) if name not in backing
        ]
        with ThreadPoolExecutor(max_workers=len(openstack)) as pool:
            results = list(pool.map(lambda n: procs.stop(self.layout, n), openstack))
        stopped += [name for name, was in zip(openstack, results, strict=True) if was]
        stopped += [name for name in backing if procs.stop(self.layout, name)]
        if wipe:
            if self.layout.secrets.exists():
                entries = self.clouds()
                user = self._state().get("user_clouds_yaml")
                if user:
                    seed.remove_clouds_yaml(Path(user), entries)
            for child in self.layout.root.iterdir() if self.layout.root.exists() else []:
                if child.name in ("venv", "lock"):
                    continue  # packages stay: the next `up` is a warm one
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        return stopped

    # -- status ----------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        layout = self.layout
        rows = []
        total = 0
        for name in self.processes():
            rec = procs.running(layout, name)
            mem = procs.memory_kib(rec.pid) if rec else 0
            total += mem
            rows.append(
                {
                    "name": name,
                    "running": rec is not None,
                    "pid": rec.pid if rec else None,
                    "memory_mib": round(mem / 1024, 1),
                    "log": str(layout.log(name)),
                }
            )
        apis = {
            svc: {"url": render.url(svc), "answers": services.api_answers(svc)} for svc in API_PORTS
        }
        if self._state().get("ironic"):
            apis["ironic"] = {"url": ironic_conf.url(), "answers": ironic.api_answers()}
        running = sum(1 for r in rows if r["running"])
        state = "up" if running == len(rows) else ("down" if running == 0 else "partial")
        return {
            "state": state,
            "ready": self.is_up(),
            "dir": str(layout.root),
            "clouds_yaml": str(layout.clouds_yaml),
            "clouds": [CLOUD_ADMIN, CLOUD_DEMO, CLOUD_ALT],
            "memory_mib": round(total / 1024, 1),
            "processes": rows,
            "apis": apis,
            "installed": install.venv_ready(layout) if layout.venv.exists() else False,
            # which MySQL driver the services use (the C one when it could be built)
            "db_driver": "mysqlclient" if install.c_driver_ready(layout) else "PyMySQL",
            "docker_compute": bool(self._state().get("docker")),
            "bare_metal": bool(self._state().get("ironic")),
            "compute_hosts": self._state().get("computes", 1),
        }
