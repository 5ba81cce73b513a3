"""docker-machine's machines as typed values flotte can record, with what was skipped and why.

``read_store`` reads a docker-machine store (see :mod:`flotte.migrate.store`) and
returns, for each machine, a :class:`DockerMachine`: the flotte driver, the record
that driver reads back (SSH host, user, port; OpenStack server ID or EC2 instance
ID), the engine's :class:`~flotte.models.Endpoint`, the engine options, and the
machine's own client TLS material (checked: present, matching, signed by its CA, not
expired). A machine that cannot be imported becomes one :class:`Skipped` line.

Nothing is written anywhere by reading. ``DockerMachine.install`` copies the TLS
material and SSH key into a directory of flotte's and returns the record and endpoint
pointing at the copies: the docker-machine directory may be deleted afterwards.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flotte.client_tls import ClientTLS, server_cert_expiry
from flotte.config import write_secret
from flotte.errors import ConfigError, UsageError
from flotte.migrate.drivers import Mapped, map_machine
from flotte.migrate.store import MachineConfig, default_store, machine_dirs
from flotte.models import Endpoint, EngineOptions, NodeRecord, check_name

SOURCE = "docker-machine"
TLS_DIR = "tls"  # under the machine's directory in flotte: ca.pem, cert.pem, key.pem
KEY_FILE = "ssh_key"


@dataclass(frozen=True)
class Skipped:
    """A machine left out, and why: printed as one line."""

    name: str
    reason: str

    def __str__(self) -> str:
        return f"{self.name}: {self.reason}"


@dataclass(frozen=True)
class DockerMachine:
    """One docker-machine machine, ready to be recorded by flotte."""

    name: str  # flotte's name for it
    source_name: str  # docker-machine's
    source_driver: str
    directory: Path  # its docker-machine directory (read, never written)
    mapped: Mapped
    engine: EngineOptions
    tls: ClientTLS
    ssh_key: bytes | None
    swarm: dict[str, Any] = field(default_factory=dict)

    @property
    def driver(self) -> str:
        return self.mapped.driver

    @property
    def read_only(self) -> bool:
        return self.mapped.read_only

    @property
    def note(self) -> str:
        return self.mapped.note

    @property
    def url(self) -> str:
        return self.mapped.endpoint.docker_url

    def summary(self) -> dict[str, Any]:
        """What ``--dry-run`` lists: no path, no secret."""
        return {
            "name": self.name,
            "from": self.source_name,
            "docker_machine_driver": self.source_driver,
            "driver": self.driver,
            "url": self.url,
            "ssh": f"{self.mapped.endpoint.ssh_user}@{self.mapped.endpoint.host}:"
            f"{self.mapped.endpoint.ssh_port}",
            "rm": self.mapped.rm,
            "use_only": self.read_only,
            "note": self.note,
            "certificate_expires": self.tls.not_after.strftime("%Y-%m-%d"),
        }

    def install(self, directory: Path) -> tuple[NodeRecord, Endpoint]:
        """Copy the client TLS material and SSH key into ``directory`` (0700).

        Returns the record and the endpoint naming those copies. Nothing is read from
        the docker-machine directory here: everything was loaded when it was read.
        """
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o700)
        tls_dir = self.tls.write(directory / TLS_DIR)
        key_path: str | None = None
        if self.ssh_key is not None:
            write_secret(directory / KEY_FILE, self.ssh_key)
            key_path = str(directory / KEY_FILE)
        data = dict(self.mapped.record.data)
        if self.mapped.key_field:
            data[self.mapped.key_field] = key_path
        data["tls_dir"] = str(tls_dir)  # the engine trusts its own CA, not flotte's
        data["imported"] = {
            "from": SOURCE,
            "name": self.source_name,
            "driver": self.source_driver,
            "rm": self.mapped.rm,
            "read_only": self.read_only,
            "note": self.note,
            **({"swarm": self.swarm} if self.swarm else {}),
        }
        record = dataclasses.replace(self.mapped.record, name=self.name, data=data)
        endpoint = dataclasses.replace(self.mapped.endpoint, ssh_key=key_path, tls_dir=str(tls_dir))
        return record, endpoint


@dataclass
class StoreRead:
    """What ``read_store`` found: machines to import and lines for those skipped."""

    store: Path
    machines: list[DockerMachine]
    skipped: list[Skipped]


def flotte_name(name: str) -> str:
    """docker-machine allowed ``[a-zA-Z0-9][a-zA-Z0-9.-]*``; flotte names are stricter."""
    return re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")


def _words(values: Any) -> tuple[str, ...]:
    if not values:
        return ()
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ConfigError("config.json: an engine option list holds something else than text")
    return tuple(values)


def engine_options(cfg: MachineConfig) -> EngineOptions:
    """docker-machine's ``--engine-*`` settings in flotte's words.

    Its few dedicated settings (DNS, graph dir, IPv6, log level, SELinux) become the
    dockerd flags docker-machine itself turned them into.
    """
    e = cfg.engine
    opts = list(_words(e.get("ArbitraryFlags")))
    opts += [f"dns={d}" for d in _words(e.get("Dns"))]
    if e.get("GraphDir"):
        opts.append(f"data-root={e['GraphDir']}")
    if e.get("Ipv6"):
        opts.append("ipv6")
    if e.get("LogLevel"):
        opts.append(f"log-level={e['LogLevel']}")
    if e.get("SelinuxEnabled"):
        opts.append("selinux-enabled")
    return EngineOptions(
        opts=tuple(opts),
        labels=_words(e.get("Labels")),
        insecure_registries=_words(e.get("InsecureRegistry")),
        registry_mirrors=_words(e.get("RegistryMirror")),
        env=_words(e.get("Env")),
        storage_driver=e.get("StorageDriver") or None,
        tls_sans=_words(cfg.auth.get("ServerCertSANs")),
    )


def _swarm(cfg: MachineConfig) -> dict[str, Any]:
    """Classic Swarm settings, kept for reference (flotte clusters are Swarm mode)."""
    s = cfg.swarm
    if not s.get("IsSwarm"):
        return {}
    return {
        "master": bool(s.get("Master")),
        "discovery": s.get("Discovery") or "",
        "host": s.get("Host") or "",
    }


def client_tls(cfg: MachineConfig, now: dt.datetime | None = None) -> ClientTLS:
    """The machine's CA and client certificate, checked; never its CA's private key."""
    tls = ClientTLS.read(
        cfg.find("ca.pem", cfg.auth.get("CaCertPath")),
        cfg.find("cert.pem", cfg.auth.get("ClientCertPath")),
        cfg.find("key.pem", cfg.auth.get("ClientKeyPath")),
    )
    tls.check(now)
    server = cfg.find("server.pem", cfg.auth.get("ServerCertPath"))
    if server.is_file():
        expiry = server_cert_expiry(server.read_bytes())
        if expiry is not None and expiry <= (now or dt.datetime.now(dt.UTC)):
            raise ConfigError(
                f"the engine's certificate (server.pem) expired on {expiry:%Y-%m-%d}",
                hint="renew it with 'docker-machine regenerate-certs' first",
            )
    return tls


def _ssh_key(cfg: MachineConfig, mapped: Mapped) -> bytes | None:
    if mapped.key_field is None:
        return None
    recorded = cfg.text("SSHKeyPath")
    if cfg.driver_name == "generic" and not recorded:
        return None  # generic without --generic-ssh-key: the user's agent and ~/.ssh keys
    path = cfg.local(recorded) if recorded else cfg.directory / "id_rsa"
    if path is None or not path.is_file():
        path = cfg.directory / "id_rsa"
    try:
        return path.read_bytes()
    except FileNotFoundError as err:
        raise ConfigError(f"its SSH key ({path}) is missing") from err
    except OSError as err:
        raise ConfigError(f"cannot read its SSH key {path}: {err.strerror}") from err


def read_machine(directory: Path, store: Path, now: dt.datetime | None = None) -> DockerMachine:
    """Read one machine directory; ConfigError says in one phrase why it cannot be used."""
    cfg = MachineConfig.load(directory, store)
    name = flotte_name(cfg.name)
    try:
        check_name("machine", name)
    except UsageError as err:
        raise ConfigError(
            f"{cfg.name!r} cannot become a flotte name (1-40 lowercase letters, digits, '-')"
        ) from err
    mapped = map_machine(dataclasses.replace(cfg, name=name))
    return DockerMachine(
        name=name,
        source_name=cfg.name,
        source_driver=cfg.driver_name,
        directory=directory,
        mapped=mapped,
        engine=engine_options(cfg),
        tls=client_tls(cfg, now),
        ssh_key=_ssh_key(cfg, mapped),
        swarm=_swarm(cfg),
    )


def read_store(
    store: Path | None = None, names: Sequence[str] = (), now: dt.datetime | None = None
) -> StoreRead:
    """Every importable machine of ``store`` (or only ``names``), and a line per skip.

    A store that does not exist or is not one raises UsageError; anything wrong with
    one machine skips that machine only.
    """
    store = (store or default_store()).expanduser()
    dirs = machine_dirs(store)
    wanted = list(dict.fromkeys(names))
    by_name = {flotte_name(d.name): d for d in dirs}  # its flotte name works too
    by_name.update({d.name: d for d in dirs})
    skipped = [Skipped(n, f"no such machine in {store}") for n in wanted if n not in by_name]
    chosen = [by_name[n] for n in wanted if n in by_name] if wanted else dirs
    machines: list[DockerMachine] = []
    taken: dict[str, str] = {}
    for directory in chosen:
        try:
            machine = read_machine(directory, store, now)
        except ConfigError as err:
            skipped.append(Skipped(directory.name, str(err)))
            continue
        if machine.name in taken:
            skipped.append(
                Skipped(
                    directory.name,
                    f"would be named {machine.name!r} in flotte, like {taken[machine.name]!r}",
                )
            )
            continue
        taken[machine.name] = machine.source_name
        machines.append(machine)
    return StoreRead(store=store, machines=machines, skipped=skipped)
