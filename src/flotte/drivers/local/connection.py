"""The local Docker engine as the driver uses it: one client, bounded calls in threads.

Also what the driver learns about that engine once: the node image to run and whether
``--privileged`` works there (detected by a probe, remembered per engine ID).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flotte.config import write_public
from flotte.drivers.base import ClientPool
from flotte.drivers.local.image import ensure_node_image
from flotte.drivers.threads import in_thread, own_pool
from flotte.errors import Unreachable
from flotte.models import DOCKER_ENV

if TYPE_CHECKING:
    import docker

log = logging.getLogger(__name__)

_privileged_ok: dict[str, bool] = {}  # engine ID -> does --privileged work


def engine_env() -> dict[str, str]:
    """The environment that names the engine local machines run on.

    With DOCKER_MACHINE_NAME set (``flotte machine env``, docker-machine's env), the
    DOCKER_* variables name that machine's engine, not this host's. After
    ``eval $(flotte machine env box)``, taking them made ``machine ls`` show every local
    machine in Error and ``machine rm`` fail (the README's own steps, 2026-12-03).
    """
    env = dict(os.environ)
    if env.get("DOCKER_MACHINE_NAME"):
        for key in DOCKER_ENV:
            env.pop(key, None)
    return env


def local_client() -> docker.DockerClient:
    """The local engine (DOCKER_HOST or the default socket; not a machine's engine that
    ``machine env`` points at), or one clear error."""
    import docker
    import docker.errors

    try:
        # A connection for each call at once (the driver's 16, several drivers under
        # ``serve``); docker's default keeps 10 and drops the others after each call.
        client = docker.from_env(timeout=120, environment=engine_env(), max_pool_size=32)
        if client.api.base_url.startswith("http+docker://"):  # a socket, not TCP
            # requests otherwise reads the proxy variables and ~/.netrc at each call, for
            # nothing on a socket: 0.4 of 1.4 ms of CPU per call measured (25 per node).
            client.api.trust_env = False
        client.ping()
    except docker.errors.DockerException as err:
        raise Unreachable(
            "cannot reach the local Docker engine",
            hint="start it (sudo service docker start, or dockerd &) or set DOCKER_HOST",
        ) from err
    return client


class Engine:
    """The Docker client of one driver: handed in (``DriverContext.client``), else the
    installation's one (``DriverContext.clients``), made on first use."""

    def __init__(
        self,
        home: Path,
        client: docker.DockerClient | None,
        max_parallel: int,
        image: str | None = None,
        privileged: str = "auto",
        pool: ClientPool | None = None,
    ) -> None:
        self.home = home
        self._client = client
        self._pool = pool if pool is not None else ClientPool()
        self._sem = asyncio.Semaphore(max_parallel)
        self._threads = own_pool(max_parallel, "local")  # a thread per call allowed at once
        self._image = image or None
        self._choice = privileged
        self._engine_id: str | None = None

    @property
    def docker(self) -> docker.DockerClient:
        if self._client is None:
            where = engine_env().get("DOCKER_HOST", "")
            self._client = self._pool.get(("docker", where), local_client)
        return self._client

    async def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a blocking SDK call in a worker thread, a bounded number at once."""
        async with self._sem:
            return await in_thread(self._threads, fn, *args, **kwargs)

    def image(self) -> str:
        if self._image is None:
            self._image = ensure_node_image(self.docker)
        return self._image

    def privileged(self) -> bool:
        if self._choice != "auto":
            return self._choice == "yes"
        if self._engine_id is None:  # asked once, not at each node's create
            self._engine_id = str(self.docker.info().get("ID", ""))
        engine_id = self._engine_id
        if engine_id not in _privileged_ok:
            # The probe starts a container (about a second): remember its answer per engine.
            cache = self.home / "local-engines.json"
            known: dict[str, bool] = json.loads(cache.read_text()) if cache.exists() else {}
            if engine_id not in known:
                known[engine_id] = self._try_privileged()
                write_public(cache, json.dumps(known).encode())
            _privileged_ok[engine_id] = known[engine_id]
        return _privileged_ok[engine_id]

    def _try_privileged(self) -> bool:
        import docker.errors

        sweep_probes(self.docker)
        probe = None
        try:
            probe = self.docker.containers.create(
                self.image(), entrypoint=["true"], privileged=True, labels={PROBE_LABEL: "1"}
            )
            probe.start()
            return True
        except docker.errors.APIError as err:
            log.info("--privileged refused by this engine (%s); using a capability set", err)
            return False
        finally:
            if probe is not None:
                with contextlib.suppress(docker.errors.NotFound):
                    probe.remove(force=True)


PROBE_LABEL = "flotte:probe"


def listed(client: Any, labels: dict[str, str]) -> list[dict[str, Any]]:
    """Every container carrying all of ``labels``, as the engine's list answers them.

    Not ``containers.list()``: it inspects each container after the list, and a
    container another process is creating or removing is listed before inspect can find
    it (dockerd records it in its list view first), so that call fails with NotFound."""
    filters = {"label": [f"{k}={v}" for k, v in labels.items()]}
    found: list[dict[str, Any]] = client.api.containers(all=True, filters=filters)
    return found


def remove_container(client: Any, container_id: str) -> bool:
    """Remove a container with its anonymous volumes; False if it was already gone."""
    import docker.errors

    try:
        client.api.remove_container(container_id, force=True, v=True)
    except docker.errors.NotFound:
        return False
    return True


def sweep_probes(client: Any, older_than: float = 120.0) -> int:
    """Remove the probe containers of killed processes (created, never removed).

    Only those older than ``older_than`` seconds: a younger one may be another
    process's probe between its create and its remove. Returns how many went."""
    import time

    gone = 0
    for probe in listed(client, {PROBE_LABEL: "1"}):
        if time.time() - float(probe.get("Created", 0)) >= older_than:
            gone += remove_container(client, str(probe["Id"]))
    return gone
