"""Docker Swarm mode over nodes that each expose a TLS Docker engine.

Every action is idempotent: ``init`` on a manager that is already in a swarm returns
that swarm's tokens; ``join`` of a node that is already a member does nothing. That is
what lets a killed ``cluster create`` be re-run.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flotte import dockerapi
from flotte.errors import ClusterError, TimeoutError_
from flotte.models import Endpoint
from flotte.pki import CertificateAuthority

if TYPE_CHECKING:
    import docker

SWARM_PORT = 2377
# How long a join already under way on a node is given to finish before it is
# started over; on a loaded machine the engine's own 20 s join timeout passes while
# the join goes on in the background.
PENDING_WAIT = 60.0


def dig(data: Any, *keys: str) -> Any:
    """``data[k1][k2]...`` or None: engine answers are untrusted, and often partial.

    A node that has just joined is listed before its ``Description`` is filled in; an
    engine of another version, or something else answering on its port, may leave out
    or change the type of any field.
    """
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _text(data: Any, *keys: str) -> str:
    value = dig(data, *keys)
    return value if isinstance(value, str) else ""


def _joined(swarm: Any, cluster_id: str, managers: list[str]) -> bool:
    """Whether an engine's ``Swarm`` info says it is an active member of this swarm. A
    manager names the cluster; a worker's engine does not (no ``Cluster`` in its info),
    only the managers it talks to."""
    if dig(swarm, "LocalNodeState") != "active":
        return False
    if dig(swarm, "Cluster", "ID") == cluster_id:
        return True
    remote = dig(swarm, "RemoteManagers")
    known = {f"{m}:{SWARM_PORT}" for m in managers}
    return isinstance(remote, list) and any(
        isinstance(r, dict) and r.get("Addr") in known for r in remote
    )


def node_view(attrs: Any) -> dict[str, Any]:
    """One swarm node as flotte reads it; missing fields are empty, never an error."""
    return {
        "id": _text(attrs, "ID"),
        "hostname": _text(attrs, "Description", "Hostname"),
        "role": _text(attrs, "Spec", "Role"),
        "availability": _text(attrs, "Spec", "Availability"),
        "state": _text(attrs, "Status", "State"),
        "addr": _text(attrs, "Status", "Addr"),
        "leader": dig(attrs, "ManagerStatus", "Leader") is True,
        # filled in by the node's own engine once it has joined: "" until then
        "engine_version": _text(attrs, "Description", "Engine", "EngineVersion"),
    }


@dataclass(frozen=True)
class Tokens:
    manager: str
    worker: str
    cluster_id: str


class Swarm:
    """Swarm operations through each node's engine; blocking calls run in threads."""

    def __init__(self, ca: CertificateAuthority) -> None:
        self.ca = ca

    def connected(
        self, endpoint: Endpoint, timeout: int = 60
    ) -> AbstractContextManager[docker.DockerClient]:
        return dockerapi.connected(endpoint, self.ca, timeout)

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)

    async def init(self, manager: Endpoint, advertise: str, data_path: str | None = None) -> Tokens:
        """Start the swarm on ``manager`` advertising ``advertise``; its data path
        (VXLAN) on ``data_path`` when given (a mesh address), else on the same."""

        def run() -> Tokens:
            import docker.errors

            with self.connected(manager) as cli:
                state = dig(cli.info(), "Swarm", "LocalNodeState")
                if state != "active":
                    try:
                        cli.swarm.init(
                            advertise_addr=advertise,
                            listen_addr=f"0.0.0.0:{SWARM_PORT}",
                            data_path_addr=data_path,
                        )
                    except docker.errors.APIError as err:
                        raise ClusterError(
                            f"swarm init on {manager.host} failed: {err.explanation}"
                        ) from err
                attrs = cli.api.inspect_swarm()
                tokens = Tokens(
                    manager=_text(attrs, "JoinTokens", "Manager"),
                    worker=_text(attrs, "JoinTokens", "Worker"),
                    cluster_id=_text(attrs, "ID"),
                )
                if not (tokens.manager and tokens.worker and tokens.cluster_id):
                    raise ClusterError(
                        f"the swarm manager {manager.host} did not give its join tokens",
                        hint="check that it is a Docker engine in swarm mode, then re-run",
                    )
                return tokens

        tokens: Tokens = await self._run(run)
        return tokens

    async def join(
        self,
        node: Endpoint,
        advertise: str,
        managers: list[str],
        token: str,
        cluster_id: str,
        data_path: str | None = None,
        pending_wait: float = PENDING_WAIT,
    ) -> None:
        def run() -> None:
            import docker.errors

            with self.connected(node) as cli:
                swarm = dig(cli.info(), "Swarm")
                deadline = time.monotonic() + pending_wait
                # A join a killed run (or a join the engine timed out on) started may
                # still be under way: let it finish rather than join a second time
                # (which leaves a Down twin behind).
                while dig(swarm, "LocalNodeState") == "pending" and time.monotonic() < deadline:
                    time.sleep(0.5)
                    swarm = dig(cli.info(), "Swarm")
                if _joined(swarm, cluster_id, managers):
                    return
                if dig(swarm, "LocalNodeState") not in (None, "", "inactive"):
                    # another swarm from an earlier attempt, or a join stuck pending or
                    # in error: the engine refuses a new join until it leaves
                    with contextlib.suppress(docker.errors.APIError):
                        cli.swarm.leave(force=True)
                try:
                    cli.swarm.join(
                        remote_addrs=[f"{m}:{SWARM_PORT}" for m in managers],
                        join_token=token,
                        advertise_addr=advertise,
                        listen_addr=f"0.0.0.0:{SWARM_PORT}",
                        data_path_addr=data_path,
                    )
                except docker.errors.APIError as err:
                    # the earlier join may have completed in between: that is success
                    if _joined(dig(cli.info(), "Swarm"), cluster_id, managers):
                        return
                    raise ClusterError(
                        f"{node.host} could not join the swarm: {err.explanation}"
                    ) from err

        await self._run(run)

    async def nodes(self, manager: Endpoint) -> list[dict[str, Any]]:
        def run() -> list[dict[str, Any]]:
            with self.connected(manager) as cli:
                listed = cli.api.nodes()
                return [node_view(n) for n in listed] if isinstance(listed, list) else []

        nodes: list[dict[str, Any]] = await self._run(run)
        return nodes

    async def wait_ready(
        self, manager: Endpoint, hostnames: set[str], timeout: float
    ) -> list[dict[str, Any]]:
        """Wait until every hostname is a Ready node of the swarm; the last listing
        (``node_view``s, each Ready node's engine version with it)."""
        deadline = time.monotonic() + timeout
        delay = 0.1
        while True:
            nodes = await self.nodes(manager)
            # a node listed without its hostname yet is simply not Ready yet
            ready = {n["hostname"] for n in nodes if n["state"] == "ready" and n["hostname"]}
            missing = hostnames - ready
            if not missing:
                return nodes
            if time.monotonic() > deadline:
                raise TimeoutError_(
                    f"swarm nodes not Ready after {timeout:.0f} s: {', '.join(sorted(missing))}"
                )
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 1.0)

    async def prune(self, manager: Endpoint, hostnames: set[str]) -> int:
        """Forget Down entries of ``hostnames`` that have a Ready twin (a node that joined
        again after an interrupted join); returns how many went."""

        def run() -> int:
            import docker.errors

            gone = 0
            with self.connected(manager) as cli:
                listed = cli.nodes.list()
                ready = {
                    dig(n.attrs, "Description", "Hostname")
                    for n in listed
                    if dig(n.attrs, "Status", "State") == "ready"
                }
                for n in listed:
                    host = dig(n.attrs, "Description", "Hostname")
                    state = dig(n.attrs, "Status", "State")
                    if host in hostnames and host in ready and state != "ready":
                        with contextlib.suppress(docker.errors.APIError):
                            cli.api.remove_node(n.id, force=True)
                            gone += 1
            return gone

        pruned: int = await self._run(run)
        return pruned

    async def remove(self, manager: Endpoint, node: Endpoint | None, hostname: str) -> None:
        """Drain ``hostname``, make it leave, and delete it from the swarm's node list."""

        def own_id() -> str:
            """The node's swarm ID as the node itself says (its record may be partial)."""
            import docker.errors

            assert node is not None
            try:
                with self.connected(node, timeout=10) as cli:
                    return _text(cli.info(), "Swarm", "NodeID")
            except (docker.errors.DockerException, OSError):
                return ""

        def drain_and_demote(known_id: str) -> str | None:
            import docker.errors

            with self.connected(manager) as cli:
                listed = cli.api.nodes()
                views = [node_view(n) for n in listed] if isinstance(listed, list) else []
                found = [v["id"] for v in views if v["hostname"] == hostname and v["id"]]
                node_id = found[0] if found else known_id
                if not node_id:
                    return None
                try:
                    attrs = cli.api.inspect_node(node_id)
                except docker.errors.NotFound:
                    return None
                spec, version = dig(attrs, "Spec"), dig(attrs, "Version", "Index")
                if isinstance(spec, dict) and isinstance(version, int):
                    spec = {**spec, "Availability": "drain", "Role": "worker"}
                    try:
                        cli.api.update_node(node_id, version, spec)
                    except docker.errors.APIError as err:
                        raise ClusterError(
                            f"{manager.host} could not drain {hostname}: {err.explanation}"
                        ) from err
                return node_id

        def leave(node_id: str | None) -> None:
            import docker.errors

            assert node is not None
            try:
                with self.connected(node, timeout=10) as cli:
                    if not is_the_node(cli.info(), node_id, hostname):
                        return  # its address now belongs to another node (a replacement)
                    cli.swarm.leave(force=True)
            except (docker.errors.DockerException, OSError):
                pass  # the node may already be gone; the manager removes it below

        def forget(node_id: str) -> None:
            import docker.errors

            with self.connected(manager) as cli:
                for _ in range(50):
                    try:
                        cli.api.remove_node(node_id, force=True)
                        return
                    except docker.errors.NotFound:
                        return
                    except docker.errors.APIError:
                        time.sleep(0.2)  # demotion still in progress

        node_id = await self._run(drain_and_demote, "")
        # A dead node (healing) would hold the leave up for the client's whole timeout.
        alive = node is not None and await dockerapi.ping(node, dockerapi.ssl_context(self.ca), 2.0)
        if node_id is None and alive:
            # listed without its hostname (just joined, or a partial answer): ask the node
            node_id = await self._run(drain_and_demote, await self._run(own_id))
        if alive:
            await self._run(leave, node_id)
        if node_id:
            await self._run(forget, node_id)


def is_the_node(info: Any, node_id: str | None, hostname: str) -> bool:
    """Whether the engine that gave ``info`` is the swarm node ``node_id``/``hostname``.

    A dead node's address may already belong to the node that replaced it (a local
    bridge or a cloud subnet hands freed addresses out again): that engine must not be
    told to leave the swarm in its predecessor's name.
    """
    swarm = info.get("Swarm") if isinstance(info, dict) else None
    found = swarm.get("NodeID") if isinstance(swarm, dict) else None
    if node_id and found:
        return bool(found == node_id)
    return bool(isinstance(info, dict) and info.get("Name") == hostname)
