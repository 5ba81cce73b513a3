"""The OpenStack driver: Docker hosts and cluster nodes on any OpenStack cloud.

Flags are docker-machine's ``--openstack-*`` (each also read from the ``OS_*``
variable docker-machine used), plus clouds.yaml (``--openstack-cloud``), application
credentials, ``--openstack-create-network``, boot from volume and bare metal.

A group (one machine or one cluster) shares a key pair, a security group opening
only what its roles need, optionally a network with a router, and a soft
anti-affinity server group for Swarm managers. ``check`` validates everything and
the quotas before anything is made; every create request carries the owner marker,
so a killed run is adopted by the next one and ``sweep`` finds whatever is left.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from flotte.drivers import openstack_node as node_ops
from flotte.drivers import openstack_res as res
from flotte.drivers import openstack_shared as shared_ops
from flotte.drivers.base import Capabilities, Driver, DriverOption, GroupSpec
from flotte.drivers.openstack_conn import Provider, provider
from flotte.errors import DriverError, UsageError
from flotte.models import Endpoint, EngineOptions, NodeRecord, NodeSpec, NodeState, Owner

P = "openstack-"


def _o(name: str, help_: str, env: str | None = None, **kw: Any) -> DriverOption:
    return DriverOption(name=P + name, help=help_, envvar=env, **kw)


OPTIONS: tuple[DriverOption, ...] = (
    _o("cloud", "Cloud name in clouds.yaml (openstacksdk's search path)", "OS_CLOUD"),
    _o("auth-url", "Keystone URL", "OS_AUTH_URL"),
    _o("insecure", "Do not verify the API's TLS certificate", "OS_INSECURE", is_flag=True),
    _o("cacert", "CA bundle for the API's TLS certificate", "OS_CACERT"),
    _o("domain-id", "Domain ID of the user and project", "OS_DOMAIN_ID"),
    _o("domain-name", "Domain name of the user and project", "OS_DOMAIN_NAME"),
    _o("user-domain-name", "Domain name of the user", "OS_USER_DOMAIN_NAME"),
    _o("project-domain-name", "Domain name of the project", "OS_PROJECT_DOMAIN_NAME"),
    _o("username", "User name", "OS_USERNAME"),
    _o("password", "Password", "OS_PASSWORD", secret=True),
    _o("tenant-name", "Project (tenant) name", "OS_TENANT_NAME"),
    _o("tenant-id", "Project (tenant) ID", "OS_TENANT_ID"),
    _o("project-name", "Project name (same as --openstack-tenant-name)", "OS_PROJECT_NAME"),
    _o("project-id", "Project ID (same as --openstack-tenant-id)", "OS_PROJECT_ID"),
    _o("application-credential-id", "Application credential ID", "OS_APPLICATION_CREDENTIAL_ID"),
    _o(
        "application-credential-name",
        "Application credential name (with the user name)",
        "OS_APPLICATION_CREDENTIAL_NAME",
    ),
    _o(
        "application-credential-secret",
        "Application credential secret",
        "OS_APPLICATION_CREDENTIAL_SECRET",
        secret=True,
    ),
    _o("region", "Region name", "OS_REGION_NAME"),
    _o("endpoint-type", "Endpoint type: publicURL, internalURL, adminURL", "OS_ENDPOINT_TYPE"),
    _o("availability-zone", "Availability zone of the servers", "OS_AVAILABILITY_ZONE"),
    _o("flavor-id", "Flavor ID", "OS_FLAVOR_ID"),
    _o("flavor-name", "Flavor name", "OS_FLAVOR_NAME", template_field="flavor_id"),
    _o("image-id", "Image ID", "OS_IMAGE_ID"),
    _o("image-name", "Image name", "OS_IMAGE_NAME", template_field="image_id"),
    _o("net-id", "Tenant network ID", "OS_NETWORK_ID"),
    _o("net-name", "Tenant network name", "OS_NETWORK_NAME", template_field="fixed_network"),
    _o(
        "floatingip-pool",
        "External network to take a floating IP from",
        "OS_FLOATINGIP_POOL",
        template_field="external_network_id",
    ),
    _o(
        "ip-version",
        "IP version of the address used to reach the node",
        "OS_IP_VERSION",
        type=int,
        default=4,
    ),
    _o("sec-groups", "Extra security groups, comma-separated", "OS_SECURITY_GROUPS"),
    _o("keypair-name", "Existing key pair (needs --openstack-private-key-file)", "OS_KEYPAIR_NAME"),
    _o(
        "private-key-file",
        "Private key to log in with (imported when no key pair is named)",
        "OS_PRIVATE_KEY_FILE",
    ),
    _o("ssh-user", "SSH user of the image", "OS_SSH_USER", default="root"),
    _o("ssh-port", "SSH port", "OS_SSH_PORT", type=int, default=22),
    _o("user-data-file", "cloud-init user data file", "OS_USER_DATA_FILE"),
    _o("config-drive", "Give the server a config drive", "OS_CONFIG_DRIVE", is_flag=True),
    _o("metadata", "Server metadata, key=value,key=value", "OS_METADATA"),
    _o(
        "active-timeout",
        "Seconds to wait for a server to become ACTIVE",
        "OS_ACTIVE_TIMEOUT",
        type=int,
        default=200,
    ),
    _o(
        "allowed-cidr",
        "Addresses allowed to reach SSH and Docker (comma-separated)",
        "FLOTTE_OPENSTACK_ALLOWED_CIDR",
        default="0.0.0.0/0",
    ),
    _o("create-network", "Make a network, subnet and router to the floating IP pool", is_flag=True),
    _o("subnet-cidr", "CIDR of the network made by --openstack-create-network"),
    _o("dns-nameservers", "DNS servers of that subnet, comma-separated"),
    _o("boot-from-volume", "Boot from a new volume of this many GB (0: no)", type=int, default=0),
    _o("server-type", "vm, or bm for bare-metal flavors (Ironic)", default="vm"),
    _o("server-group-policy", "Policy of the managers' server group", default="soft-anti-affinity"),
)

# Options a later command (stop, rm...) needs to reach the cloud again: stored with the
# node, never the secrets, which come back from clouds.yaml/secure.yaml or OS_* variables.
_CONNECT = tuple(
    o.key
    for o in OPTIONS
    if not o.secret
    and o.name.removeprefix(P)
    in {
        "cloud",
        "auth-url",
        "insecure",
        "cacert",
        "domain-id",
        "domain-name",
        "user-domain-name",
        "project-domain-name",
        "username",
        "tenant-name",
        "tenant-id",
        "project-name",
        "project-id",
        "application-credential-id",
        "application-credential-name",
        "region",
        "endpoint-type",
    }
)
_SECRET_ENV = {
    "openstack_password": "OS_PASSWORD",
    "openstack_application_credential_secret": "OS_APPLICATION_CREDENTIAL_SECRET",
}
_DEFAULT_USER_DATA = "#cloud-config\nhostname: {name}\nmanage_etc_hosts: true\n"


def _split(value: Any) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, list | tuple) else [value]
    return [p.strip() for item in items for p in str(item).split(",") if p.strip()]


def _metadata(value: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in _split(value):
        key, sep, val = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--openstack-metadata: {pair!r} is not key=value")
        if key.startswith("flotte:"):
            raise UsageError(f"--openstack-metadata: the prefix 'flotte:' is reserved ({key})")
        out[key] = val
    return out


class OpenStackDriver(Driver):
    """Servers on an OpenStack cloud through openstacksdk."""

    name: ClassVar[str] = "openstack"
    description: ClassVar[str] = "Servers on an OpenStack cloud (docker-machine -d openstack)"
    capabilities: ClassVar[Capabilities] = Capabilities(snapshot=True, max_parallel=16)
    options: ClassVar[tuple[DriverOption, ...]] = OPTIONS

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self._inventory: dict[str, node_ops.Inventory] = {}
        self._resolved: dict[str, dict[str, Any]] = {}

    # -- options and connection ------------------------------------------------------

    def _opts(self, *layers: Mapping[str, Any] | None) -> dict[str, Any]:
        """ctx options overlaid by each layer (group, then node); empty values don't win."""
        merged = dict(self.ctx.options)
        for layer in layers:
            for key, value in (layer or {}).items():
                if value not in (None, "", (), []):
                    merged[key] = value
        for opt in OPTIONS:
            if merged.get(opt.key) in (None, "", (), []) and opt.default is not None:
                merged[opt.key] = opt.default
        return merged

    async def _provider(self, opts: Mapping[str, Any]) -> Provider:
        return await provider(opts, limit=self.capabilities.max_parallel)

    async def _node_provider(self, node: NodeRecord) -> Provider:
        stored = dict(node.data.get("connect") or {})
        opts = self._opts(stored)
        for key, env in _SECRET_ENV.items():
            if not opts.get(key) and os.environ.get(env):
                opts[key] = os.environ[env]
        return await self._provider(opts)

    # -- check -----------------------------------------------------------------------

    def _validate(self, opts: Mapping[str, Any]) -> None:
        if not (opts.get("openstack_flavor_id") or opts.get("openstack_flavor_name")):
            raise UsageError("give --openstack-flavor-name or --openstack-flavor-id")
        if not (opts.get("openstack_image_id") or opts.get("openstack_image_name")):
            raise UsageError("give --openstack-image-name or --openstack-image-id")
        if opts.get("openstack_server_type") not in ("vm", "bm"):
            raise UsageError("--openstack-server-type must be vm or bm")
        if opts.get("openstack_keypair_name") and not opts.get("openstack_private_key_file"):
            raise UsageError(
                "--openstack-keypair-name needs --openstack-private-key-file, the private "
                "half of that key pair"
            )
        for key in ("openstack_private_key_file", "openstack_user_data_file"):
            if opts.get(key) and not Path(str(opts[key])).expanduser().is_file():
                flag = "--" + key.replace("_", "-")
                raise UsageError(f"{flag}: no such file {opts[key]}")
        for cidr in _split(opts.get("openstack_allowed_cidr")):
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError as err:
                raise UsageError(f"--openstack-allowed-cidr: {cidr!r} is not a CIDR") from err
        if opts.get("openstack_create_network") and not opts.get("openstack_floatingip_pool"):
            raise UsageError(
                "--openstack-create-network needs --openstack-floatingip-pool: the external "
                "network its router joins"
            )
        if int(opts.get("openstack_boot_from_volume") or 0) < 0:
            raise UsageError("--openstack-boot-from-volume must be a size in GB, or 0")
        if int(opts.get("openstack_ip_version") or 4) not in (4, 6):
            raise UsageError("--openstack-ip-version must be 4 or 6")
        _metadata(opts.get("openstack_metadata"))

    async def _resolve(self, opts: Mapping[str, Any]) -> dict[str, Any]:
        """Flavor, image, networks and security groups by name or ID (cached lookups)."""
        p = await self._provider(opts)
        flavor_ref = opts.get("openstack_flavor_id") or opts["openstack_flavor_name"]
        image_ref = opts.get("openstack_image_id") or opts["openstack_image_name"]
        net_ref = opts.get("openstack_net_id") or opts.get("openstack_net_name")
        pool_ref = opts.get("openstack_floatingip_pool")
        keypair = opts.get("openstack_keypair_name")

        async def nothing() -> Any:
            return None

        flavor, image, network, pool, keypair_found, *sgs = await asyncio.gather(
            res.find_flavor(p, str(flavor_ref)),
            res.find_image(p, str(image_ref)),
            res.find_network(p, str(net_ref)) if net_ref else nothing(),
            res.find_network(p, str(pool_ref), external=True) if pool_ref else nothing(),
            res.find_keypair(p, str(keypair)) if keypair else nothing(),
            *(res.find_security_group(p, g) for g in _split(opts.get("openstack_sec_groups"))),
        )
        del keypair_found  # looked up only to fail early with close matches
        if network is None and not opts.get("openstack_create_network"):
            network = await self._only_network(p)
        if opts.get("openstack_server_type") == "bm" and not res.bare_metal_flavor(flavor):
            raise UsageError(
                f"flavor {flavor.name!r} is not a bare-metal flavor (no resources:CUSTOM_* or baremetal=true "
                "extra spec); drop --openstack-server-type bm or pick an Ironic flavor"
            )
        return {
            "flavor": flavor,
            "flavor_id": flavor.id,
            "image_id": str(image.id),
            "network_id": str(network.id) if network is not None else None,
            "pool_id": str(pool.id) if pool is not None else None,
            "extra_sg_ids": [str(g.id) for g in sgs],
        }

    async def _only_network(self, p: Provider) -> Any:
        net = p.conn.network
        project = p.conn.current_project_id
        mine = await p.read(
            lambda: [
                n
                for n in net.networks(is_router_external=False)
                if n.project_id == project or n.is_shared
            ],
            "list networks",
        )
        if len(mine) == 1:
            return mine[0]
        names = ", ".join(sorted(n.name for n in mine)) or "none"
        raise UsageError(
            f"give --openstack-net-name (networks: {names}) or --openstack-create-network"
        )

    def _group_key(self, owner: Owner) -> str:
        return res.marker(owner)

    async def check(self, group: GroupSpec) -> None:
        opts = self._opts(group.options)
        self._validate(opts)
        p = await self._provider(opts)
        # Lookups and the owner's inventory do not depend on each other: read them at once.
        resolved, inv = await asyncio.gather(
            self._resolve(opts), node_ops.read_inventory(p, group.owner)
        )
        self._resolved[self._group_key(group.owner)] = resolved
        self._inventory[self._group_key(group.owner)] = inv
        await res.check_quotas(p, self._need(group, opts, resolved, inv), self._what(group))

    def _what(self, group: GroupSpec) -> str:
        plural = "s" if group.size != 1 else ""
        return f"{group.size} node{plural} of {group.name}"

    def _need(
        self,
        group: GroupSpec,
        opts: Mapping[str, Any],
        resolved: Mapping[str, Any],
        inv: node_ops.Inventory,
    ) -> res.Need:
        flavor: res.Flavor = resolved["flavor"]
        new = max(group.size - len(inv.servers), 0)
        create_net = bool(opts.get("openstack_create_network"))
        swarm = bool({"manager", "worker"} & set(group.roles))
        cidrs = _split(opts.get("openstack_allowed_cidr"))
        return res.Need(
            instances=new,
            cores=new * flavor.vcpus,
            ram=new * flavor.ram,
            server_groups=int(self._wants_server_group(group, opts)),
            floatingip=max(group.size - len(inv.fips), 0) if resolved.get("pool_id") else 0,
            # One port per node, plus the router interface and DHCP port of a new network.
            port=max(group.size - len(inv.ports), 0) + (2 if create_net else 0),
            security_group=1,
            security_group_rule=2 * len(cidrs) + (4 if swarm else 0) + 2,
            network=int(create_net),
            subnet=int(create_net),
            router=int(create_net),
        )

    def _wants_server_group(self, group: GroupSpec, opts: Mapping[str, Any]) -> bool:
        return "manager" in group.roles and opts.get("openstack_server_type") != "bm"

    # -- prepare / release -----------------------------------------------------------

    async def prepare(self, group: GroupSpec) -> dict[str, Any]:
        opts = self._opts(group.options)
        self._validate(opts)
        p = await self._provider(opts)
        resolved = self._resolved.get(self._group_key(group.owner)) or await self._resolve(opts)
        swarm = bool({"manager", "worker"} & set(group.roles))
        cidrs = _split(opts.get("openstack_allowed_cidr")) or ["0.0.0.0/0"]

        async def network() -> dict[str, str]:
            if not opts.get("openstack_create_network"):
                return {}
            return await shared_ops.ensure_network(
                p,
                group.owner,
                group.name,
                resolved["pool_id"],
                opts.get("openstack_subnet_cidr"),
                _split(opts.get("openstack_dns_nameservers")),
            )

        async def server_group() -> str | None:
            if not self._wants_server_group(group, opts):
                return None
            return await shared_ops.ensure_server_group(
                p, group.owner, group.name, str(opts["openstack_server_group_policy"])
            )

        # Independent of each other: made side by side, so latency adds up only once.
        keypair, sg_id, made_net, sg_group = await asyncio.gather(
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
            ),
            network(),
            server_group(),
        )
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
            "connect": {k: opts[k] for k in _CONNECT if opts.get(k) not in (None, "")},
        }

    async def release(self, group: GroupSpec, shared: Mapping[str, Any]) -> None:
        opts = self._opts(group.options, shared.get("connect"))
        p = await self._provider(opts)
        await self._delete_shared(p, group.owner, dict(shared), group_name=group.name)

    async def _delete_shared(
        self, p: Provider, owner: Owner, shared: dict[str, Any], *, group_name: str | None
    ) -> int:
        """Delete shared resources: by the IDs in ``shared``, else found by owner marker."""
        found = await self._find_shared(p, owner)
        compute, net = p.conn.compute, p.conn.network
        count = 0
        for router_id in {*found["routers"], *filter(None, [shared.get("router_id")])}:
            await shared_ops.delete_router(p, router_id)
            count += 1
        nets = set(found["networks"])
        if shared.get("network_created") and shared.get("network_id"):
            nets.add(shared["network_id"])
        for net_id in nets:
            await shared_ops.delete_network(p, net_id)
            count += 1
        for sg_id in {*found["security_groups"], *filter(None, [shared.get("security_group_id")])}:
            await p.run(
                partial(net.delete_security_group, sg_id, ignore_missing=True),
                "delete security group",
            )
            count += 1
        groups = set(found["server_groups"])
        if shared.get("server_group_id"):
            groups.add(shared["server_group_id"])
        for gid in groups:
            await p.run(
                partial(compute.delete_server_group, gid, ignore_missing=True),
                "delete server group",
            )
            count += 1
        keypairs = set(found["keypairs"])
        if shared.get("keypair_created") and shared.get("keypair_name"):
            keypairs.add(shared["keypair_name"])
        for name in keypairs:
            local = self.ctx.home / "openstack" / name
            await shared_ops.delete_keypair(p, name, local)
            count += 1
        return count

    async def _find_shared(self, p: Provider, owner: Owner) -> dict[str, list[str]]:
        compute, net = p.conn.compute, p.conn.network
        prefix = res.name_prefix(owner)

        def mine(items: Any) -> list[str]:
            return [str(i.id) for i in items if res.owned_by(res.parse_pairs(i.description), owner)]

        routers, networks, sgs, groups, keypairs = await asyncio.gather(
            p.read(lambda: mine(net.routers()), "list routers"),
            p.read(lambda: mine(net.networks()), "list networks"),
            p.read(lambda: mine(net.security_groups()), "list security groups"),
            p.read(
                lambda: [str(g.id) for g in compute.server_groups() if g.name.startswith(prefix)],
                "list server groups",
            ),
            p.read(
                lambda: [k.name for k in compute.keypairs() if k.name.startswith(prefix)],
                "list key pairs",
            ),
        )
        return {
            "routers": routers,
            "networks": networks,
            "security_groups": sgs,
            "server_groups": groups,
            "keypairs": keypairs,
        }

    # -- nodes -----------------------------------------------------------------------

    async def create(self, spec: NodeSpec, shared: Mapping[str, Any]) -> NodeRecord:
        opts = self._opts(shared.get("connect"), spec.options)
        p = await self._provider(opts)
        flavor_id, image_id = shared["flavor_id"], shared["image_id"]
        # A node group may use another flavor or image than the group's default.
        if spec.options.get("openstack_flavor_id") or spec.options.get("openstack_flavor_name"):
            ref = spec.options.get("openstack_flavor_id") or spec.options["openstack_flavor_name"]
            flavor_id = (await res.find_flavor(p, str(ref))).id
        if spec.options.get("openstack_image_id") or spec.options.get("openstack_image_name"):
            ref = spec.options.get("openstack_image_id") or spec.options["openstack_image_name"]
            image_id = str((await res.find_image(p, str(ref))).id)
        user_data_file = opts.get("openstack_user_data_file")
        if user_data_file:
            user_data = Path(str(user_data_file)).expanduser().read_bytes()
        else:
            user_data = _DEFAULT_USER_DATA.format(name=spec.name).encode()
        boot = node_ops.BootSpec(
            name=spec.name,
            role=str(spec.role),
            owner=spec.owner,
            flavor_id=str(flavor_id),
            image_id=str(image_id),
            network_id=str(shared["network_id"]),
            security_group_ids=list(shared["security_group_ids"]),
            pool_id=shared.get("pool_id"),
            keypair=shared.get("keypair_name"),
            user_data=user_data,
            config_drive=bool(opts.get("openstack_config_drive")),
            metadata={**_metadata(opts.get("openstack_metadata")), "flotte:role": str(spec.role)},
            availability_zone=opts.get("openstack_availability_zone"),
            server_group_id=shared.get("server_group_id") if spec.role == "manager" else None,
            volume_size=int(opts.get("openstack_boot_from_volume") or 0),
            ip_version=int(opts.get("openstack_ip_version") or 4),
            timeout=float(opts.get("openstack_active_timeout") or 200),
        )
        inv = self._inventory.get(self._group_key(spec.owner))
        data = await node_ops.create_node(p, boot, inv)
        addresses = data.pop("addresses")
        data.update(
            {
                "ssh_user": str(opts.get("openstack_ssh_user") or "root"),
                "ssh_port": int(opts.get("openstack_ssh_port") or 22),
                "private_key": shared.get("private_key"),
                "keypair_name": shared.get("keypair_name"),
                "owner": res.owner_pairs(spec.owner),
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

    async def provision(self, spec: NodeSpec, node: NodeRecord, engine: EngineOptions) -> Endpoint:
        from flotte.provision.booted import provision_booted

        endpoint = self.endpoint(node)
        await provision_booted(
            node,
            endpoint,
            engine,
            self.ctx.ca,
            # A server is ACTIVE before its sshd listens: keep knocking for a while.
            wait=float(node.data.get("active_timeout") or 200),
            known_hosts=self.ctx.known_hosts,
            owner=dict(node.data.get("owner") or {}),
            progress=self.ctx.progress,
            install_url=spec.options.get("engine_install_url") or None,
        )
        return endpoint

    async def state(self, node: NodeRecord) -> NodeState:
        p = await self._node_provider(node)
        if not node.provider_id:  # a record from a create that never got its server ID
            owner = self._record_owner(node)
            return node_ops.node_state(await node_ops.find_server(p, node.name, owner))
        return node_ops.node_state(await node_ops.get_server(p, node.provider_id))

    def _record_owner(self, node: NodeRecord) -> Owner:
        pairs = node.data.get("owner") or {}
        return Owner(
            cluster=pairs.get("flotte:cluster"),
            machine=pairs.get("flotte:machine"),
            installation=pairs.get("flotte:owner", self.ctx.installation),
        )

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
        image = await p.run(
            lambda: compute.create_server_image(
                node.provider_id, name, metadata={"flotte:snapshot-of": node.name}
            ),
            f"snapshot {node.name}",
        )
        from flotte.drivers.openstack_wait import ServerWatcher

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

    # -- leaks -----------------------------------------------------------------------

    async def _owner_provider(self) -> Provider:
        return await self._provider(self._opts())

    async def leftovers(self, owner: Owner) -> list[str]:
        p = await self._owner_provider()
        return [f"{kind} {label}" for kind, _, label in await self._owned(p, owner)]

    async def _owned(self, p: Provider, owner: Owner) -> list[tuple[str, str, str]]:
        """(kind, id, label) of everything flotte made for ``owner`` that still exists."""
        compute, net = p.conn.compute, p.conn.network

        def described(kind: str, items: Any) -> list[tuple[str, str, str]]:
            return [
                (kind, str(i.id), f"{i.name or i.id} ({i.id})")
                for i in items
                if res.owned_by(res.parse_pairs(getattr(i, "description", "")), owner)
            ]

        prefix = res.name_prefix(owner)
        parts = await asyncio.gather(
            p.read(
                lambda: [
                    ("server", str(s.id), f"{s.name} ({s.id})")
                    for s in compute.servers(details=True)
                    if res.owned_by(node_ops.server_owner(s), owner)
                ],
                "list servers",
            ),
            p.read(
                lambda: [
                    ("floating ip", str(f.id), f"{f.floating_ip_address} ({f.id})")
                    for f in net.ips()
                    if res.owned_by(res.parse_pairs(f.description), owner)
                ],
                "list floating IPs",
            ),
            p.read(lambda: described("port", net.ports()), "list ports"),
            p.read(lambda: described("router", net.routers()), "list routers"),
            p.read(lambda: described("network", net.networks()), "list networks"),
            p.read(lambda: described("security group", net.security_groups()), "list sgs"),
            p.read(
                lambda: [
                    ("server group", str(g.id), f"{g.name} ({g.id})")
                    for g in compute.server_groups()
                    if g.name.startswith(prefix)
                ],
                "list server groups",
            ),
            p.read(
                lambda: [
                    ("key pair", k.name, k.name)
                    for k in compute.keypairs()
                    if k.name.startswith(prefix)
                ],
                "list key pairs",
            ),
        )
        return [item for part in parts for item in part]

    async def sweep(self, owner: Owner) -> int:
        """Delete everything owned by ``owner``: servers first, then what they used."""
        p = await self._owner_provider()
        owned = await self._owned(p, owner)
        compute, net = p.conn.compute, p.conn.network
        by_kind: dict[str, list[str]] = {}
        for kind, rid, _ in owned:
            by_kind.setdefault(kind, []).append(rid)
        servers = await p.read(
            lambda: {
                s.id: s
                for s in compute.servers(details=True)
                if s.id in set(by_kind.get("server", []))
            },
            "list servers",
        )
        await asyncio.gather(
            *(
                node_ops.delete_node(
                    p, s.name, owner, server_id=s.id, port_id=None, fip_id=None, search=False
                )
                for s in servers.values()
            ),
            *(
                p.run(partial(net.delete_ip, f, ignore_missing=True), "delete floating IP")
                for f in by_kind.get("floating ip", [])
            ),
        )
        await asyncio.gather(
            *(
                p.run(partial(net.delete_port, port, ignore_missing=True), "delete port")
                for port in by_kind.get("port", [])
            )
        )
        count = len(servers) + len(by_kind.get("floating ip", [])) + len(by_kind.get("port", []))
        count += await self._delete_shared(p, owner, {}, group_name=None)
        return count
