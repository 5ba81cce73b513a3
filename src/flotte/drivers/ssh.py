"""The ``ssh`` driver: servers that already exist become Docker hosts and cluster nodes.

docker-machine's ``generic`` driver, done again: a machine-room server, a Raspberry Pi,
any host one can SSH into. ``create`` makes nothing; it reaches the host, checks that
flotte may use it (root or passwordless sudo, a known OS, not taken by another
machine) and records it. ``provision`` is the shared SSH provisioner
(:mod:`flotte.provision.docker_host`). ``rm`` gives the host its own Docker
configuration back and never wipes it; ``rm --purge`` also removes the Docker engine
if (and only if) flotte installed it. ``stop``/``start`` stop and start the docker
service, since flotte does not own the machine's power.

Hosts are written ``[user@]host[:port]`` everywhere (``--ssh-host``, ``--hosts``,
inventory files); an inventory line may add ``key=PATH``, ``user=`` and ``port=``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from flotte.config import write_secret
from flotte.drivers.base import Capabilities, Driver, DriverOption, GroupSpec
from flotte.errors import AlreadyExists, FlotteError, ProvisionError, Unreachable, UsageError
from flotte.models import Endpoint, EngineOptions, NodeRecord, NodeSpec, NodeState, Owner
from flotte.provision import distros
from flotte.provision.docker_host import (
    OWNER_FILE,
    client_ssl_context,
    provision_docker_host,
    tls_ping,
    unprovision,
)
from flotte.provision.engine_config import DOCKER_TLS_PORT
from flotte.provision.ssh import SSHTarget, gather_facts, load_client_key, session

KEY_FILE = "ssh_key"  # the user's key, copied (0600) so the machine outlives moves of it


@dataclass(frozen=True)
class HostEntry:
    """One host of an inventory: ``[user@]host[:port] [key=PATH] [user=U] [port=P]``."""

    host: str
    user: str | None = None
    port: int | None = None
    key: str | None = None


def _port(value: Any, where: str) -> int:
    try:
        port = int(value)
    except (TypeError, ValueError):
        port = 0
    if not 0 < port < 65536:
        raise UsageError(f"{where}: SSH port {value!r} is not a number from 1 to 65535")
    return port


def parse_host(text: str) -> HostEntry:
    """Parse ``[user@]host[:port]`` (``[v6addr]:port`` for IPv6) plus ``key=value`` words."""
    words = str(text).split()
    if not words:
        raise UsageError("an empty host was given", hint="write hosts as [user@]host[:port]")
    spec, extras = words[0], words[1:]
    user, sep, rest = spec.rpartition("@")
    if not sep:
        user, rest = "", spec
    port: int | None = None
    if rest.startswith("["):
        host, _, tail = rest[1:].partition("]")
        if tail.startswith(":"):
            port = _port(tail[1:], text)
    elif rest.count(":") == 1:
        host, _, p = rest.partition(":")
        port = _port(p, text)
    else:
        host = rest  # a bare IPv6 address, or a plain name
    if not host:
        raise UsageError(f"host {text!r} has no address", hint="write [user@]host[:port]")
    key = None
    for word in extras:
        k, eq, v = word.partition("=")
        if not eq:
            raise UsageError(f"inventory line {text!r}: {word!r} is not key=value")
        if k == "key":
            key = v
        elif k == "user":
            user = v
        elif k == "port":
            port = _port(v, text)
        elif k != "role":
            raise UsageError(f"inventory line {text!r}: unknown field {k!r} (key, user, port)")
    return HostEntry(host=host, user=user or None, port=port, key=key)


def load_inventory(path: Path) -> list[HostEntry]:
    """An inventory file: one host per line, ``#`` comments, managers first."""
    try:
        text = path.read_text()
    except OSError as err:
        raise UsageError(f"cannot read the host inventory {path}: {err.strerror}") from err
    return [
        parse_host(ln.split("#", 1)[0]) for ln in text.splitlines() if ln.split("#", 1)[0].strip()
    ]


