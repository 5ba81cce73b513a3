"""The cross-site WireGuard mesh of a cluster, wired into the lifecycle (issue 15).

A cluster whose node groups sit on more than one site (``Driver.site``: a driver and
the options that choose its network) gets the mesh: after its nodes are provisioned
and before ``swarm init/join``, every node gets its key (0600 under
``secrets/mesh/<cluster>/``, never in the database), its ``wg`` configuration (through
a file, never a command line) and the interface up, and Swarm advertises and carries
its data path on the node's mesh address. The members' mesh indices are kept in the
cluster's ``coe_data["mesh"]`` (not secret). A node that goes has its peer removed on
every other node and its key file deleted. Clusters on one site never meet this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import shutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from flotte.drivers.base import Driver
from flotte.engine.executor import Step
from flotte.errors import ClusterError, FlotteError
from flotte.mesh import keys, scripts, topology
from flotte.models import NodeRecord
from flotte.planner import Action, Plan
from flotte.service.installation import Installation
from flotte.specs import ClusterSpec
from flotte.state.records import Node
from flotte.state.status import READY

log = logging.getLogger(__name__)

COE_KEY = "mesh"  # coe_data["mesh"] = {node: index}
STEP = "mesh"  # the executor step that sets the mesh up


@dataclass(frozen=True)
class Live:
    """A node that is (or becomes) a member: what the mesh needs of it."""

    node: Node
    record: NodeRecord


class Mesh:
    """The mesh of one cluster, for one run of its plan."""

    def __init__(
        self,
        inst: Installation,
        spec: ClusterSpec,
        driver: Callable[[str, str | None], Driver],
    ) -> None:
        self.inst = inst
        self.spec = spec
        self.driver = driver
        self.keys = keys.KeyStore(inst.paths.secrets / "mesh" / spec.name)
        self._lock = asyncio.Lock()

    # -- whether, and where ----------------------------------------------------------------
    def sites(self) -> dict[str, str]:
        """Each node group's site."""
        return {
            g.name: self.driver(self.spec.driver_of(g), g.name).site() for g in self.spec.nodegroups
        }

    def indices(self) -> dict[str, int]:
        cluster = self.inst.store.find_cluster(self.spec.name)
        found = (cluster.coe_data if cluster else {}).get(COE_KEY)
        return {str(k): int(v) for k, v in found.items()} if isinstance(found, dict) else {}

    @property
    def active(self) -> bool:
        """The cluster's groups span several sites, or its nodes are already meshed
        (a cluster keeps its mesh when its last far group empties)."""
        if self.spec.kind != "cluster":
            return False
        return bool(self.indices()) or topology.needed(self.sites().values())

    def address(self, node: str) -> str | None:
        """The node's mesh address, None when it has none (no mesh)."""
        index = self.indices().get(node)
        return None if index is None else str(topology.MESH_NETWORK[index + 1])

    def check(self, nodes: Iterable[Node], doomed: set[str]) -> None:
        """Before a run: nodes already in the swarm on their private addresses cannot
        be moved onto the mesh (Swarm fixes a node's address when it joins)."""
        meshed = self.indices()
        stranded = sorted(
            n.name
            for n in nodes
            if n.status == READY and n.name not in doomed and n.name not in meshed
        )
        if stranded:
            raise ClusterError(
                f"cluster {self.spec.name!r} now spans several sites, but its node(s) "
                f"{', '.join(stranded)} joined the swarm on their private addresses",
                hint="declare the groups of every site when the cluster is created (a spec "
                "file with node_count 0 for the overflow groups): its nodes are then on the mesh",
            )

    # -- a run -----------------------------------------------------------------------------
    def steps(
        self, steps: list[Step], plan: Plan, live: Callable[[], Mapping[str, Live]]
    ) -> list[Step]:
        """``steps`` with one "mesh" step after every provisioning and restart of
        ``plan``, which the swarm's init and joins wait for; a plan with none of these
        is left as it is.
        ``live`` gives the members when the step runs."""
        swarm = {s.id for s in plan.steps if s.action in (Action.INIT, Action.JOIN)}
        # a restarted node lost its interface (and maybe its address): set up again
        before = (Action.PROVISION, Action.RESTART)
        provisions = tuple(s.id for s in plan.steps if s.action in before)
        if not swarm and not any(s.action == Action.RESTART for s in plan.steps):
            return steps
        made = plan.nodes(Action.CREATE)

        async def run() -> None:
            await self.setup(list(live().values()))

        async def undo() -> None:
            self.undo(made)

        mesh = Step(STEP, run, provisions, undo=undo, label=f"{plan.name} mesh")
        return [
            dataclasses.replace(s, requires=(*s.requires, STEP)) if s.name in swarm else s
            for s in steps
        ] + [mesh]

    async def setup(self, live: list[Live]) -> None:
        """Give every live node its key, configuration and interface (run after the
        nodes are provisioned, before the swarm steps)."""
        async with self._lock:
            indices = topology.assign(self.indices(), [m.node.name for m in live])
            self._save(indices)
            sites = self.sites()
            members = []
            for m in live:
                d = self.driver(m.node.driver, m.node.group)
                members.append(
                    topology.Member(
                        name=m.node.name,
                        site=sites.get(m.node.group) or d.site(),
                        public_address=d.public_address(m.record),
                        public_key=await asyncio.to_thread(self.keys.public, m.node.name),
                        index=indices[m.node.name],
                        private_address=m.record.cluster_address or None,
                    )
                )
            topology.check_reachable(members)
        await asyncio.gather(
            *(self._configure(m, me, members) for m, me in zip(live, members, strict=True))
        )

    async def _configure(
        self, m: Live, me: topology.Member, members: list[topology.Member]
    ) -> None:
        conf = topology.wg_config(me, self.keys.ensure(me.name), members).encode()
        script = (
            scripts.install()
            + scripts.up(me.mesh_address, topology.MESH_NETWORK.prefixlen)
            + scripts.firewall(topology.allowed_sources(me, members))
        )
        driver = self.driver(m.node.driver, m.node.group)
        await driver.run_script(m.record, script, [(scripts.CONF, conf, 0o600)], what="mesh up")

    async def forget(self, name: str, others: Mapping[str, Live]) -> None:
        """``name`` has gone: its peer leaves every other node, its key file goes."""
        async with self._lock:
            indices = self.indices()
            if name not in indices and not self.keys.path(name).exists():
                return
            public = self.keys.public(name) if self.keys.path(name).exists() else None
            indices.pop(name, None)
            self._save(indices)
        if public:
            script = f"wg set {topology.INTERFACE} peer {public} remove\n"
            await asyncio.gather(
                *(self._quietly(m, script) for n, m in others.items() if n != name)
            )
        self.keys.forget(name)

    async def _quietly(self, m: Live, script: str) -> None:
        driver = self.driver(m.node.driver, m.node.group)
        try:
            await driver.run_script(m.record, script, what="mesh peer removal")
        except FlotteError as err:  # a dead node: its configuration is redone at next setup
            log.warning("%s: %s", m.node.name, err)

    def undo(self, names: Iterable[str]) -> None:
        """A rolled-back create: the keys and indices of the nodes it made."""
        indices = self.indices()
        for name in names:
            indices.pop(name, None)
            self.keys.forget(name)
        self._save(indices)

    def purge(self) -> None:
        """The cluster is gone: no key file left."""
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self.keys.directory)

    def _save(self, indices: dict[str, int]) -> None:
        cluster = self.inst.store.find_cluster(self.spec.name)
        if cluster is None:
            return
        data = {k: v for k, v in cluster.coe_data.items() if k != COE_KEY}
        if indices:
            data[COE_KEY] = indices
        self.inst.store.set_cluster(self.spec.name, coe_data=data)
