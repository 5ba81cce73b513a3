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
from flotte.errors import Unreachable

if TYPE_CHECKING:
    import docker

log = logging.getLogger(__name__)

_privileged_ok: dict[str, bool] = {}  # engine ID -> does --privileged work


def local_client() -> docker.DockerClient:
    """The local engine (DOCKER_HOST or the default socket), or one clear error."""
    import docker
    import docker.errors

    try:
        client = docker.from_env(timeout=120)
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
        self._image = image or None
        self._choice = privileged

    @property
    def docker(self) -> docker.DockerClient:
        if self._client is None:
            where = os.environ.get("DOCKER_HOST", "")
            self._client = self._pool.get(("docker", where), local_client)
        return self._client

    async def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a blocking SDK call in a worker thread, a bounded number at once."""
        async with self._sem:
            return await asyncio.to_thread(fn, *args, **kwargs)

    def image(self) -> str:
        if self._image is None:
            self._image = ensure_node_image(self.docker)
        return self._image

    def privileged(self) -> bool:
        if self._choice != "auto":
            return self._choice == "yes"
        engine_id = str(self.docker.info().get("ID", ""))
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


def sweep_probes(client: Any, older_than: float = 120.0) -> int:
    """Remove the probe containers of killed processes (created, never removed).

    Only those older than ``older_than`` seconds: a younger one may be another
    process's probe between its create and its remove. Returns how many went."""
    import datetime as dt

    import docker.errors

    now = dt.datetime.now(dt.UTC)
    gone = 0
    for old in client.containers.list(all=True, filters={"label": f"{PROBE_LABEL}=1"}):
        # Docker's RFC 3339 time has nanoseconds: the second is enough here
        try:
            made = dt.datetime.fromisoformat(str(old.attrs.get("Created", ""))[:19])
        except ValueError:
            continue
        if (now - made.replace(tzinfo=dt.UTC)).total_seconds() < older_than:
            continue
        with contextlib.suppress(docker.errors.NotFound):
            old.remove(force=True)
            gone += 1
    return gone