class SSHDriver(Driver):
    name = "ssh"
    description = "Existing servers over SSH: machine room, Raspberry Pi racks"
    capabilities = Capabilities(
        start_stop=True,  # the docker service, not the machine's power
        kill=True,
        snapshot=False,
        parallel_create=True,
        max_parallel=32,
        adopt_existing=True,
        shared_resources=False,
    )
    options: ClassVar[tuple[DriverOption, ...]] = (
        DriverOption(
            "ssh-host",
            "Existing host to use: [user@]host[:port]",
            envvar="FLOTTE_SSH_HOST",
            aliases=("generic-ip-address",),
        ),
        DriverOption(
            "ssh-user",
            "User to log in as: root, or one with passwordless sudo (default root)",
            envvar="FLOTTE_SSH_USER",
            aliases=("generic-ssh-user",),
        ),
        DriverOption("ssh-port", "SSH port (default 22)", type=int, aliases=("generic-ssh-port",)),
        DriverOption(
            "ssh-key",
            "Private key file (default: ssh-agent and ~/.ssh keys)",
            envvar="FLOTTE_SSH_KEY",
            aliases=("generic-ssh-key",),
        ),
        DriverOption(
            "engine-install",
            "When Docker is missing: auto (per distribution), distro, upstream or skip",
            default="auto",
        ),
    )

    # -- options and targets ---------------------------------------------------------

    def _entry(self, options: Mapping[str, Any]) -> HostEntry:
        raw = options.get("ssh_host") or self.ctx.options.get("ssh_host")
        if not raw:
            raise UsageError(
                "the ssh driver needs a host", hint="give --ssh-host [user@]host[:port]"
            )
        return parse_host(str(raw))

    def _target_from(self, options: Mapping[str, Any], *, quick: bool = False) -> SSHTarget:
        entry = self._entry(options)

        def opt(key: str) -> Any:
            value = options.get(key)
            return self.option(key) if value in (None, "") else value

        key = entry.key or opt("ssh_key")
        return SSHTarget(
            host=entry.host,
            port=entry.port or _port(opt("ssh_port") or 22, "--ssh-port"),
            user=entry.user or opt("ssh_user") or "root",
            key=Path(str(key)).expanduser() if key else None,
            known_hosts=self.ctx.known_hosts,
            attempts=1 if quick else 3,
            connect_timeout=5.0 if quick else 10.0,
        )

    def _node_target(self, node: NodeRecord, *, quick: bool = False) -> SSHTarget:
        d = node.data
        return SSHTarget(
            host=d["ssh_host"],
            port=int(d.get("ssh_port") or 22),
            user=d.get("ssh_user") or "root",
            key=Path(d["ssh_key"]) if d.get("ssh_key") else None,
            known_hosts=self.ctx.known_hosts,
            attempts=1 if quick else 3,
            connect_timeout=5.0 if quick else 10.0,
        )

    def _install(self, options: Mapping[str, Any]) -> str:
        choice = str(options.get("engine_install") or self.option("engine_install", "auto"))
        if choice not in distros.INSTALL_CHOICES:
            raise UsageError(
                f"--engine-install {choice!r}: choose one of {', '.join(distros.INSTALL_CHOICES)}"
            )
        return choice

    def _group_options(self, group: GroupSpec) -> list[dict[str, Any]]:
        """Per-node options of a group: ``hosts_per_node`` for clusters, else one host."""
        per_node = group.options.get("hosts_per_node") or self.ctx.options.get("hosts_per_node")
        base = {k: v for k, v in group.options.items() if k != "hosts_per_node"}
        if per_node:
            return [{**base, **dict(p)} for p in per_node]
        return [dict(base)]

    @staticmethod
    def _owner_record(owner: Owner, node: str) -> dict[str, str]:
        rec = {"installation": owner.installation, "node": node}
        if owner.machine:
            rec["machine"] = owner.machine
        if owner.cluster:
            rec["cluster"] = owner.cluster
        return rec

    # -- contract --------------------------------------------------------------------

    async def check(self, group: GroupSpec) -> None:
        """Reach every host, as it will be used, before anything is recorded or changed."""
        per_node = self._group_options(group)
        targets = [self._target_from(o) for o in per_node]
        self._install(group.options)
        seen: set[tuple[str, int]] = set()
        for t in targets:
            if (t.host, t.port) in seen:
                raise UsageError(f"host {t.host}:{t.port} is given twice")
            seen.add((t.host, t.port))
            if t.key is not None:
                load_client_key(t.key)
        install = self._install(group.options)
        results = await asyncio.gather(
            *(self._preflight(t, install, group.owner) for t in targets), return_exceptions=True
        )
        failures = [(t, r) for t, r in zip(targets, results, strict=True) if r is not None]
        for _, r in failures:
            if not isinstance(r, FlotteError):
                raise r  # a bug, not a host problem: let it show
        if len(failures) == 1:
            raise failures[0][1]
        if failures:
            first = failures[0][1]
            assert isinstance(first, FlotteError)
            detail = "; ".join(f"{t.host}: {r}" for t, r in failures)
            raise type(first)(f"{len(failures)} of {len(targets)} hosts cannot be used: {detail}")

    async def _preflight(self, target: SSHTarget, install: str, owner: Owner) -> None:
        async with session(target) as sess:
            await sess.check_root()
            facts = await gather_facts(sess)
            raw = await sess.read(OWNER_FILE)
        self._check_owner(target, raw, owner)
        if not facts.docker_installed:
            if install == "skip":
                raise ProvisionError(
                    f"Docker is not installed on {target.host} and --engine-install is skip",
                    hint="install it there, or use --engine-install auto",
                )
            distro = distros.detect(facts.os_release)
            if distro is None:
                raise ProvisionError(
                    f"{target.host} runs {distros.describe(facts.os_release)}, on which "
                    "flotte cannot install Docker",
                    hint=f"supported: {distros.supported_names()}; or install Docker "
                    "yourself and use --engine-install skip",
                )
            distros.install_plan(distro, install, facts.machine, facts.os_release)

    def _check_owner(self, target: SSHTarget, raw: bytes | None, owner: Owner) -> None:
        if not raw:
            return
        try:
            there = json.loads(raw)
        except ValueError:
            return
        mine = owner.installation
        theirs = there.get("installation")
        same_owner = theirs == mine and (
            there.get("machine") == owner.machine and there.get("cluster") == owner.cluster
        )
        if not same_owner:
            what = there.get("machine") or there.get("cluster") or there.get("node") or "?"
            whose = "this flotte installation" if theirs == mine else "another flotte installation"
            raise AlreadyExists(
                f"{target.host} is already a Docker host of {whose} ({what})",
                hint=f"remove it there first (flotte machine rm {what}), "
                f"or delete {OWNER_FILE} on the host to take it over",
            )

    async def create(self, spec: NodeSpec, shared: Mapping[str, Any]) -> NodeRecord:
        """Reach the host and record it; nothing on the host changes yet."""
        target = self._target_from(spec.options)
        async with session(target) as sess:
            await sess.check_root()
            facts = await gather_facts(sess)
            raw = await sess.read(OWNER_FILE)
        self._check_owner(target, raw, spec.owner)
        key_copy = None
        if target.key is not None:
            load_client_key(target.key)
            dest = self.ctx.home / spec.name / KEY_FILE
            if target.key.resolve() != dest.resolve():
                write_secret(dest, target.key.read_bytes())
            key_copy = str(dest)
        addresses = list(dict.fromkeys([target.host, *facts.addresses]))
        return NodeRecord(
            name=spec.name,
            driver=self.name,
            provider_id=target.label,
            addresses=addresses,
            data={
                "ssh_host": target.host,
                "ssh_port": target.port,
                "ssh_user": target.user,
                "ssh_key": key_copy,
                "engine_install": self._install(spec.options),
                # the swarm knows a node by the host's own name, which flotte never changes
                "hostname": facts.hostname,
                "os": distros.describe(facts.os_release),
                "arch": facts.machine,
                "docker_preinstalled": facts.docker_installed,
                "owner": self._owner_record(spec.owner, spec.name),
            },
        )

    async def provision(self, spec: NodeSpec, node: NodeRecord, engine: EngineOptions) -> Endpoint:
        target = self._node_target(node)
        owner = node.data.get("owner") or self._owner_record(spec.owner, spec.name)
        report = await provision_docker_host(
            target,
            engine,
            self.ctx.ca,
            node.name,
            sans=[*node.addresses, *engine.tls_sans],
            install=str(node.data.get("engine_install") or self._install(spec.options)),
            owner=owner,
            install_url=spec.options.get("engine_install_url") or None,
            # provisioning again a provisioned node is regenerate-certs / machine provision
            renew_cert=bool(node.data.get("provision")),
            # per-host steps for a live display, when the service gives the context one
            progress=getattr(self.ctx, "progress", None),
        )
        node.data["provision"] = {
            "docker_version": report.docker_version,
            "adopted": report.adopted,
            "installed": report.installed,
            "changes": report.changes,
            "warnings": report.warnings,
        }
        return self.endpoint(node)

    def endpoint(self, node: NodeRecord) -> Endpoint:
        d = node.data
        return Endpoint(
            host=d.get("ssh_host") or node.address,
            docker_port=DOCKER_TLS_PORT,
            ssh_port=int(d.get("ssh_port") or 22),
            ssh_user=d.get("ssh_user") or "root",
            ssh_key=d.get("ssh_key"),
        )

    async def state(self, node: NodeRecord) -> NodeState:
        ep = self.endpoint(node)
        if await tls_ping(ep.host, ep.docker_port, client_ssl_context(self.ctx.ca)):
            return NodeState.RUNNING
        try:
            async with session(self._node_target(node, quick=True)) as sess:
                facts = await gather_facts(sess)
        except Unreachable:
            return NodeState.ERROR
        except FlotteError:
            return NodeState.UNKNOWN
        return NodeState.RUNNING if facts.docker_running else NodeState.STOPPED

    async def _service(self, node: NodeRecord, action: str) -> None:
        async with session(self._node_target(node)) as sess:
            await sess.check_root()
            facts = await gather_facts(sess)
            init = distros.INIT_SYSTEMS.get(facts.init)
            if init is None:
                raise UsageError(f"{node.name}: no systemd or init.d to drive docker with")
            await sess.run(getattr(init, action), timeout=120, check=action != "kill")

    async def _wait_up(self, node: NodeRecord, timeout: float = 60) -> None:
        from flotte.provision.docker_host import wait_tls

        await wait_tls(self.endpoint(node).host, self.ctx.ca, timeout)

    async def start(self, node: NodeRecord) -> NodeRecord:
        await self._service(node, "start")
        await self._wait_up(node)
        return node

    async def stop(self, node: NodeRecord) -> None:
        await self._service(node, "stop")

    async def restart(self, node: NodeRecord) -> NodeRecord:
        await self._service(node, "restart")
        await self._wait_up(node)
        return node

    async def kill(self, node: NodeRecord) -> None:
        await self._service(node, "kill")

    async def remove(self, node: NodeRecord, *, purge: bool = False) -> None:
        """Give the host its own Docker configuration back (and the engine, with purge).

        A node whose provisioning never finished (a create being rolled back) also loses
        the Docker engine flotte installed for it: a failed create leaves nothing behind.
        An engine that was there before flotte is never removed.
        """
        if node.data.get("ssh_host"):
            owner = node.data.get("owner") or {}
            await unprovision(
                self._node_target(node),
                purge=purge or not node.data.get("provision"),
                owner=owner or None,
                # a cluster node's swarm is flotte's: joining refuses a host in another one
                leave_swarm=bool(owner.get("cluster")),
            )
        with contextlib.suppress(FileNotFoundError):
            (self.ctx.home / node.name / KEY_FILE).unlink()
        with contextlib.suppress(OSError):
            (self.ctx.home / node.name).rmdir()

    def _known_hosts_in_options(self) -> list[SSHTarget]:
        out = []
        per_node = self.ctx.options.get("hosts_per_node") or []
        for opts in [*per_node, self.ctx.options]:
            if opts.get("ssh_host"):
                with contextlib.suppress(UsageError):
                    out.append(self._target_from(opts, quick=True))
        return out

    async def _owned(self, owner: Owner) -> list[SSHTarget]:
        """Hosts named in this driver's options that carry ``owner``'s record."""

        async def probe(t: SSHTarget) -> SSHTarget | None:
            try:
                async with session(t) as sess:
                    raw = await sess.read(OWNER_FILE)
            except FlotteError:
                return None
            try:
                there = json.loads(raw or b"{}")
            except ValueError:
                return None
            want = {k: v for k, v in self._owner_record(owner, "").items() if k != "node"}
            return t if all(there.get(k) == v for k, v in want.items()) else None

        found = await asyncio.gather(*(probe(t) for t in self._known_hosts_in_options()))
        return [t for t in found if t is not None]

    async def leftovers(self, owner: Owner) -> list[str]:
        return [f"{t.host}: flotte's Docker TLS configuration" for t in await self._owned(owner)]

    async def sweep(self, owner: Owner) -> int:
        targets = await self._owned(owner)
        for t in targets:
            await unprovision(t)
        return len(targets)
