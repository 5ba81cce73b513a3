"""Node containers: made or adopted, given their engine's files, started and stopped.

Each node is a container of the node image with a volume for its ``/var/lib/docker``.
The engine inside starts only after flotte has copied in a server certificate signed
for the address the container got (see the image's entry point), so the TLS endpoint
is always valid. Docker-in-Docker needs ``--privileged`` on an ordinary workstation;
where the engine refuses it, the node runs with the explicit capability set instead.
"""

from __future__ import annotations

import io
import re
import tarfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flotte import dockerapi
from flotte.drivers.base import DriverContext
from flotte.drivers.local import names, resources
from flotte.drivers.local.connection import Engine
from flotte.errors import AlreadyExists, DriverError, ProvisionError
from flotte.models import Endpoint, EngineOptions, NodeRecord, NodeSpec, NodeState
from flotte.provision import engine_config
from flotte.sshkeys import ensure_keypair

if TYPE_CHECKING:
    from docker.models.containers import Container

GO_FILE = "/run/flotte-go"  # the entry point starts dockerd once this exists
DIND_OPTIONS: dict[str, Any] = {
    "cap_add": ["ALL"],
    "cap_drop": ["SYS_RESOURCE"],
    "security_opt": ["seccomp=unconfined", "apparmor=unconfined"],
    "device_cgroup_rules": ["a *:* rwm"],
}
STATES = {
    "running": NodeState.RUNNING,
    "created": NodeState.STOPPED,
    "exited": NodeState.STOPPED,
    "paused": NodeState.STOPPED,
    "restarting": NodeState.STARTING,
    "removing": NodeState.STOPPING,
    "dead": NodeState.ERROR,
}
_NETWORKS = threading.Lock()
_TELLING = re.compile(r"error|unknown|failed|invalid|denied", re.IGNORECASE)


