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
_LOCKS: dict[tuple[object, str, int], asyncio.Lock] = {}


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

    @property
    def _lock(self) -> asyncio.Lock:
        """One per cluster and event loop: runners of one process (a CA rotation
        re-signs nodes side by side) never write a node's configuration at once."""
        key = (self.inst.paths.secrets, self.spec.name, id(asyncio.get_running_loop()))
        return _LOCKS.setdefault(key, asyncio.Lock())

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

    def wanted(self, nodes: Iterable[Node], plan: Plan) -> bool:
        """Whether ``plan`` runs with the mesh: the cluster is meshed already, or its
        groups span several sites and it has no node in the swarm yet (a new
        cluster). A cluster whose nodes joined on their private addresses stays off the
        mesh while it grows on its own site(s); nodes on another site are refused (one
        line, before anything changes): Swarm fixes a node's address when it joins."""
        if self.spec.kind != "cluster" or self.spec.no_provision:
            # No engines, no swarm to carry: its nodes are READY once made, which is not
            # "joined on their private addresses" (an overflowing create was refused
            # whole when its first group's nodes were made before the refusal).
            return False
        if self.indices():
            return True
        sites = self.sites()
        if not topology.needed(sites.values()):
            return False
        doomed = set(plan.nodes(Action.REMOVE))
        nodes = list(nodes)
        used = {n.group for n in nodes if n.name not in doomed}
        self.check_reach(used | {s.group or "" for s in plan.of(Action.CREATE)})
        joined = [n for n in nodes if n.status == READY and n.name not in doomed]
        if not joined:
            return True
        have = {sites.get(n.group, "") for n in joined}
        new = {sites.get(s.group or "", "") for s in plan.of(Action.CREATE)} - have
        if not new:
            return False
        raise ClusterError(
            f"cluster {self.spec.name!r} would span several sites ({', '.join(sorted(new))} "
            f"is new), but its node(s) {', '.join(sorted(n.name for n in joined))} joined "
            "the swarm on their private addresses",
            hint="declare the groups of every site when the cluster is created (a spec file "
            "with node_count 0 for the overflow groups): its nodes are then on the mesh",
        )

    def check_reach(self, groups: Iterable[str]) -> None:
        """Sites of ``groups`` (those with nodes, or to have some) that cannot reach
        each other, from what their drivers say of the nodes to come: one line,
        before anything is made."""
        public: dict[str, bool] = {}
        wanted = set(groups)
        for g in self.spec.nodegroups:
            if g.name in wanted:
                d = self.driver(self.spec.driver_of(g), g.name)
                public[d.site()] = public.get(d.site(), True) and d.will_be_public()
        topology.check_sites(public)

    def address(self, node: str) -> str | None:
        """The node's mesh address, None when it has none (no mesh)."""
        index = self.indices().get(node)
        return None if index is None else str(topology.MESH_NETWORK[index + 1])

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
            try:
                await self.setup(list(live().values()))
            except BaseException:
                self.undo(made)  # a failed step is not rolled back: its new keys go now
                raise

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
            found = self._located(live)
            indices = topology.assign(self.indices(), [m.node.name for m in live])
            # sites that cannot reach each other: said before any key is made
            topology.check_reachable(
                [topology.Member(m.node.name, s, p, "", indices[m.node.name]) for m, s, p in found]
            )
            self._save(indices)
            members = [
                topology.Member(
                    name=m.node.name,
                    site=site,
                    public_address=public,
                    public_key=await asyncio.to_thread(self.keys.public, m.node.name),
                    index=indices[m.node.name],
                    private_address=m.record.cluster_address or None,
                )
                for m, site, public in found
            ]
            # the provider's firewall first: the first handshakes then pass
            await self._open(live, members)
            await asyncio.gather(
                *(self._configure(m, me, members) for m, me in zip(live, members, strict=True))
            )

    async def refresh(self, live: list[Live], rotate: Iterable[str] = ()) -> None:
        """Set every member up again (a node restarted: its interface is gone, its
        address may have changed), after giving the nodes of ``rotate`` new keys
        (``regenerate-certs``)."""
        for name in rotate:
            await asyncio.to_thread(self.keys.rotate, name)
        await self.setup(live)

    async def _open(self, live: list[Live], members: list[topology.Member]) -> None:
        """The nodes get exactly their peers' addresses on the mesh port in their
        provider's firewall (security groups; nothing for SSH hosts, whose FLOTTE-MESH
        chain the mesh script writes). Sources are gathered per driver, not per
        instance: two instances of one cloud may share the cluster's security group."""
        sources: dict[str, set[str]] = {}
        instances: dict[int, tuple[Driver, str, list[NodeRecord]]] = {}
        for m, me in zip(live, members, strict=True):
            sources.setdefault(m.node.driver, set()).update(topology.allowed_sources(me, members))
            d = self.driver(m.node.driver, m.node.group)
            instances.setdefault(id(d), (d, m.node.driver, []))[2].append(m.record)
        await asyncio.gather(
            *(
                d.open_mesh(records, sorted(sources[name]), topology.WG_PORT)
                for d, name, records in instances.values()
            )
        )

    def _located(self, live: Iterable[Live]) -> list[tuple[Live, str, str | None]]:
        """Each member with its site and public address, as its provider reports them."""
        sites = self.sites()
        out = []
        for m in live:
            d = self.driver(m.node.driver, m.node.group)
            out.append((m, sites.get(m.node.group) or d.site(), d.public_address(m.record)))
        return out

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
        rest = [m for n, m in others.items() if n != name and n in indices]
        if public:
            script = f"wg set {topology.INTERFACE} peer {public} remove\n"
            await asyncio.gather(*(self._quietly(m, script) for m in rest))
        self.keys.forget(name)
        if rest:  # its address leaves the providers' firewalls
            members = [
                topology.Member(
                    m.node.name,
                    site,
                    pub,
                    "",
                    indices[m.node.name],
                    m.record.cluster_address or None,
                )
                for m, site, pub in self._located(rest)
            ]
            try:
                await self._open(rest, members)
            except FlotteError as err:  # the next setup of the mesh closes it again
                log.warning("mesh port of %s not closed: %s", name, err)

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
