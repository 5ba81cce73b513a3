"""What ``machine ls`` shows of recorded nodes beside their records: each node's state
(asked of its driver), its engine's Docker version and the certificates that expire.

It sits below the service and imports no use case: ``Machines`` (the service) and the
CLI's read-only listing path (records read with ``sqlite3``, ``state/reader.py``) both
use it, the latter without loading SQLAlchemy's ORM (half a second of CPU per command).
``RecordedDrivers`` makes a node owner's driver the way the lifecycle's ``Runner`` does
(the owner's options, its node group's, its secrets; the cluster's own CA if any), from
records alone.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from flotte import drivers, option_files
from flotte.config import Paths
from flotte.drivers.base import ClientPool, Driver, DriverContext
from flotte.errors import ConfigError, FlotteError
from flotte.models import NodeState
from flotte.pki import CertificateAuthority
from flotte.specs import ClusterSpec, NodeGroupSpec
from flotte.state.records import Node
from flotte.state.status import CREATING

DriverOf = Callable[[Node], Driver]  # raises FlotteError when it cannot be made
StateOf = Callable[[Node, Callable[[], Driver]], Awaitable[NodeState]]


async def node_state(node: Node, driver: Callable[[], Driver]) -> NodeState:
    """A node's state: STARTING while created, ERROR if never made or unreachable."""
    if node.status == CREATING:
        return NodeState.STARTING
    if node.record is None:
        return NodeState.ERROR
    try:
        return await driver().state(node.record)
    except FlotteError:
        return NodeState.ERROR


async def states(
    nodes: list[Node], driver_of: DriverOf, state_of: StateOf = node_state
) -> list[NodeState]:
    """Every node's state, with one driver per owner and driver: making a cluster node's
    driver reads its cluster's record, so one per node made N cluster nodes cost N^2."""
    made: dict[tuple[str, str, str], Driver] = {}

    def driver(node: Node) -> Driver:
        key = (*node.scope, node.driver)
        if key not in made:
            made[key] = driver_of(node)
        return made[key]

    def maker(node: Node) -> Callable[[], Driver]:
        return lambda: driver(node)

    return list(await asyncio.gather(*(state_of(n, maker(n)) for n in nodes)))


async def engine_versions(
    nodes: list[Node], ca: CertificateAuthority, timeout: float = 3.0
) -> dict[str, str]:
    """Docker version of each engine, asked in parallel ("" no engine, "Unknown")."""
    found = {n.name: "" for n in nodes if n.endpoint is None}
    asked = [n for n in nodes if n.endpoint is not None]
    if not asked:  # no engine to ask (--no-provision): no task per node, no docker SDK
        return found
    from flotte import dockerapi

    async def one(node: Node) -> tuple[str, str]:
        endpoint = node.endpoint
        assert endpoint is not None  # only nodes with an engine are asked

        def ask() -> str:
            with dockerapi.connected(endpoint, ca, timeout=int(timeout)) as cli:
                return str(cli.version().get("Version", ""))

        try:
            return node.name, await asyncio.wait_for(asyncio.to_thread(ask), timeout + 1)
        except Exception:  # an unreachable engine shows as Unknown
            return node.name, "Unknown"

    found.update(await asyncio.gather(*(one(n) for n in asked)))
    return {n.name: found[n.name] for n in nodes}


def changed_versions(nodes: list[Node], found: Mapping[str, str]) -> dict[str, str]:
    """The versions worth recording: answered, and not what is recorded already."""
    return {
        n.name: found[n.name]
        for n in nodes
        if found[n.name] not in ("", "Unknown", n.engine_version)
    }


async def errors(
    nodes: list[Node], ca: CertificateAuthority, timeout: float = 3.0
) -> dict[str, str]:
    """``ls``'s ERRORS column: a node's status reason, then certificates that expire
    within 30 days (the CA and client certificate, the engine's own)."""
    shared = ca.expiry_warnings()

    def line(node: Node, served: str | None = None) -> str:
        found = [node.status_reason] if node.status_reason else []
        if served:
            found.append(served)
        return "; ".join([*found, *shared])

    def served_by(node: Node) -> bool:  # an engine with flotte's own certificate
        return node.endpoint is not None and not node.endpoint.tls_dir

    # only engines are asked (in parallel): a thousand --no-provision nodes make no task
    asked = [n for n in nodes if served_by(n)]
    found = {n.name: line(n) for n in nodes if not served_by(n)}
    if asked:
        from flotte import certificates

        async def one(node: Node) -> tuple[str, str]:
            assert node.endpoint is not None
            served = await certificates.engine_expiry(node.endpoint, ca, timeout=timeout)
            return node.name, line(node, served)

        found.update(await asyncio.gather(*(one(n) for n in asked)))
    return {n.name: found[n.name] for n in nodes}


