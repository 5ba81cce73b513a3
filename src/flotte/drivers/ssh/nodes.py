"""Hosts as nodes: checked before use, recorded, provisioned, driven through their
docker service, and given back by ``rm``.

``create`` makes nothing on the host: it reaches it, checks that flotte may use it
(root or passwordless sudo, a known OS, not taken by another machine) and records it.
``stop``/``start`` drive the docker service, since flotte does not own the machine's
power. ``rm`` gives the host its own Docker configuration back and never wipes it; with
``purge`` it also removes the Docker engine if (and only if) flotte installed it.
"""

from __future__ import annotations

import contextlib

from flotte import dockerapi
from flotte.config import write_secret
from flotte.dockerapi import ping, ssl_context, wait_version
from flotte.drivers.base import DriverContext
from flotte.drivers.ssh.connection import Targets
from flotte.drivers.ssh.marks import check_owner
from flotte.drivers.ssh.options import install_choice
from flotte.drivers.ssh.sweep import HostIndex
from flotte.errors import FlotteError, ProvisionError, Unreachable, UsageError
from flotte.models import CLUSTER_KEY, Endpoint, NodeRecord, NodeSpec, NodeState, Owner
from flotte.provision import distros
from flotte.provision.access import SSHAccess, provisioned
from flotte.provision.docker_host import unprovision
from flotte.provision.engine_config import DOCKER_TLS_PORT
from flotte.provision.report import OWNER_FILE, normal_marks
from flotte.provision.sessions import SSHTarget, gather_facts, load_client_key, session

KEY_FILE = "ssh_key"  # the user's key, copied (0600) so the machine outlives moves of it


class Hosts:
    """The node side of the ssh driver."""

    def __init__(self, ctx: DriverContext, targets: Targets, driver: str) -> None:
        self.ctx = ctx
        self.targets = targets
        self.driver = driver
        self.index = HostIndex(ctx.home)

    async def preflight(self, target: SSHTarget, install: str, owner: Owner) -> None:
        """Everything that would stop this host from becoming a node, found now."""
        async with session(target) as sess:
            await sess.check_root()
            facts = await gather_facts(sess)
            raw = await sess.read(OWNER_FILE)
        check_owner(target.host, raw, owner)
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

    def install(self, spec: NodeSpec) -> str:
        return install_choice(spec.options, self.ctx.options.get("engine_install"))

    async def create(self, spec: NodeSpec) -> NodeRecord:
        """Reach the host and record it; nothing on the host changes yet."""
        target = self.targets.of_spec(spec)
        async with session(target) as sess:
            await sess.check_root()
            facts = await gather_facts(sess)
            raw = await sess.read(OWNER_FILE)
        check_owner(target.host, raw, spec.owner)
        key_copy = None
        if target.key is not None:
            load_client_key(target.key)
            dest = self.ctx.home / spec.name / KEY_FILE
            if target.key.resolve() != dest.resolve():
                write_secret(dest, target.key.read_bytes())
            key_copy = str(dest)
        # Before anything changes on the host: sweep finds it even if no record is kept.
        self.index.add(spec.owner, spec.name, target, key_copy)
        addresses = list(dict.fromkeys([target.host, *facts.addresses]))
        return NodeRecord(
            name=spec.name,
            driver=self.driver,
            provider_id=target.label,
            addresses=addresses,
            data={
                "ssh_host": target.host,
                "ssh_port": target.port,
                "ssh_user": target.user,
                "ssh_key": key_copy,
                "engine_install": self.install(spec),
                # the swarm knows a node by the host's own name, which flotte never changes
                "hostname": facts.hostname,
                "os": distros.describe(facts.os_release),
                "arch": facts.machine,
                "docker_preinstalled": facts.docker_installed,
                "owner": spec.tags(),
            },
        )

    def access(self, spec: NodeSpec, node: NodeRecord) -> SSHAccess:
        return SSHAccess(
            endpoint=self.endpoint(node),
            install=str(node.data.get("engine_install") or self.install(spec)),
            install_url=spec.options.get("engine_install_url") or None,
            marks=normal_marks(node.data.get("owner") or {}) or spec.tags(),
            attempts=3,
        )

    def endpoint(self, node: NodeRecord) -> Endpoint:
        d = node.data
        return Endpoint(
            host=d.get("ssh_host") or node.address,
            # an imported host keeps its engine's port and client material
            docker_port=int(d.get("docker_port") or DOCKER_TLS_PORT),
            ssh_port=int(d.get("ssh_port") or 22),
            ssh_user=d.get("ssh_user") or "root",
            ssh_key=d.get("ssh_key"),
            tls_dir=d.get("tls_dir"),
        )

    async def state(self, node: NodeRecord) -> NodeState:
        ep = self.endpoint(node)
        if await ping(ep, ssl_context(self.ctx.ca, ep.tls_dir), timeout=3.0):
            return NodeState.RUNNING
        try:
            async with session(self.targets.of_node(node, quick=True)) as sess:
                facts = await gather_facts(sess)
        except Unreachable:
            return NodeState.ERROR
        except FlotteError:
            return NodeState.UNKNOWN
        return NodeState.RUNNING if facts.docker_running else NodeState.STOPPED

    async def service(self, node: NodeRecord, action: str) -> None:
        """start, stop, restart or kill the host's docker service."""
        async with session(self.targets.of_node(node)) as sess:
            await sess.check_root()
            facts = await gather_facts(sess)
            init = distros.INIT_SYSTEMS.get(facts.init)
            if init is None:
                raise UsageError(f"{node.name}: no systemd or init.d to drive docker with")
            await sess.run(getattr(init, action), timeout=120, check=action != "kill")

    async def wait_up(self, node: NodeRecord, timeout: float = 60) -> None:
        ep = self.endpoint(node)
        if ep.tls_dir:  # an engine with its own CA (imported)
            await dockerapi.wait_engine(ep, self.ctx.ca, timeout, what=node.name)
        else:
            await wait_version(ep.host, self.ctx.ca, timeout)

    async def remove(self, node: NodeRecord, *, purge: bool) -> None:
        """Give the host its own Docker configuration back (and the engine, with purge).

        A node whose provisioning never finished (a create being rolled back) also loses
        the Docker engine flotte installed for it: a failed create leaves nothing behind.
        An engine that was there before flotte is never removed.
        """
        marks = normal_marks(node.data.get("owner") or {})
        # The key's copy goes only once the host is given back (below): an earlier
        # remove, killed before its end was recorded, left nothing on the host to undo,
        # and without the key there would be no way in (the re-run failed on it).
        copy = self.ctx.home / node.name / KEY_FILE
        done = node.data.get("ssh_key") == str(copy) and not copy.exists()
        if node.data.get("ssh_host") and not done:
            await unprovision(
                self.targets.of_node(node),
                purge=purge or not provisioned(node),
                owner=marks or None,
                # a cluster node's swarm is flotte's: joining refuses a host in another one
                leave_swarm=bool(marks.get(CLUSTER_KEY)),
            )
        self.index.drop(Owner.from_tags(marks), node.name)
        with contextlib.suppress(FileNotFoundError):
            (self.ctx.home / node.name / KEY_FILE).unlink()
        with contextlib.suppress(OSError):
            (self.ctx.home / node.name).rmdir()
