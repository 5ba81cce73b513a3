"""The ``ssh`` driver: servers that already exist become Docker hosts and cluster nodes.

docker-machine's ``generic`` driver, done again: a machine-room server, a Raspberry Pi,
any host one can SSH into. Where a node goes is its spec's ``host``
(``[user@]host[:port]``; a lone machine may give ``--ssh-host`` instead). Nodes are the
hosts (:mod:`.nodes`); provisioning is the shared SSH step of every driver; nothing is
shared between the hosts of a group, so there is no ``prepare``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any, ClassVar

from flotte.drivers.base import (
    Capabilities,
    Driver,
    DriverContext,
    DriverOption,
    GroupSpec,
    SSHAccess,
)
from flotte.drivers.ssh import sweep
from flotte.drivers.ssh.connection import Targets
from flotte.drivers.ssh.nodes import Hosts
from flotte.drivers.ssh.options import OPTIONS, install_choice
from flotte.errors import FlotteError, UsageError
from flotte.mesh import scripts as mesh_scripts
from flotte.models import Endpoint, NodeRecord, NodeSpec, NodeState, Owner
from flotte.provision.access import provisioned
from flotte.provision.sessions import SSHTarget, load_client_key


class SSHDriver(Driver):
    name = "ssh"
    description = "Existing servers over SSH: machine room, Raspberry Pi racks"
    capabilities = Capabilities(
        start_stop=True,  # the docker service, not the machine's power
        kill=True,
        snapshot=False,
        max_parallel=32,
        adopt_existing=True,
    )
    options: ClassVar[tuple[DriverOption, ...]] = OPTIONS
    # Whether two lists of hosts share a private network cannot be seen from their
    # addresses: one site for every SSH host unless the user names them apart.
    site_options: ClassVar[tuple[str, ...]] = ("ssh_site",)

    def __init__(self, ctx: DriverContext) -> None:
        super().__init__(ctx)
        self.targets = Targets(ctx)
        self.hosts = Hosts(ctx, self.targets, self.name)

    def _group_targets(self, group: GroupSpec) -> list[SSHTarget]:
        """The hosts the plan will take: those of the nodes it creates, or the
        ``--ssh-host`` option of a group given without nodes.

        None when it creates nothing and names no host: a killed create run again finds
        its node made and only provisions it, on the host recorded (a lone machine's
        host is a typed field of its spec, never one of its options)."""
        if group.nodes:
            return [self.targets.of_spec(n) for n in group.nodes]
        if group.options.get("ssh_host") or self.ctx.options.get("ssh_host"):
            return [self.targets.of(None, group.options)]
        return []

    async def check(self, group: GroupSpec) -> None:
        """Reach every host, as it will be used, before anything is recorded or changed."""
        install = install_choice(group.options, self.option("engine_install", "auto"))
        for node in group.nodes:
            install_choice(node.options, install)
        targets = self._group_targets(group)
        seen: set[tuple[str, int]] = set()
        for t in targets:
            if (t.host, t.port) in seen:
                raise UsageError(f"host {t.host}:{t.port} is given twice")
            seen.add((t.host, t.port))
            if t.key is not None:
                load_client_key(t.key)
        results = await asyncio.gather(
            *(self.hosts.preflight(t, install, group.owner) for t in targets),
            return_exceptions=True,
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

    async def create(self, spec: NodeSpec, shared: Mapping[str, Any]) -> NodeRecord:
        return await self.hosts.create(spec)

    def ssh_access(self, spec: NodeSpec, node: NodeRecord) -> SSHAccess:
        return self.hosts.access(spec, node)

    def endpoint(self, node: NodeRecord) -> Endpoint:
        return self.hosts.endpoint(node)

    async def state(self, node: NodeRecord) -> NodeState:
        return await self.hosts.state(node)

    async def start(self, node: NodeRecord) -> NodeRecord:
        await self.hosts.service(node, "start")
        await self.hosts.wait_up(node)
        return node

    async def stop(self, node: NodeRecord) -> None:
        await self.hosts.service(node, "stop")

    async def restart(self, node: NodeRecord) -> NodeRecord:
        await self.hosts.service(node, "restart")
        await self.hosts.wait_up(node)
        return node

    async def kill(self, node: NodeRecord) -> None:
        await self.hosts.service(node, "kill")

    async def remove(self, node: NodeRecord, *, purge: bool = False) -> None:
        if node.data.get("ssh_host") and provisioned(node):
            # The host outlives its node: a meshed cluster's interface, its key file and
            # firewall chain go with the node (a no-op on a host never meshed). A host
            # that does not answer fails the unprovisioning below, which says so.
            with contextlib.suppress(FlotteError):
                await self.run_script(node, mesh_scripts.down(), what="mesh down")
        await self.hosts.remove(node, purge=purge)

    def _candidates(self, owner: Owner) -> list[SSHTarget]:
        """Hosts that may carry ``owner``'s marks: the index, and ``--ssh-host``."""
        found = self.hosts.index.targets(owner, self.ctx.known_hosts)
        if self.ctx.options.get("ssh_host"):
            with contextlib.suppress(UsageError):
                found.append(self.targets.of(None, {}, quick=True))
        return list({(t.host, t.port): t for t in reversed(found)}.values())

    async def leftovers(self, owner: Owner) -> list[str]:
        found = await sweep.owned(self._candidates(owner), owner)
        return [f"{t.host}: flotte's Docker TLS configuration" for t in found]

    async def sweep(self, owner: Owner) -> int:
        count = await sweep.sweep(self._candidates(owner), owner)
        self.hosts.index.drop(owner)
        return count