def is_imported(node: Node) -> bool:
    """Whether ``node`` came from docker-machine or a bundle (``record.data["imported"]``):
    its state may come from its own engine, which only the service's path asks."""
    return node.record is not None and isinstance(node.record.data.get("imported"), dict)


def cluster_ca(
    paths: Paths, cluster: str | None, default: CertificateAuthority
) -> CertificateAuthority:
    """The CA a cluster's engines trust: its own when flotte serve gave it one (written
    under ``secrets/cluster-ca/NAME`` by the worker), else ``default`` (the
    installation's)."""
    if cluster:
        own = CertificateAuthority(paths.cluster_ca(cluster) / "certs")
        if own.ca_path.exists():
            return own
    return default


def group_of(spec: ClusterSpec, driver: str) -> NodeGroupSpec | None:
    """The node group whose options a driver of ``spec`` takes beside the owner's: none
    for the owner's own driver, else the first group on that driver (``Runner``)."""
    if driver == spec.driver:
        return None
    return next((g for g in spec.nodegroups if g.driver == driver), None)


class RecordedDrivers:
    """Drivers for the owners of recorded nodes, made from records and secret files."""

    def __init__(
        self,
        paths: Paths,
        ca: CertificateAuthority,
        installation: str,
        specs: Mapping[tuple[str, str], ClusterSpec],
    ) -> None:
        self.paths, self.ca, self.installation = paths, ca, installation
        self.specs = specs  # ("cluster" | "machine", name) -> its recorded spec
        self.clients = ClientPool()
        self._made: dict[tuple[str, str, str], Driver] = {}
        # made once: a thousand lone machines are a thousand owners, and pathlib's
        # joins were a tenth of ``machine ls``'s profile
        self._secrets_root = str(paths.secrets)
        self._home, self._known_hosts = paths.machines, paths.known_hosts
        self._listed: dict[str, frozenset[str] | None] = {}

    def close(self) -> None:
        self.clients.close()

    def _secrets(self, kind: str, name: str) -> dict[str, Any]:
        """The owner's secret options (the file ``OptionStore`` writes)."""
        listed = self._with_secrets(kind)
        if listed is not None and name not in listed:
            return {}
        path = os.path.join(self._secrets_root, f"{kind}s", name, "options.json")
        return option_files.load(path, f"{kind} {name!r}")

    def _with_secrets(self, kind: str) -> frozenset[str] | None:
        """The owners of this kind with a secrets directory, listed once: most have
        none, and trying to open a thousand missing files was a tenth of ``machine ls``.
        None: the directory cannot be listed, each file is tried (and says why)."""
        if kind not in self._listed:
            try:
                found = os.listdir(os.path.join(self._secrets_root, f"{kind}s"))
                self._listed[kind] = frozenset(found)
            except FileNotFoundError:
                self._listed[kind] = frozenset()
            except OSError:
                self._listed[kind] = None
        return self._listed[kind]

    def driver_of(self, node: Node) -> Driver:
        kind, owner = node.scope
        spec = self.specs.get((kind, owner))
        if spec is None:
            raise ConfigError(f"{kind} {owner!r} has no recorded spec")
        options: dict[str, Any] = {}
        if node.driver == spec.driver:
            options.update(spec.options)
        group = group_of(spec, node.driver)
        if group is not None:
            options.update(group.options)
        options.update(self._secrets(kind, owner))
        ca = cluster_ca(self.paths, node.cluster, self.ca)
        key = (node.driver, json.dumps(options, sort_keys=True, default=str), str(ca.directory))
        if key not in self._made:
            context = DriverContext(
                home=self._home,
                ca=ca,
                installation=self.installation,
                options=options,
                known_hosts=self._known_hosts,
                clients=self.clients,
            )
            self._made[key] = drivers.get(node.driver)(context)
        return self._made[key]
