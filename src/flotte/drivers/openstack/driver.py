"""The OpenStack driver: Docker hosts and cluster nodes on any OpenStack cloud.

Flags are docker-machine's ``--openstack-*`` (:mod:`.options`), plus clouds.yaml
(``--openstack-cloud``), application credentials, ``--openstack-create-network``, boot
from volume and bare metal.

A group (one machine or one cluster) shares a key pair, a security group opening
only what its roles need, optionally a network with a router, and a soft
anti-affinity server group for Swarm managers (:mod:`.resources`). ``check``
validates everything and the quotas before anything is made (:mod:`.quotas`); every
create request carries the owner marker (:mod:`.marks`), so a killed run is adopted by
the next one (:mod:`.nodes`) and ``sweep`` finds whatever is left (:mod:`.sweep`).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from flotte.drivers.base import Capabilities, Driver, DriverOption, GroupSpec, SSHAccess
from flotte.drivers.openstack import baremetal, inventory, lookups, meshrules, quotas, twins
from flotte.drivers.openstack import nodes as node_ops
from flotte.drivers.openstack import resources as shared_ops
from flotte.drivers.openstack import sweep as sweeping
from flotte.drivers.openstack.connection import Provider, injected, provider
from flotte.drivers.openstack.marks import marker
from flotte.drivers.openstack.options import (
    CONNECT_KEYS,
    DEFAULT_USER_DATA,
    OPTIONS,
    SECRET_ENV,
    merge,
    metadata,
    split,
    validate,
)
from flotte.drivers.openstack.wait import ServerWatcher
from flotte.errors import DriverError
from flotte.models import Endpoint, NodeRecord, NodeSpec, NodeState, Owner
from flotte.provision.report import normal_marks


def _key(opts: Mapping[str, Any]) -> str:
    return json.dumps(opts, sort_keys=True, default=str)


class OpenStackDriver(Driver):
    """Servers on an OpenStack cloud through openstacksdk."""

    name: ClassVar[str] = "openstack"
    description: ClassVar[str] = "Servers on an OpenStack cloud (docker-machine -d openstack)"
    capabilities: ClassVar[Capabilities] = Capabilities(
        snapshot=True, max_parallel=16, self_paced=True
    )
    options: ClassVar[tuple[DriverOption, ...]] = OPTIONS
    # A site is a cloud (clouds.yaml entry, or Keystone URL and region) and a network:
    # two groups differing in one of these share no private network.
    site_options: ClassVar[tuple[str, ...]] = (
        "openstack_cloud",
        "openstack_auth_url",
        "openstack_region",
        "openstack_net_id",
        "openstack_net_name",
    )
    # Other sites reach a server at its floating IP: only with a pool to take it from.
    public_options: ClassVar[tuple[str, ...]] = ("openstack_floatingip_pool",)

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self._inventory: dict[str, inventory.Inventory] = {}
        self._resolved: dict[str, dict[str, Any]] = {}
        self._sgs: dict[str, Any] = {}  # the group's security group as check found it
        # (group name, {kind: ID}) of what prepare made: the group's first ACTIVE node
        # deletes a killed run's late twins of them (twins.drop_twins)
        self._made: dict[str, tuple[str, dict[str, str]]] = {}

    # -- options and connection ------------------------------------------------------

    def _opts(self, *layers: Mapping[str, Any] | None) -> dict[str, Any]:
        return merge(self.ctx.options, *layers)

    async def _provider(self, opts: Mapping[str, Any]) -> Provider:
        if self.ctx.client is not None:  # an openstack Connection handed in
            return await injected(self.ctx.client, limit=self.capabilities.max_parallel)
        return await provider(opts, limit=self.capabilities.max_parallel, pool=self.ctx.clients)

    async def _node_provider(self, node: NodeRecord) -> Provider:
        if self.ctx.client is not None:
            return await self._provider({})
        stored = dict(node.data.get("connect") or {})
        opts = self._opts(stored)
        for key, env in SECRET_ENV.items():
            if not opts.get(key) and os.environ.get(env):
                opts[key] = os.environ[env]
        return await self._provider(opts)

    # -- check -----------------------------------------------------------------------

    def _group_key(self, owner: Owner) -> str:
        return marker(owner)

    async def check(self, group: GroupSpec) -> None:
        opts = self._opts(group.options)
        validate(opts)
        # A node group may name another flavor or image: each is checked as it will boot,
        # once per distinct set of options.
        own = {n.name: _key(self._opts(group.options, n.options)) for n in group.nodes}
        distinct = {k: json.loads(k) for k in set(own.values()) - {_key(opts)}}
        for node_opts in distinct.values():
            validate(node_opts)
        p = await self._provider(opts)
        # Lookups and the owner's inventory do not depend on each other: read them at once.
        # Lookups, the owner's inventory, its security group and the project's usage do
        # not depend on each other: read at once, so the check costs one round trip.
        resolved, inv, sg, usage, *found = await asyncio.gather(
            lookups.resolve(p, opts),
            inventory.read_inventory(p, group.owner, [n.name for n in group.nodes]),
            shared_ops.find_security_group(p, group.owner, group.name),
            quotas.read_usage(p),
            *(lookups.resolve(p, o) for o in distinct.values()),
        )
        key = self._group_key(group.owner)
        self._resolved[key], self._inventory[key], self._sgs[key] = resolved, inv, sg
        by_key = {_key(opts): resolved, **dict(zip(distinct, found, strict=True))}
        flavors = {name: by_key[k]["flavor"] for name, k in own.items()}
        need = quotas.need(group, opts, resolved, inv, flavors)
        quotas.check_quotas(usage, need, quotas.what(group))

    # -- prepare / release -----------------------------------------------------------

    async def prepare(self, group: GroupSpec) -> dict[str, Any]:
        opts = self._opts(group.options)
        validate(opts)
        p = await self._provider(opts)
        resolved = self._resolved.get(self._group_key(group.owner)) or await lookups.resolve(
            p, opts
        )
        swarm = bool({"manager", "worker"} & set(group.roles))
        cidrs = split(opts.get("openstack_allowed_cidr")) or ["0.0.0.0/0"]
        key = self._group_key(group.owner)
        sg_found = {"found": self._sgs.pop(key)} if key in self._sgs else {}

        async def network() -> tuple[dict[str, str], dict[str, str]]:
            if not opts.get("openstack_create_network"):
                return {}, {}
            return await shared_ops.ensure_network(
                p,
                group.owner,
                group.name,
                resolved["pool_id"],
                opts.get("openstack_subnet_cidr"),
                split(opts.get("openstack_dns_nameservers")),
            )

        async def server_group() -> tuple[str | None, bool]:
            if not quotas.wants_server_group(group, opts):
                return None, False
            return await shared_ops.ensure_server_group(
                p, group.owner, group.name, str(opts["openstack_server_group_policy"])
            )

        # Independent of each other: made side by side, so latency adds up only once.
        keypair, (sg_id, sg_made), (made_net, made), (sg_group, group_made) = await asyncio.gather(
            shared_ops.ensure_keypair(
                p,
                group.owner,
                group.name,
                self.ctx.home,
                opts.get("openstack_keypair_name"),
                opts.get("openstack_private_key_file"),
            ),
            shared_ops.ensure_security_group(
                p,
                group.owner,
                group.name,
                cidrs,
                swarm=swarm,
                ssh_port=int(opts["openstack_ssh_port"]),
                **sg_found,
            ),
            network(),
            server_group(),
        )
        made = {
            **made,
            **({"security group": sg_id} if sg_made else {}),
            **({"server group": sg_group} if group_made and sg_group else {}),
        }
        if made:
            self._made[key] = (group.name, made)
        return {
            **keypair,
            "flavor_id": resolved["flavor_id"],
            "image_id": resolved["image_id"],
            "network_id": made_net.get("network_id") or resolved["network_id"],
            "network_created": bool(made_net),
            "subnet_id": made_net.get("subnet_id"),
            "router_id": made_net.get("router_id"),
            "pool_id": resolved["pool_id"],
            "security_group_id": sg_id,
            "security_group_ids": [sg_id, *resolved["extra_sg_ids"]],
            "server_group_id": sg_group,
            "connect": {k: opts[k] for k in CONNECT_KEYS if opts.get(k) not in (None, "")},
        }

    async def release(self, group: GroupSpec, shared: Mapping[str, Any]) -> None:
        opts = self._opts(group.options, shared.get("connect"))
        p = await self._provider(opts)
        await sweeping.delete_shared(p, group.owner, dict(shared), self.ctx.home)

    # -- nodes -----------------------------------------------------------------------

    async def create(self, spec: NodeSpec, shared: Mapping[str, Any]) -> NodeRecord:
        opts = self._opts(shared.get("connect"), spec.options)
        p = await self._provider(opts)
        flavor_id, image_id = shared["flavor_id"], shared["image_id"]
        # A node group may use another flavor or image than the group's default.
        if spec.options.get("openstack_flavor_id") or spec.options.get("openstack_flavor_name"):
            ref = spec.options.get("openstack_flavor_id") or spec.options["openstack_flavor_name"]
            flavor_id = (await lookups.find_flavor(p, str(ref))).id
        if spec.options.get("openstack_image_id") or spec.options.get("openstack_image_name"):
            ref = spec.options.get("openstack_image_id") or spec.options["openstack_image_name"]
            image_id = str((await lookups.find_image(p, str(ref))).id)
        user_data_file = opts.get("openstack_user_data_file")
        if user_data_file:
            user_data = Path(str(user_data_file)).expanduser().read_bytes()
        else:
            user_data = DEFAULT_USER_DATA.format(name=spec.name).encode()
        boot = node_ops.BootSpec(
            name=spec.name,
            owner=spec.owner,
            marks=spec.tags(),
            flavor_id=str(flavor_id),
            image_id=str(image_id),
            network_id=str(shared["network_id"]),
            # the group's own subnet, not a killed run's late twin of it
            subnet_id=shared.get("subnet_id") if shared.get("network_created") else None,
            security_group_ids=list(shared["security_group_ids"]),
            pool_id=shared.get("pool_id"),
            keypair=shared.get("keypair_name"),
            user_data=user_data,
            config_drive=bool(opts.get("openstack_config_drive")),
            metadata=metadata(opts.get("openstack_metadata")),
            availability_zone=opts.get("openstack_availability_zone"),
            server_group_id=shared.get("server_group_id") if spec.role == "manager" else None,
            volume_size=int(opts.get("openstack_boot_from_volume") or 0),
            ip_version=int(opts.get("openstack_ip_version") or 4),
            timeout=float(opts.get("openstack_active_timeout") or 200),
        )
        key = self._group_key(spec.owner)
        try:
            data = await node_ops.create_node(p, boot, self._inventory.get(key))
        except DriverError as err:
            # Nova's "No valid host" on a bare-metal flavor: say how many nodes are free.
            if "No valid host" not in err.message:
                raise
            flavor = await lookups.find_flavor(p, str(flavor_id))
            if not lookups.bare_metal_flavor(flavor):
                raise
            counts = await baremetal.node_counts(p, flavor)
            # the same kind (a capacity refusal): an overflow moves on to its next group
            raise type(err)(f"{err.message.rstrip('.')} ({counts})") from err
        if key in self._made:  # once per group, by its first node to be ACTIVE
            await twins.drop_twins(p, spec.owner, *self._made.pop(key))
        addresses = data.pop("addresses")
        data.update(
            {
                "ssh_user": str(opts.get("openstack_ssh_user") or "root"),
                "ssh_port": int(opts.get("openstack_ssh_port") or 22),
                "private_key": shared.get("private_key"),
                "keypair_name": shared.get("keypair_name"),
                "owner": spec.tags(),
                "connect": dict(shared.get("connect") or {}),
                "active_timeout": boot.timeout,
            }
        )
        return NodeRecord(
            name=spec.name,
            driver=self.name,
            provider_id=data["server_id"],
            addresses=addresses,
            data=data,
        )

    def ssh_access(self, spec: NodeSpec, node: NodeRecord) -> SSHAccess:
        return SSHAccess(
            endpoint=self.endpoint(node),
            # A server is ACTIVE before its sshd listens: keep knocking for a while.
            wait=self._timeout(node),
            install_url=spec.options.get("engine_install_url") or None,
            marks=normal_marks(node.data.get("owner") or {}) or spec.tags(),
        )

    async def state(self, node: NodeRecord) -> NodeState:
        p = await self._node_provider(node)
        if not node.provider_id:  # a record from a create that never got its server ID
            owner = self._record_owner(node)
            return node_ops.node_state(await inventory.find_server(p, node.name, owner))
        # asked with every other node's state (``machine ls``): one listing for them all
        return node_ops.node_state(await ServerWatcher.of(p).current(node.provider_id, node.name))

    def _record_owner(self, node: NodeRecord) -> Owner:
        owner = Owner.from_tags(normal_marks(node.data.get("owner") or {}))
        return owner if owner.installation else replace(owner, installation=self.ctx.installation)

    def _timeout(self, node: NodeRecord) -> float:
        return float(node.data.get("active_timeout") or 200)

    async def start(self, node: NodeRecord) -> NodeRecord:
        p = await self._node_provider(node)
        await node_ops.power(p, node.provider_id, node.name, "start", self._timeout(node))
        return node

    async def stop(self, node: NodeRecord) -> None:
        p = await self._node_provider(node)
        await node_ops.power(p, node.provider_id, node.name, "stop", self._timeout(node))

    async def restart(self, node: NodeRecord) -> NodeRecord:
        p = await self._node_provider(node)
        server = await node_ops.get_server(p, node.provider_id)
        action = "reboot" if server is not None and server.status == "ACTIVE" else "start"
        await node_ops.power(p, node.provider_id, node.name, action, self._timeout(node))
        return node

    async def remove(self, node: NodeRecord, *, purge: bool = False) -> None:
        p = await self._node_provider(node)
        owner = self._record_owner(node)
        inv = self._inventory.get(self._group_key(owner))
        if inv is not None:  # forget it, so a later create in this command boots anew
            inv.servers.pop(node.name, None)
            port = inv.ports.pop(node.name, None)
            if port is not None:
                inv.fips.pop(port.id, None)
        await node_ops.delete_node(
            p,
            node.name,
            owner,
            server_id=node.provider_id or None,
            port_id=node.data.get("port_id") or None,
            fip_id=node.data.get("fip_id") or None,
            timeout=self._timeout(node),
        )

    async def snapshot(self, node: NodeRecord, name: str) -> str:
        """Save the node's disk as a Glance image (``machine snapshot``); returns its ID."""
        p = await self._node_provider(node)
        compute = p.conn.compute
        server = await node_ops.get_server(p, node.provider_id)
        if server is not None:
            baremetal.refuse_snapshot(server, node.name)
        image = await p.run(
            lambda: compute.create_server_image(
                node.provider_id, name, metadata={"flotte:snapshot-of": node.name}
            ),
            f"snapshot {node.name}",
        )

        def done(server: Any) -> bool:
            if server is None:
                raise DriverError(f"server {node.name} disappeared during the snapshot")
            return not getattr(server, "task_state", None)

        # The image exists at once; the server's task state clears when Nova is done with it.
        await ServerWatcher.of(p).wait(
            node.provider_id,
            node.name,
            done,
            timeout=self._timeout(node) * 3,
            what=f"snapshot of {node.name}",
        )
        return str(image.id)

    def endpoint(self, node: NodeRecord) -> Endpoint:
        return Endpoint(
            host=node.address,
            ssh_port=int(node.data.get("ssh_port") or 22),
            ssh_user=str(node.data.get("ssh_user") or "root"),
            ssh_key=node.data.get("private_key"),
        )

    async def open_mesh(
        self, nodes: Sequence[NodeRecord], sources: Sequence[str], port: int
    ) -> None:
        """The mesh port in the security group of the nodes' cluster (one per owner)."""
        groups: dict[str, tuple[Owner, NodeRecord]] = {}
        for node in nodes:
            owner = self._record_owner(node)
            groups.setdefault(marker(owner), (owner, node))
        for owner, node in groups.values():
            p = await self._node_provider(node)
            name = owner.cluster or owner.machine or ""
            sg = await shared_ops.find_security_group(p, owner, name)
            if sg is None:
                raise DriverError(f"the security group of {name} is gone: cannot open the mesh")
            await meshrules.sync_mesh_rules(p, str(sg.id), sources, port)

    # -- leaks -----------------------------------------------------------------------

    async def _owner_provider(self) -> Provider:
        return await self._provider(self._opts())

    async def leftovers(self, owner: Owner) -> list[str]:
        p = await self._owner_provider()
        return [f"{kind} {label}" for kind, _, label in await sweeping.owned(p, owner)]

    async def sweep(self, owner: Owner) -> int:
        """Delete everything owned by ``owner``: servers first, then what they used."""
        return await sweeping.sweep(await self._owner_provider(), owner, self.ctx.home)
