"""Docker Swarm mode over nodes that each expose a TLS Docker engine.

Every action is idempotent: ``init`` on a manager that is already in a swarm returns
that swarm's tokens; ``join`` of a node that is already a member does nothing. That is
what lets a killed ``cluster create`` be re-run.
"""

from __future__ import annotations

import asyncio
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


@dataclass(frozen=True)
class Tokens:
    manager: str
    worker: str
    cluster_id: str


class Swarm:
    """Swarm operations through each node's engine; blocking calls run in threads."""

    def __init__(self, ca: CertificateAuthority) -> None:
        self.ca = ca

    def connected(self, endpoint: Endpoint) -> AbstractContextManager[docker.DockerClient]:
        return dockerapi.connected(endpoint, self.ca)

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)

    async def init(self, manager: Endpoint, advertise: str) -> Tokens:
        def run() -> Tokens:
            import docker.errors

            with self.connected(manager) as cli:
                state = cli.info().get("Swarm", {}).get("LocalNodeState")
                if state != "active":
                    try:
                        cli.swarm.init(
                            advertise_addr=advertise, listen_addr=f"0.0.0.0:{SWARM_PORT}"
                        )
                    except docker.errors.APIError as err:
                        raise ClusterError(
                            f"swarm init on {manager.host} failed: {err.explanation}"
                        ) from err
                cli.swarm.reload()
                attrs = cli.swarm.attrs
                return Tokens(
                    manager=attrs["JoinTokens"]["Manager"],
                    worker=attrs["JoinTokens"]["Worker"],
                    cluster_id=attrs["ID"],
                )

        tokens: Tokens = await self._run(run)
        return tokens

    async def join(
        self, node: Endpoint, advertise: str, managers: list[str], token: str, cluster_id: str
    ) -> None:
        def run() -> None:
            import docker.errors

            with self.connected(node) as cli:
                swarm = cli.info().get("Swarm", {})
                if swarm.get("LocalNodeState") == "active":
                    if swarm.get("Cluster", {}).get("ID") == cluster_id:
                        return
                    cli.swarm.leave(force=True)  # a stale swarm from an earlier attempt
                try:
                    cli.swarm.join(
                        remote_addrs=[f"{m}:{SWARM_PORT}" for m in managers],
                        join_token=token,
                        advertise_addr=advertise,
                        listen_addr=f"0.0.0.0:{SWARM_PORT}",
                    )
                except docker.errors.APIError as err:
                    raise ClusterError(
                        f"{node.host} could not join the swarm: {err.explanation}"
                    ) from err

        await self._run(run)

    async def nodes(self, manager: Endpoint) -> list[dict[str, Any]]:
        def run() -> list[dict[str, Any]]:
            with self.connected(manager) as cli:
                return [
                    {
                        "id": n.id,
                        "hostname": n.attrs["Description"]["Hostname"],
                        "role": n.attrs["Spec"]["Role"],
                        "availability": n.attrs["Spec"]["Availability"],
                        "state": n.attrs["Status"]["State"],
                        "addr": n.attrs["Status"].get("Addr", ""),
                        "leader": bool(n.attrs.get("ManagerStatus", {}).get("Leader")),
                    }
                    for n in cli.nodes.list()
                ]

        nodes: list[dict[str, Any]] = await self._run(run)
        return nodes

    async def wait_ready(self, manager: Endpoint, hostnames: set[str], timeout: float) -> None:
        """Wait until every hostname is a Ready node of the swarm."""
        deadline = time.monotonic() + timeout
        delay = 0.1
        while True:
            nodes = await self.nodes(manager)
            ready = {n["hostname"] for n in nodes if n["state"] == "ready"}
            missing = hostnames - ready
            if not missing:
                return
            if time.monotonic() > deadline:
                raise TimeoutError_(
                    f"swarm nodes not Ready after {timeout:.0f} s: {', '.join(sorted(missing))}"
                )
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 1.0)

    async def remove(self, manager: Endpoint, node: Endpoint | None, hostname: str) -> None:
        """Drain ``hostname``, make it leave, and delete it from the swarm's node list."""

        def drain_and_demote() -> str | None:
            with self.connected(manager) as cli:
                for n in cli.nodes.list(filters={"name": hostname}):
                    if n.attrs["Description"]["Hostname"] != hostname:
                        continue
                    spec = dict(n.attrs["Spec"])
                    spec["Availability"] = "drain"
                    spec["Role"] = "worker"
                    n.update(spec)
                    return str(n.id)
            return None

        def leave() -> None:
            import docker.errors

            assert node is not None
            try:
                with self.connected(node) as cli:
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

        node_id = await self._run(drain_and_demote)
        if node is not None:
            await self._run(leave)
        if node_id:
            await self._run(forget, node_id)
