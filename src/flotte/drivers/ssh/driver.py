"""The ``ssh`` driver: servers that already exist become Docker hosts and cluster nodes.

docker-machine's ``generic`` driver, done again: a machine-room server, a Raspberry Pi,
any host one can SSH into. Nodes are the hosts (:mod:`.nodes`); ``provision`` is the
shared SSH provisioner (:mod:`flotte.provision.docker_host`); nothing is shared between
the hosts of a group, so there is no ``prepare``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, ClassVar

from flotte.drivers.base import Capabilities, Driver, DriverContext, DriverOption, GroupSpec
from flotte.drivers.ssh import sweep
from flotte.drivers.ssh.connection import Targets
from flotte.drivers.ssh.nodes import Hosts
from flotte.drivers.ssh.options import OPTIONS, install_choice
from flotte.errors import FlotteError, UsageError
from flotte.models import Endpoint, EngineOptions, NodeRecord, NodeSpec, NodeState, Owner
from flotte.provision.sessions import load_client_key


class SSHDriver(Driver):
    name = "ssh"
    description = "Existing servers over SSH: machine room, Raspberry Pi racks"
    capabilities = Capabilities(
        start_stop=True,  # the docker service, not the machine's power
        kill=True,
        snapshot=False,
        parallel_create=True,
        max_parallel=32,
        adopt_existing=True,
        shared_resources=False,
    )
    options: ClassVar[tuple[DriverOption, ...]] = OPTIONS

    def __init__(self, ctx: DriverContext) -> None:
        super().__init__(ctx)
        self.targets = Targets(ctx)
        self.hosts = Hosts(ctx, self.targets, self.name)
        self._seen: list[Any] = []  # targets checked in this process, for sweep

    def _group_targets(self, group: GroupSpec) -> list[Any]:
        """The hosts of the nodes the plan will make (one per node), else ``--ssh-host``."""
        if group.nodes:
            found = [self.targets.from_options(n.options, host=n.host) for n in group.nodes]
        else:
            found = [self.targets.from_options(group.options)]
        self._seen.extend(found)
        return found

    async def check(self, group: GroupSpec) -> None:
        """Reach every host, as it will be used, before anything is recorded or changed."""
        targets = self._group_targets(group)
        install = install_choice(group.options, self.option("engine_install", "auto"))
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

    async def provision(self, spec: NodeSpec, node: NodeRecord, engine: EngineOptions) -> Endpoint:
        await self.hosts.provision(spec, node, engine)
        return self.endpoint(node)

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
        await self.hosts.remove(node, purge=purge)

    def _candidates(self) -> list[Any]:
        """Hosts that may carry an owner's record: --ssh-host and those this process met."""
        known = sweep.known_targets(self.targets, [self.ctx.options])
        return list({(t.host, t.port): t for t in [*known, *self._seen]}.values())

    async def leftovers(self, owner: Owner) -> list[str]:
        found = await sweep.owned(self._candidates(), owner)
        return [f"{t.host}: flotte's Docker TLS configuration" for t in found]

    async def sweep(self, owner: Owner) -> int:
        return await sweep.sweep(self._candidates(), owner)
