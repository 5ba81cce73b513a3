"""Finding what the user named on an OpenStack cloud: flavors, images, networks,
security groups, key pairs. A miss lists close names; lookups are cached per Provider."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from flotte.drivers.openstack.connection import Provider, close_matches, translate
from flotte.drivers.openstack.options import split
from flotte.errors import UsageError


@dataclass(frozen=True)
class Flavor:
    id: str
    name: str
    vcpus: int
    ram: int
    disk: int
    extra_specs: Mapping[str, str]


async def _find(
    p: Provider, kind: str, finder: Any, lister: Any, value: str, flag: str, *, own: bool = False
) -> Any:
    """Find by name or ID; not found lists close names; several with one name is an error.

    ``own``: among several of that name, the caller's project's one is meant. An admin
    sees every project's networks and security groups (each project has a ``default``
    group), as Horizon's project view does not; a name is the admin's own one there.
    """
    from openstack import exceptions as os_exc

    key = f"{kind}:{value}"
    if key in p.cache:
        return p.cache[key]
    several = UsageError(
        f"several {kind}s are named {value!r}: give its ID with {flag.replace('name', 'id')}"
    )
    try:
        # ignore_missing=False: True is deprecated (openstacksdk warns); a miss raises.
        found = await p.read(lambda: finder(value, ignore_missing=False), f"find {kind}", raw=True)
    except os_exc.NotFoundException:
        found = None
    except os_exc.DuplicateResource as err:
        if not own:
            raise several from err
        found = await p.read(lambda: _own(p, finder, value), f"find {kind}")
        if found is None:
            raise several from err
    except Exception as err:
        raise translate(err, f"find {kind} {value!r}", p.spec) from err
    if found is None:
        names = await p.read(lambda: [r.name for r in lister()], f"list {kind}s")
        raise UsageError(f"{kind} {value!r} not found{close_matches(value, names)} ({flag})")
    p.cache[key] = found
    return found


def _own(p: Provider, finder: Any, value: str) -> Any:
    """The one of that name in the caller's project, or None (none there, or several)."""
    from openstack import exceptions as os_exc

    try:
        return finder(value, ignore_missing=False, project_id=p.conn.current_project_id)
    except (os_exc.NotFoundException, os_exc.DuplicateResource):
        return None


async def find_flavor(p: Provider, value: str) -> Flavor:
    compute = p.conn.compute
    f = await _find(
        p, "flavor", compute.find_flavor, compute.flavors, value, "--openstack-flavor-name"
    )
    return Flavor(
        id=str(f.id),
        name=str(f.name),
        vcpus=int(f.vcpus or 0),
        ram=int(f.ram or 0),
        disk=int(f.disk or 0),
        extra_specs=dict(getattr(f, "extra_specs", None) or {}),
    )


async def find_image(p: Provider, value: str) -> Any:
    image = p.conn.image
    found = await _find(p, "image", image.find_image, image.images, value, "--openstack-image-name")
    if getattr(found, "status", "active") != "active":
        raise UsageError(f"image {value!r} is {found.status}, not active")
    return found


async def find_network(p: Provider, value: str, *, external: bool = False) -> Any:
    net = p.conn.network
    kind = "floating IP pool" if external else "network"
    flag = "--openstack-floatingip-pool" if external else "--openstack-net-name"

    def lister() -> Iterable[Any]:
        if external:
            return list(net.networks(is_router_external=True))
        return list(net.networks())

    found = await _find(p, kind, net.find_network, lister, value, flag, own=not external)
    if external and not getattr(found, "is_router_external", False):
        pools = await p.read(lambda: [n.name for n in lister()], "list networks")
        raise UsageError(
            f"network {value!r} is not external, so it has no floating IPs"
            f"{close_matches(value, pools)} ({flag})"
        )
    return found


async def find_security_group(p: Provider, value: str) -> Any:
    net = p.conn.network
    return await _find(
        p,
        "security group",
        net.find_security_group,
        net.security_groups,
        value,
        "--openstack-sec-groups",
        own=True,
    )


async def find_keypair(p: Provider, value: str) -> Any:
    compute = p.conn.compute
    return await _find(
        p, "key pair", compute.find_keypair, compute.keypairs, value, "--openstack-keypair-name"
    )


def bare_metal_flavor(flavor: Flavor) -> bool:
    """Ironic flavors schedule on a custom resource class (``resources:CUSTOM_*=1``);
    some clouds (and devcloud, whose fake compute cannot schedule those) mark them
    ``baremetal=true`` instead."""
    specs = flavor.extra_specs
    if str(specs.get("baremetal", "")).lower() == "true":
        return True
    return any(
        k.startswith("resources:CUSTOM_") and str(v) not in ("0", "") for k, v in specs.items()
    )


async def resolve(p: Provider, opts: Mapping[str, Any]) -> dict[str, Any]:
    """Flavor, image, networks and security groups by name or ID (cached lookups)."""
    flavor_ref = opts.get("openstack_flavor_id") or opts["openstack_flavor_name"]
    image_ref = opts.get("openstack_image_id") or opts["openstack_image_name"]
    net_ref = opts.get("openstack_net_id") or opts.get("openstack_net_name")
    pool_ref = opts.get("openstack_floatingip_pool")
    keypair = opts.get("openstack_keypair_name")

    async def nothing() -> Any:
        return None

    flavor, image, network, pool, keypair_found, *sgs = await asyncio.gather(
        find_flavor(p, str(flavor_ref)),
        find_image(p, str(image_ref)),
        find_network(p, str(net_ref)) if net_ref else nothing(),
        find_network(p, str(pool_ref), external=True) if pool_ref else nothing(),
        find_keypair(p, str(keypair)) if keypair else nothing(),
        *(find_security_group(p, g) for g in split(opts.get("openstack_sec_groups"))),
    )
    del keypair_found  # looked up only to fail early with close matches
    if network is None and not opts.get("openstack_create_network"):
        network = await only_network(p)
    if opts.get("openstack_server_type") == "bm" and not bare_metal_flavor(flavor):
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


async def only_network(p: Provider) -> Any:
    """The project's one tenant network, when no network was named."""
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
    raise UsageError(f"give --openstack-net-name (networks: {names}) or --openstack-create-network")
