"""Nodes that are containers running dockerd on the local Docker engine.

Each node is a container of the node image (``local_image``), with a volume for its
``/var/lib/docker`` and an address on a bridge network: one network per cluster, one
shared ``flotte-machines`` network for lone machines. The engine inside starts only
after flotte has copied in a server certificate signed for the address the container
got (see the image's entry point), so the TLS endpoint is always valid.

Docker-in-Docker needs ``--privileged`` on an ordinary workstation; where the engine
refuses it (a bounding set without some capability), the node runs with the explicit
capability set instead. Which one works is detected once per engine, never assumed.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import re
import tarfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flotte import dockerapi
from flotte.config import write_public
from flotte.drivers.base import Capabilities, Driver, DriverContext, DriverOption, GroupSpec
from flotte.drivers.local_image import ensure_node_image
from flotte.errors import AlreadyExists, DriverError, ProvisionError, Unreachable
from flotte.models import Endpoint, EngineOptions, NodeRecord, NodeSpec, NodeState, Owner
from flotte.provision import engine_config
from flotte.sshkeys import ensure_keypair

if TYPE_CHECKING:
    import docker
    from docker.models.containers import Container

log = logging.getLogger(__name__)

MACHINES_NETWORK = "flotte-machines"
GO_FILE = "/run/flotte-go"  # the entry point starts dockerd once this exists
DIND_OPTIONS: dict[str, Any] = {
    "cap_add": ["ALL"],
    "cap_drop": ["SYS_RESOURCE"],
    "security_opt": ["seccomp=unconfined", "apparmor=unconfined"],
    "device_cgroup_rules": ["a *:* rwm"],
}
_STATES = {
    "running": NodeState.RUNNING,
    "created": NodeState.STOPPED,
    "exited": NodeState.STOPPED,
    "paused": NodeState.STOPPED,
    "restarting": NodeState.STARTING,
    "removing": NodeState.STOPPING,
    "dead": NodeState.ERROR,
}
_TELLING = re.compile(r"error|unknown|failed|invalid|denied", re.IGNORECASE)
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


def _labels(owner: Owner, **extra: str) -> dict[str, str]:
    return {**owner.labels(), **extra}


class LocalDriver(Driver):
    name = "local"
    description = "containers running dockerd on this machine's Docker engine"
    capabilities = Capabilities(
        start_stop=True, kill=True, max_parallel=16, catalog_provider="local"
    )
    options = (
        DriverOption(
            "local-image",
            "Node image to run (default: built on first use)",
            envvar="FLOTTE_LOCAL_IMAGE",
        ),
        DriverOption(
            "local-privileged",
            "auto, yes or no: run nodes with --privileged (auto detects what the engine allows)",
            default="auto",
        ),
    )

    def __init__(self, ctx: DriverContext) -> None:
        super().__init__(ctx)
        self._client: docker.DockerClient | None = None
        self._sem = asyncio.Semaphore(self.capabilities.max_parallel)
        self._image: str | None = None

    @property
    def docker(self) -> docker.DockerClient:
        if self._client is None:
            self._client = local_client()
        return self._client

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        async with self._sem:
            return await asyncio.to_thread(fn, *args, **kwargs)

    # -- checks and shared resources ---------------------------------------------------
    async def check(self, group: GroupSpec) -> None:
        await asyncio.to_thread(lambda: self.docker)
        choice = str(self.option("local_privileged", "auto"))
        if choice not in ("auto", "yes", "no"):
            from flotte.errors import UsageError

            raise UsageError(f"--local-privileged {choice!r}: use auto, yes or no")

    def image(self) -> str:
        if self._image is None:
            self._image = self.option("local_image") or ensure_node_image(self.docker)
        return self._image

    def _privileged(self) -> bool:
        choice = str(self.option("local_privileged", "auto"))
        if choice != "auto":
            return choice == "yes"
        engine_id = str(self.docker.info().get("ID", ""))
        if engine_id not in _privileged_ok:
            # The probe starts a container (about a second): remember its answer per engine.
            cache = self.ctx.home / "local-engines.json"
            known: dict[str, bool] = json.loads(cache.read_text()) if cache.exists() else {}
            if engine_id not in known:
                known[engine_id] = self._try_privileged()
                write_public(cache, json.dumps(known).encode())
            _privileged_ok[engine_id] = known[engine_id]
        return _privileged_ok[engine_id]

    def _try_privileged(self) -> bool:
        import docker.errors

        probe = None
        try:
            probe = self.docker.containers.create(
                self.image(), entrypoint=["true"], privileged=True, labels={"flotte.probe": "1"}
            )
            probe.start()
            return True
        except docker.errors.APIError as err:
            log.info("--privileged refused by this engine (%s); using a capability set", err)
            return False
        finally:
            if probe is not None:
                probe.remove(force=True)

    def _network_name(self, group: GroupSpec) -> str:
        if "cluster" in group.roles or group.owner.cluster:
            return f"flotte-{group.name}"
        # One per installation, so two FLOTTE_HOMEs never share (or delete) each other's.
        return f"{MACHINES_NETWORK}-{self.ctx.installation[:8]}"

    async def prepare(self, group: GroupSpec) -> dict[str, Any]:
        name = self._network_name(group)
        labels = (
            _labels(group.owner)
            if not name.startswith(MACHINES_NETWORK)
            else {"flotte.owner": self.ctx.installation, "flotte.network": "machines"}
        )

        def ensure() -> str:
            import docker.errors

            found = self.docker.networks.list(names=[name])
            for net in found:
                if net.name == name:
                    return str(net.id)
            try:
                net = self.docker.networks.create(name, driver="bridge", labels=labels)
            except docker.errors.APIError as err:
                if "already exists" in str(err):
                    return str(self.docker.networks.get(name).id)
                raise DriverError(f"cannot create network {name}: {err.explanation}") from err
            return str(net.id)

        await self._call(ensure)
        await self._call(self.image)
        await self._call(self._privileged)
        return {"network": name}

    async def release(self, group: GroupSpec, shared: Mapping[str, Any]) -> None:
        name = shared.get("network") or self._network_name(group)

        def remove() -> None:
            import docker.errors

            for net in self.docker.networks.list(names=[name]):
                if net.name != name:
                    continue
                net.reload()
                if net.attrs.get("Containers"):
                    return  # other machines still use the shared network
                try:
                    net.remove()
                except docker.errors.NotFound:
                    pass
                except docker.errors.APIError as err:
                    if "active endpoints" not in str(err):
                        raise

        await self._call(remove)

    # -- nodes --------------------------------------------------------------------------
    def _container_name(self, node_name: str) -> str:
        return f"flotte-{node_name}"

    def _find(self, node_name: str) -> Container | None:
        import docker.errors

        try:
            return self.docker.containers.get(self._container_name(node_name))
        except docker.errors.NotFound:
            return None

    def _address(self, container: Container, network: str) -> str:
        nets: dict[str, dict[str, Any]] = container.attrs["NetworkSettings"]["Networks"]
        found = nets.get(network) or next(iter(nets.values()), {})
        return str(found.get("IPAddress", ""))

    def _record(self, spec_name: str, container: Container, network: str) -> NodeRecord:
        return NodeRecord(
            name=spec_name,
            driver=self.name,
            provider_id=str(container.id),
            addresses=[self._address(container, network)],
            data={
                "container": container.name,
                "volume": f"flotte-{spec_name}-docker",
                "network": network,
            },
        )

    async def create(self, spec: NodeSpec, shared: Mapping[str, Any]) -> NodeRecord:
        network = str(shared["network"])

        def run() -> NodeRecord:
            existing = self._find(spec.name)
            if existing is not None:
                if existing.labels.get("flotte.owner") != self.ctx.installation:
                    raise AlreadyExists(
                        f"a container named {existing.name} exists and this flotte "
                        "installation did not make it"
                    )
                if existing.status != "running":
                    existing.start()
                existing.reload()
                return self._record(spec.name, existing, network)
            labels = _labels(spec.owner, **{"flotte.node": spec.name, "flotte.role": spec.role})
            volume = f"flotte-{spec.name}-docker"
            self.docker.volumes.create(volume, labels=labels)
            container = self.docker.containers.get(
                self._create_container(spec, labels, volume, network)
            )
            container.start()
            container.reload()
            return self._record(spec.name, container, network)

        record: NodeRecord = await self._call(run)
        return record

    def _create_container(
        self, spec: NodeSpec, labels: dict[str, str], volume: str, network: str
    ) -> str:
        """Create the node's container with the low-level API and return its ID.

        The high-level SDK cannot express ``systempaths=unconfined``, which the CLI turns
        into empty MaskedPaths/ReadonlyPaths; the inner dockerd needs both.
        """
        api = self.docker.api
        binds = [f"{volume}:/var/lib/docker:rw"]
        if self._privileged():
            host_config = api.create_host_config(
                privileged=True, binds=binds, tmpfs={"/run": "", "/tmp": ""}, init=True
            )
        else:
            binds.append("/sys/fs/cgroup:/sys/fs/cgroup:rw")
            host_config = api.create_host_config(
                binds=binds, tmpfs={"/run": "", "/tmp": ""}, init=True, **DIND_OPTIONS
            )
            host_config["MaskedPaths"] = []
            host_config["ReadonlyPaths"] = []
        created = api.create_container(
            self.image(),
            name=self._container_name(spec.name),
            hostname=spec.name,
            labels=labels,
            host_config=host_config,
            networking_config=api.create_networking_config({network: api.create_endpoint_config()}),
            detach=True,
        )
        return str(created["Id"])

    async def provision(self, spec: NodeSpec, node: NodeRecord, engine: EngineOptions) -> Endpoint:
        node.data["engine"] = engine.to_dict()
        if await self._call(self._engine_started, spec.name):
            # dockerd reads its certificates once: a running engine restarts with new ones
            # (what docker-machine's regenerate-certs does too).
            restarted = await self.restart(node)
            node.addresses = restarted.addresses
            return self.endpoint(node)
        return await self._deliver(spec.name, node, engine)

    def _engine_started(self, name: str) -> bool:
        container = self._find(name)
        if container is None or container.status != "running":
            return False
        return bool(container.exec_run(["test", "-e", GO_FILE]).exit_code == 0)

    async def _deliver(self, name: str, node: NodeRecord, engine: EngineOptions) -> Endpoint:
        """Copy the engine's files in, say "go", then wait for TLS to answer."""
        engine_config.validate(engine)
        key_path, public_key = ensure_keypair(self.ctx.home / name / "id_ed25519")
        server = self.ctx.ca.server_cert(name, [node.address, *engine.tls_sans])
        files = [(f.path, f.content, f.mode) for f in engine_config.files(engine, server)]
        files.append(("/root/.ssh/authorized_keys", public_key, 0o600))
        archive = _tar(files)

        def put() -> None:
            container = self.docker.containers.get(self._container_name(name))
            if not container.put_archive("/", archive):
                raise DriverError(f"could not copy the engine's files into {name}")
            # /run is a tmpfs, empty at every boot: a "go" left by an earlier boot cannot
            # start dockerd with a certificate made for another address, and the entry
            # point never races us to delete it.
            if container.exec_run(["touch", GO_FILE]).exit_code != 0:
                raise DriverError(f"could not start the Docker engine of {name}")

        await self._call(put)
        endpoint = Endpoint(host=node.address, ssh_key=str(key_path))
        await dockerapi.wait_engine(
            endpoint, self.ctx.ca, timeout=90, what=name, alive=lambda: self._alive(name)
        )
        return endpoint

    async def _alive(self, name: str) -> None:
        """Raise with the node's last log lines if its container has stopped."""

        def check() -> None:
            container = self._find(name)
            if container is None:
                raise ProvisionError(f"{name}: its container disappeared while starting")
            if container.status != "running":
                logs = container.logs(tail=8).decode(errors="replace").strip().splitlines()
                telling = [line for line in logs if _TELLING.search(line)]
                last = (telling or logs or [f"exit code {container.attrs['State']['ExitCode']}"])[
                    -1
                ]
                raise ProvisionError(
                    f"{name}: the Docker engine stopped while starting: {last.strip()}"
                )

        await self._call(check)

    def endpoint(self, node: NodeRecord) -> Endpoint:
        key = self.ctx.home / node.name / "id_ed25519"
        return Endpoint(host=node.address, ssh_key=str(key))

    async def state(self, node: NodeRecord) -> NodeState:
        container = await self._call(self._find, node.name)
        if container is None:
            return NodeState.NOT_FOUND
        return _STATES.get(container.status, NodeState.UNKNOWN)

    async def start(self, node: NodeRecord) -> NodeRecord:
        def run() -> NodeRecord:
            container = self._find(node.name)
            if container is None:
                raise DriverError(f"container of {node.name} is gone: remove the machine")
            if container.status != "running":
                container.start()
            container.reload()
            network = str(node.data.get("network", ""))
            record = self._record(node.name, container, network)
            record.data["engine"] = node.data.get("engine", {})
            return record

        record: NodeRecord = await self._call(run)
        # The address may have changed: certificates are re-signed for the new one.
        await self._deliver(node.name, record, EngineOptions.from_dict(record.data["engine"]))
        return record

    async def stop(self, node: NodeRecord) -> None:
        def run() -> None:
            container = self._find(node.name)
            if container is not None and container.status == "running":
                container.stop(timeout=10)

        await self._call(run)

    async def restart(self, node: NodeRecord) -> NodeRecord:
        await self.stop(node)
        return await self.start(node)

    async def kill(self, node: NodeRecord) -> None:
        def run() -> None:
            container = self._find(node.name)
            if container is not None and container.status == "running":
                container.kill()

        await self._call(run)

    async def remove(self, node: NodeRecord, *, purge: bool = False) -> None:
        def run() -> None:
            import docker.errors

            container = self._find(node.name)
            if container is not None:
                container.remove(force=True, v=True)
            with contextlib.suppress(docker.errors.NotFound):
                self.docker.volumes.get(f"flotte-{node.name}-docker").remove(force=True)

        await self._call(run)

    # -- leak checks ----------------------------------------------------------------------
    def _owner_filters(self, owner: Owner) -> list[str]:
        return [f"{k}={v}" for k, v in owner.labels().items()]

    async def leftovers(self, owner: Owner) -> list[str]:
        def run() -> list[str]:
            filters = {"label": self._owner_filters(owner)}
            found = [
                f"container {c.name}"
                for c in self.docker.containers.list(all=True, filters=filters)
            ]
            found += [f"volume {v.name}" for v in self.docker.volumes.list(filters=filters)]
            found += [f"network {n.name}" for n in self.docker.networks.list(filters=filters)]
            return found

        result: list[str] = await self._call(run)
        return result

    async def sweep(self, owner: Owner) -> int:
        def run() -> int:
            import docker.errors

            filters = {"label": self._owner_filters(owner)}
            count = 0
            for c in self.docker.containers.list(all=True, filters=filters):
                c.remove(force=True, v=True)
                count += 1
            for v in self.docker.volumes.list(filters=filters):
                try:
                    v.remove(force=True)
                    count += 1
                except docker.errors.NotFound:
                    pass
            for n in self.docker.networks.list(filters=filters):
                try:
                    n.remove()
                    count += 1
                except docker.errors.NotFound:
                    pass
            return count

        result: int = await self._call(run)
        return result


def _tar(files: list[tuple[str, bytes, int]]) -> bytes:
    buf = io.BytesIO()
    now = time.time()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        dirs: set[str] = set()
        for path, content, mode in files:
            parts = Path(path.lstrip("/")).parts
            for i in range(1, len(parts)):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    info = tarfile.TarInfo(d)
                    info.type = tarfile.DIRTYPE
                    info.mode = 0o700 if d.endswith(".ssh") else 0o755
                    info.mtime = int(now)
                    tar.addfile(info)
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size = len(content)
            info.mode = mode
            info.mtime = int(now)
            tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()
