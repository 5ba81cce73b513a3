"""The driver contract: a handful of idempotent actions, capabilities as data.

A driver makes nodes (containers, VMs, adopted hosts) and turns them into TLS Docker
engines. It does not know about clusters beyond the shared resources a group of nodes
needs (a network, a security group, a key pair), and it never imports the CLI.

Every action must be safe to repeat: ``create`` for a node that already exists (found
by its owner labels/tags) adopts it instead of making a second one; ``remove`` of a node
that is gone succeeds. That is what lets a killed command be re-run.
"""

from __future__ import annotations

import abc
import contextlib
import threading
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from flotte.models import Endpoint, EngineOptions, NodeRecord, NodeSpec, NodeState, Owner
from flotte.pki import CertificateAuthority
from flotte.provision.access import SSHAccess

__all__ = [
    "Capabilities",
    "ClientPool",
    "Driver",
    "DriverContext",
    "DriverOption",
    "GroupSpec",
    "SSHAccess",
]


T = TypeVar("T")


class ClientPool:
    """API clients shared by every driver instance of one installation, one per provider.

    The service holds one pool and hands it to every driver it makes (``DriverContext.
    clients``): node groups with their own options, and the many calls of one command,
    then share one docker client, one openstack Connection per cloud account, one boto3
    client per region and account. A client is made on first use, by the driver that
    needs it, so bad options still fail in that driver's own words and a dry run that
    never reaches a provider makes none.
    """

    def __init__(self) -> None:
        self._made: dict[Hashable, Any] = {}
        self._lock = threading.Lock()

    def peek(self, key: Hashable) -> Any:
        """The client made for ``key``, or None."""
        with self._lock:
            return self._made.get(key)

    def get(self, key: Hashable, make: Callable[[], T]) -> T:
        """The client for ``key``, made with ``make`` (blocking) the first time."""
        with self._lock:
            if key in self._made:
                found: T = self._made[key]
                return found
        made = make()  # outside the lock: building a client may take a while
        with self._lock:
            kept: T = self._made.setdefault(key, made)
        if kept is not made:  # another thread was quicker: keep one
            _close(made)
        return kept

    def forget(self, key: Hashable) -> None:
        """Drop and close the client of ``key`` (credentials changed)."""
        with self._lock:
            found = self._made.pop(key, None)
        if found is not None:
            _close(found)

    def close(self) -> None:
        with self._lock:
            made, self._made = list(self._made.values()), {}
        for client in made:
            _close(client)


def _close(client: Any) -> None:
    close = getattr(client, "close", None)
    if callable(close):
        with contextlib.suppress(Exception):
            close()


@dataclass(frozen=True)
class Capabilities:
    """What a driver can do; the service checks these instead of driver names."""

    start_stop: bool = True  # start/stop/restart are offered
    kill: bool = True
    snapshot: bool = False  # has snapshot(node, name) -> image ID
    max_parallel: int = 16  # how many infrastructure calls at once (API rate limits)
    adopt_existing: bool = False  # the node existed before flotte (ssh hosts)
    catalog_provider: str | None = None  # catalog entry that prices this driver's nodes
    # The driver bounds its own cloud calls (a per-provider budget of ``max_parallel``)
    # and gathers concurrent create()/remove() calls into bulk ones (EC2 RunInstances,
    # Neutron's bulk POST /ports): the executor lets every create and remove of a plan
    # reach it at once instead of holding nodes back in waves.
    self_paced: bool = False


@dataclass(frozen=True)
class DriverOption:
    """One driver flag, e.g. ``--openstack-flavor-name``; also read from ``envvar``."""

    name: str  # the long flag without dashes, e.g. "openstack-flavor-name"
    help: str
    default: Any = None
    envvar: str | None = None
    multiple: bool = False
    is_flag: bool = False
    type: type = str
    aliases: tuple[str, ...] = ()  # other spellings (docker-machine's --amazonec2-*)
    secret: bool = False  # never shown in inspect/config output
    template_field: str | None = None  # the Magnum ClusterTemplate field it comes from
    # Where a node goes (ssh: the host). The service moves it into NodeSpec.host and the
    # node group's hosts; it is never kept as an option.
    placement: bool = False

    @property
    def key(self) -> str:
        return self.name.replace("-", "_")


