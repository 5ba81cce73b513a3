"""The ``local`` driver: nodes are containers running dockerd on the local Docker engine.

Each node is a container of the node image (:mod:`.image`) with an address on a bridge
network (:mod:`.resources`); its engine gets certificates signed for that address before
it starts (:mod:`.nodes`). Which of ``--privileged`` or an explicit capability set works
is detected once per engine (:mod:`.connection`), never assumed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from flotte.drivers.base import Capabilities, Driver, DriverContext, GroupSpec
from flotte.drivers.local import memory, neighbours, resources, sweep
from flotte.drivers.local.connection import Engine, listed
from flotte.drivers.local.nodes import Nodes
from flotte.drivers.local.options import OPTIONS, privileged_choice
from flotte.models import (
    OWNER_KEY,
    Endpoint,
    EngineOptions,
    NodeRecord,
    NodeSpec,
    NodeState,
    Owner,
)


class LocalDriver(Driver):
    name = "local"
    description = "containers running dockerd on this machine's Docker engine"
    capabilities = Capabilities(
        start_stop=True, kill=True, max_parallel=16, catalog_provider="local"
    )
    options = OPTIONS
    site_options = ("local_network",)
    # other sites reach a local node only through --local-public-network
    public_options = ("local_public_network",)

    def __init__(self, ctx: DriverContext) -> None:
        super().__init__(ctx)
        # ctx.client: a docker.DockerClient handed in; None: the installation's, made
        # from DOCKER_HOST on first use
        self.engine = Engine(
            ctx.home,
            ctx.client,
            self.capabilities.max_parallel,
            image=self.option("local_image"),
            privileged=str(self.option("local_privileged", "auto")),
            pool=ctx.clients,
        )
        self.nodes = Nodes(self.engine, ctx, self.name)

    # -- checks and shared resources ---------------------------------------------------
    async def check(self, group: GroupSpec) -> None:
        # Options first: a dry run refuses bad ones even where no engine answers.
        privileged_choice(self.option("local_privileged", "auto"))
        for node in group.nodes:
            privileged_choice(node.options.get("local_privileged") or "auto")
        # Before anything is made: nodes that do not fit in memory are refused whole,
        # not found out when the host starts swapping half-way through.
        if memory.engine_is_here():
            memory.check_fits(len(group.nodes), memory.available_mib())
        await self.engine.call(lambda: self.engine.docker)
        if {"manager", "worker"} & set(group.roles):
            # a Swarm's nodes each learn every other: the nodes it has and those to come
            tags = group.owner.tags()
            has = await self.engine.call(lambda: len(listed(self.engine.docker, tags)))
            neighbours.check(has + group.size)

    async def prepare(self, group: GroupSpec) -> dict[str, Any]:
        name = resources.network_name(group, self.ctx.installation)
        labels = (
            group.owner.tags()
            if not name.startswith(resources.MACHINES_NETWORK)
            # shared by every lone machine of the installation: no machine's own mark
            else {OWNER_KEY: self.ctx.installation, resources.SHARED_KEY: "machines"}
        )
        await self.engine.call(resources.ensure_network, self.engine, name, labels)
        await self.engine.call(self.engine.image)
        await self.engine.call(self.engine.privileged)
        return {"network": name}

    async def release(self, group: GroupSpec, shared: Mapping[str, Any]) -> None:
        name = shared.get("network") or resources.network_name(group, self.ctx.installation)
        await self.engine.call(resources.remove_network, self.engine, name)

    # -- nodes --------------------------------------------------------------------------
    async def create(self, spec: NodeSpec, shared: Mapping[str, Any]) -> NodeRecord:
        record: NodeRecord = await self.engine.call(
            self.nodes.create, spec, str(shared["network"]), spec.tags(), spec.owner.tags()
        )
        return record

    def public_address(self, node: NodeRecord) -> str | None:
        # The bridge address is reached from this machine only: a node has a public
        # address when its group has --local-public-network.
        return str(node.data.get("public_address") or "") or None

    async def run_script(
        self,
        node: NodeRecord,
        script: str,
        files: Sequence[tuple[str, bytes, int]] = (),
        *,
        what: str = "script",
    ) -> str:
        # The node is a container of this engine: files by archive, the script by exec.
        out: str = await self.engine.call(self.nodes.run, node.name, script, list(files), what)
        return out

    async def provision(self, spec: NodeSpec, node: NodeRecord, engine: EngineOptions) -> Endpoint:
        node.data["engine"] = engine.to_dict()
        if await self.engine.call(self.nodes.engine_started, spec.name):
            # dockerd reads its certificates once: a running engine restarts with new ones
            # (what docker-machine's regenerate-certs does too).
            restarted = await self.restart(node)
            node.addresses = restarted.addresses
            node.data.update(restarted.data)  # its public address may have changed too
            return self.endpoint(node)
        return await self.nodes.deliver(spec.name, node, engine)

    def endpoint(self, node: NodeRecord) -> Endpoint:
        return self.nodes.endpoint(node)

    async def state(self, node: NodeRecord) -> NodeState:
        found: NodeState = await self.engine.call(self.nodes.state, node.name)
        return found

    async def start(self, node: NodeRecord) -> NodeRecord:
        record: NodeRecord = await self.engine.call(self.nodes.start, node)
        # The address may have changed: certificates are re-signed for the new one.
        await self.nodes.deliver(node.name, record, EngineOptions.from_dict(record.data["engine"]))
        return record

    async def stop(self, node: NodeRecord) -> None:
        await self.engine.call(self.nodes.stop, node.name)

    async def restart(self, node: NodeRecord) -> NodeRecord:
        await self.stop(node)
        return await self.start(node)

    async def kill(self, node: NodeRecord) -> None:
        await self.engine.call(self.nodes.stop, node.name, kill=True)

    async def remove(self, node: NodeRecord, *, purge: bool = False) -> None:
        await self.engine.call(self.nodes.remove, node.name)

    # -- leak checks ----------------------------------------------------------------------
    async def leftovers(self, owner: Owner) -> list[str]:
        found: list[str] = await self.engine.call(sweep.leftovers, self.engine, owner)
        return found

    async def sweep(self, owner: Owner) -> int:
        count: int = await self.engine.call(sweep.sweep, self.engine, owner)
        return count