class Nodes:
    """The node containers of one driver (blocking methods run through ``engine.call``)."""

    def __init__(self, engine: Engine, ctx: DriverContext, driver: str) -> None:
        self.engine = engine
        self.ctx = ctx
        self.driver = driver

    def container_name(self, node_name: str) -> str:
        return names.container(node_name, self.ctx.installation)

    def volume_name(self, node_name: str) -> str:
        return names.volume(node_name, self.ctx.installation)

    def find(self, node_name: str) -> Container | None:
        """The node's container; one an older flotte named without the installation's id
        is found too, when it carries our owner mark."""
        import docker.errors

        client = self.engine.docker
        try:
            return client.containers.get(self.container_name(node_name))
        except docker.errors.NotFound:
            pass
        try:
            old = client.containers.get(names.legacy_container(node_name))
        except docker.errors.NotFound:
            return None
        return old if names.owned_by(old.labels, self.ctx.installation) else None

    @staticmethod
    def _address(container: Container, network: str) -> str:
        nets: dict[str, dict[str, Any]] = container.attrs["NetworkSettings"]["Networks"]
        found = nets.get(network) or next(iter(nets.values()), {})
        return str(found.get("IPAddress", ""))

    def record(
        self, spec_name: str, container: Container, network: str, public: str = ""
    ) -> NodeRecord:
        data: dict[str, Any] = {
            "container": container.name,
            "volume": self.volume_name(spec_name),
            "network": network,
        }
        if public:
            nets: dict[str, dict[str, Any]] = container.attrs["NetworkSettings"]["Networks"]
            data["public_network"] = public
            data["public_address"] = str(nets.get(public, {}).get("IPAddress", ""))
        return NodeRecord(
            name=spec_name,
            driver=self.driver,
            provider_id=str(container.id),
            addresses=[self._address(container, network)],
            data=data,
        )

    def create(
        self, spec: NodeSpec, network: str, labels: dict[str, str], owner: dict[str, str]
    ) -> NodeRecord:
        """Make the node's volume and container and start it, or adopt them (blocking).

        ``--local-network`` puts the node on a network of its group's own (another site)
        and ``--local-public-network`` adds a second one whose address is the node's
        public address; either is made with the ``owner`` marks when missing.
        """
        own = str(spec.options.get("local_network") or "")
        public = str(spec.options.get("local_public_network") or "")
        network = own or network  # the group's own was made by ``prepare``
        for name in (own, public):
            if name:
                with _NETWORKS:  # parallel creates must not make two of one name
                    resources.ensure_network(self.engine, name, owner)
        existing = self.find(spec.name)
        if existing is not None:
            if not names.owned_by(existing.labels, self.ctx.installation):
                raise AlreadyExists(
                    f"a container named {existing.name} exists and this flotte "
                    "installation did not make it"
                )
            if existing.status != "running":
                self._start_where_it_was(existing, None)
            existing.reload()
            return self.record(spec.name, existing, network, public)
        volume = self.volume_name(spec.name)
        self.engine.docker.volumes.create(volume, labels=labels)
        container = self.engine.docker.containers.get(
            self._create_container(spec, labels, volume, network)
        )
        if public:
            self.engine.docker.networks.get(public).connect(container)
        container.start()
        container.reload()
        return self.record(spec.name, container, network, public)

    def _create_container(
        self, spec: NodeSpec, labels: dict[str, str], volume: str, network: str
    ) -> str:
        """Create the node's container with the low-level API and return its ID.

        The high-level SDK cannot express ``systempaths=unconfined``, which the CLI turns
        into empty MaskedPaths/ReadonlyPaths; the inner dockerd needs both.
        """
        api = self.engine.docker.api
        binds = [f"{volume}:/var/lib/docker:rw"]
        if self.engine.privileged():
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
            spec.options.get("local_image") or self.engine.image(),  # a node group's own
            name=self.container_name(spec.name),
            hostname=spec.name,
            labels=labels,
            host_config=host_config,
            networking_config=api.create_networking_config({network: api.create_endpoint_config()}),
            detach=True,
        )
        return str(created["Id"])

    def engine_started(self, name: str) -> bool:
        """True once flotte has said "go" to this boot of the node (blocking)."""
        container = self.find(name)
        if container is None or container.status != "running":
            return False
        return bool(container.exec_run(["test", "-e", GO_FILE]).exit_code == 0)

    async def deliver(self, name: str, node: NodeRecord, engine: EngineOptions) -> Endpoint:
        """Copy the engine's files in, say "go", then wait for TLS to answer."""
        engine_config.check_syntax(engine)  # the use case checked consent (validate)
        key_path, public_key = ensure_keypair(self.ctx.home / name / "id_ed25519")
        server = self.ctx.ca.server_cert(name, [node.address, *engine.tls_sans])
        files = [(f.path, f.content, f.mode) for f in engine_config.files(engine, server)]
        files.append(("/root/.ssh/authorized_keys", public_key, 0o600))
        archive = tar(files)

        def put() -> None:
            container = self.find(name)
            if container is None:
                raise DriverError(f"{name}: its container disappeared while starting")
            if not container.put_archive("/", archive):
                raise DriverError(f"could not copy the engine's files into {name}")
            # /run is a tmpfs, empty at every boot: a "go" left by an earlier boot cannot
            # start dockerd with a certificate made for another address, and the entry
            # point never races us to delete it.
            if container.exec_run(["touch", GO_FILE]).exit_code != 0:
                raise DriverError(f"could not start the Docker engine of {name}")

        await self.engine.call(put)
        endpoint = Endpoint(host=node.address, ssh_key=str(key_path))
        await dockerapi.wait_engine(
            endpoint, self.ctx.ca, timeout=90, what=name, alive=lambda: self._alive(name)
        )
        return endpoint

    async def _alive(self, name: str) -> None:
        """Raise with the node's last log lines if its container has stopped."""

        def check() -> None:
            container = self.find(name)
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

        await self.engine.call(check)

    def run(self, name: str, script: str, files: list[tuple[str, bytes, int]], what: str) -> str:
        """Copy ``files`` into the node, then run ``script`` there (blocking)."""
        container = self.find(name)
        if container is None or container.status != "running":
            raise ProvisionError(f"{name}: {what}: its container is not running")
        if files and not container.put_archive("/", tar(files)):
            raise ProvisionError(f"{name}: {what}: could not copy its files in")
        code, out = container.exec_run(["sh", "-c", script])
        text = out.decode(errors="replace") if isinstance(out, bytes) else ""
        if code != 0:
            last = (text.strip().splitlines() or ["no output"])[-1]
            raise ProvisionError(f"{name}: {what} failed (exit {code}): {last[:300]}")
        return text

    def endpoint(self, node: NodeRecord) -> Endpoint:
        key = self.ctx.home / node.name / "id_ed25519"
        return Endpoint(host=node.address, ssh_key=str(key))

    def state(self, name: str) -> NodeState:
        container = self.find(name)
        if container is None:
            return NodeState.NOT_FOUND
        return STATES.get(container.status, NodeState.UNKNOWN)

    def start(self, node: NodeRecord) -> NodeRecord:
        """Start the container; the caller delivers certificates for its address (blocking)."""
        container = self.find(node.name)
        if container is None:
            raise DriverError(f"container of {node.name} is gone: remove the machine")
        if container.status != "running":
            self._start_where_it_was(container, node)
        container.reload()
        record = self.record(
            node.name,
            container,
            str(node.data.get("network", "")),
            str(node.data.get("public_network", "")),
        )
        record.data["engine"] = node.data.get("engine", {})
        return record

    def _start_where_it_was(self, container: Container, node: NodeRecord | None) -> None:
        """Start a stopped node at the addresses its record holds (blocking).

        Docker gives a started container the first free address of each network unless
        its endpoint asks for one: two nodes restarted together then swap addresses and
        a swarm worker keeps calling its manager at what is now its own address (CI
        stop 22). A network made by an older flotte has no subnet of its own and cannot
        keep an address; nor can one whose address a new node took meanwhile: the node
        then starts wherever Docker puts it, and its certificates follow the address."""
        import docker.errors

        kept: dict[str, str] = {}
        if node is not None:
            pairs = [
                (node.data.get("network"), node.address),
                (node.data.get("public_network"), node.data.get("public_address")),
            ]
            kept = {str(n): str(a) for n, a in pairs if n and a}
        for net, address in kept.items():
            network = self.engine.docker.networks.get(net)
            try:
                network.disconnect(container)
                network.connect(container, ipv4_address=address)
            except docker.errors.APIError:
                self._reconnect(container, net)  # no subnet of its own: cannot keep it
        try:
            container.start()
        except docker.errors.APIError:
            if not kept:
                raise
            for net in kept:  # taken by another container meanwhile
                self._reconnect(container, net)
            container.start()

    def _reconnect(self, container: Container, net: str) -> None:
        import contextlib

        import docker.errors

        network = self.engine.docker.networks.get(net)
        with contextlib.suppress(docker.errors.APIError):
            network.disconnect(container)
        network.connect(container)

    def stop(self, name: str, *, kill: bool = False) -> None:
        container = self.find(name)
        if container is not None and container.status == "running":
            if kill:
                container.kill()
            else:
                container.stop(timeout=10)

    def remove(self, name: str) -> None:
        import contextlib

        import docker.errors

        container = self.find(name)
        if container is not None:
            container.remove(force=True, v=True)
        volumes = self.engine.docker.volumes
        with contextlib.suppress(docker.errors.NotFound):
            volumes.get(self.volume_name(name)).remove(force=True)
        with contextlib.suppress(docker.errors.NotFound):
            old = volumes.get(names.legacy_volume(name))
            if names.owned_by(old.attrs.get("Labels"), self.ctx.installation):
                old.remove(force=True)


def tar(files: list[tuple[str, bytes, int]]) -> bytes:
    """An uncompressed archive of ``(path, content, mode)`` files, with their directories."""
    buf = io.BytesIO()
    now = time.time()
    with tarfile.open(fileobj=buf, mode="w") as archive:
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
                    archive.addfile(info)
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size = len(content)
            info.mode = mode
            info.mtime = int(now)
            archive.addfile(info, io.BytesIO(content))
    return buf.getvalue()