@dataclass
class DriverContext:
    """What every driver gets from the service: where files go, the CA, who owns what."""

    home: Path  # the installation's secrets directory for this driver's files
    ca: CertificateAuthority
    installation: str
    options: Mapping[str, Any] = field(default_factory=dict)
    known_hosts: Path | None = None  # flotte's own known_hosts (trust on first use)
    progress: Callable[[str, str], None] | None = None  # (node, what it is doing now)
    # An API client handed in (docker.DockerClient, openstack Connection, boto3 EC2
    # client) for every call of this driver; None: taken from ``clients``.
    client: Any = None
    # Where clients are made once and shared: the service passes the installation's pool
    # to every driver; a driver made alone gets a pool of its own.
    clients: ClientPool = field(default_factory=ClientPool)


@dataclass(frozen=True)
class GroupSpec:
    """Nodes that share infrastructure: one lone machine, or one cluster."""

    name: str  # machine or cluster name
    owner: Owner
    options: Mapping[str, Any] = field(default_factory=dict)
    roles: tuple[str, ...] = ("machine",)
    size: int = 1  # nodes planned, for quota checks
    nodes: tuple[NodeSpec, ...] = ()  # the nodes the plan will create (options, hosts)


class Driver(abc.ABC):
    """Base class of every driver. Subclasses set ``name``, ``capabilities``, ``options``."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    capabilities: ClassVar[Capabilities] = Capabilities()
    options: ClassVar[tuple[DriverOption, ...]] = ()
    # Options whose values tell one site (a private network) from another: nodes of
    # groups that differ in one of them share no private network, so a cluster over
    # them needs the WireGuard mesh (flotte.mesh). Default: one site per driver.
    site_options: ClassVar[tuple[str, ...]] = ()
    # Whether nodes get an address other sites reach, from the options alone (before
    # anything is made): only when one of ``public_options`` is set (a floating IP
    # pool), never when one of ``private_options`` is (private addresses only).
    public_options: ClassVar[tuple[str, ...]] = ()
    private_options: ClassVar[tuple[str, ...]] = ()

    def __init__(self, ctx: DriverContext) -> None:
        self.ctx = ctx

    def site(self) -> str:
        """Which site this instance's nodes sit on: nodes of one site share a network."""
        values = [str(self.ctx.options.get(k) or "") for k in self.site_options]
        return ":".join([self.name, *values])

    def will_be_public(self) -> bool:
        """Whether this instance's nodes will have an address other sites reach: the
        mesh refuses sites that cannot reach each other before anything is made."""
        if any(self.option(k) for k in self.private_options):
            return False
        return not self.public_options or any(self.option(k) for k in self.public_options)

    def public_address(self, node: NodeRecord) -> str | None:
        """The address other sites reach ``node`` on, as the provider reports it (a
        floating IP, a server's own address); None when it has none."""
        return str(node.data.get("public_address") or node.address) or None

    async def open_mesh(  # noqa: B027 - optional hook
        self, nodes: Sequence[NodeRecord], sources: Sequence[str], port: int
    ) -> None:
        """Let exactly ``sources`` (addresses as /32 or /128: the other mesh members')
        send UDP ``port`` to ``nodes`` through the provider's own firewall (a security
        group), and nothing else there. Called again with the whole list whenever
        members come or go, with [] when the last peer leaves. Nothing by default:
        hosts with no provider firewall rely on the FLOTTE-MESH chain the mesh script
        installs on every node (flotte.mesh.scripts.firewall)."""

    async def run_script(
        self,
        node: NodeRecord,
        script: str,
        files: Sequence[tuple[str, bytes, int]] = (),
        *,
        what: str = "script",
    ) -> str:
        """Write ``files`` (path, content, mode) on the node, then run ``script`` as root
        there; its output. Over SSH by default (file contents on stdin, never on a
        command line); drivers that reach their nodes another way override it. A failure
        raises ProvisionError naming ``what``."""
        from flotte.provision.sessions import SSHTarget, session

        ep = self.endpoint(node)
        target = SSHTarget(
            host=ep.host,
            port=ep.ssh_port,
            user=ep.ssh_user,
            key=Path(ep.ssh_key) if ep.ssh_key else None,
            known_hosts=self.ctx.known_hosts,
        )
        async with session(target) as sess:
            await sess.put_many(list(files))
            return (await sess.run(script, what=what)).stdout

    def option(self, key: str, default: Any = None) -> Any:
        value = self.ctx.options.get(key)
        return default if value in (None, (), []) else value

    async def check(self, group: GroupSpec) -> None:  # noqa: B027 - optional hook
        """Validate options and reach the target before anything is made; raise UsageError."""

    async def prepare(self, group: GroupSpec) -> dict[str, Any]:
        """Make (or find) what the group's nodes share; the result is stored and passed back."""
        return {}

    @abc.abstractmethod
    async def create(self, spec: NodeSpec, shared: Mapping[str, Any]) -> NodeRecord:
        """Make the node, or adopt it if a previous run already made it."""

    def ssh_access(self, spec: NodeSpec, node: NodeRecord) -> SSHAccess:
        """How the shared provisioner reaches ``node`` over SSH (address, login, waits).

        Drivers whose nodes are reached by SSH implement only this; ``provision`` does
        the rest. A driver that makes its engines another way overrides ``provision``.
        """
        raise NotImplementedError(f"the {self.name} driver does not reach its nodes by SSH")

    async def provision(self, spec: NodeSpec, node: NodeRecord, engine: EngineOptions) -> Endpoint:
        """Run a TLS Docker engine on the node (certificates signed by ``ctx.ca``).

        The shared SSH provisioner, through :meth:`ssh_access`; what it did is kept in
        ``node.data["provision"]``. Running it again renews the certificate.
        """
        from flotte.provision.node import provision_node

        access = self.ssh_access(spec, node)
        await provision_node(
            node,
            access,
            engine,
            self.ctx.ca,
            known_hosts=self.ctx.known_hosts,
            progress=self.ctx.progress,
        )
        return access.endpoint

    @abc.abstractmethod
    async def state(self, node: NodeRecord) -> NodeState:
        """The node's state as docker-machine reports it."""

    async def start(self, node: NodeRecord) -> NodeRecord:
        raise NotImplementedError

    async def stop(self, node: NodeRecord) -> None:
        raise NotImplementedError

    async def restart(self, node: NodeRecord) -> NodeRecord:
        await self.stop(node)
        return await self.start(node)

    async def kill(self, node: NodeRecord) -> None:
        await self.stop(node)

    @abc.abstractmethod
    async def remove(self, node: NodeRecord, *, purge: bool = False) -> None:
        """Delete the node; a node that is already gone is not an error."""

    async def release(self, group: GroupSpec, shared: Mapping[str, Any]) -> None:  # noqa: B027
        """Delete what ``prepare`` made once no node uses it."""

    @abc.abstractmethod
    async def leftovers(self, owner: Owner) -> list[str]:
        """Describe every resource labelled for ``owner`` that still exists (for leak checks)."""

    async def sweep(self, owner: Owner) -> int:
        """Delete every resource labelled for ``owner``: the crash-recovery path of delete."""
        return 0

    @abc.abstractmethod
    def endpoint(self, node: NodeRecord) -> Endpoint:
        """How to reach a node that has been provisioned."""

    def shell_command(self, node: NodeRecord, command: list[str]) -> list[str]:
        """argv that opens a shell (or runs ``command``) on the node, for ``machine ssh``."""
        ep = self.endpoint(node)
        argv = ["ssh", "-p", str(ep.ssh_port), "-o", "StrictHostKeyChecking=accept-new"]
        # Without it, the first `machine ssh` to a node prints "Warning: Permanently
        # added ... to the list of known hosts" (flotte's own file) into the user's
        # output; a changed host key is still an error and still shown.
        argv += ["-o", "LogLevel=ERROR"]
        if self.ctx.known_hosts:
            argv += ["-o", f"UserKnownHostsFile={self.ctx.known_hosts}"]
        if ep.ssh_key:
            argv += ["-i", ep.ssh_key, "-o", "IdentitiesOnly=yes"]
        return [*argv, f"{ep.ssh_user}@{ep.host}", *command]
