"""Finding and deleting what flotte made for an owner on OpenStack, by owner marks.

Servers first (with their floating IPs and ports), then what they used: routers,
networks, security groups, server groups, key pairs.
"""

from __future__ import annotations

import asyncio
from functools import partial
from pathlib import Path
from typing import Any

from flotte.drivers.openstack.connection import Provider
from flotte.drivers.openstack.inventory import server_owner
from flotte.drivers.openstack.marks import name_prefix, owned_by, parse_pairs
from flotte.drivers.openstack.nodes import delete_node, delete_port
from flotte.drivers.openstack.resources import (
    delete_keypair,
    delete_network,
    delete_router,
    delete_security_group,
    delete_server_group,
)
from flotte.models import Owner


async def delete_shared(p: Provider, owner: Owner, shared: dict[str, Any], home: Path) -> int:
    """Delete shared resources: by the IDs in ``shared``, else found by owner marker."""
    found = await find_shared(p, owner)
    count = 0
    for router_id in {*found["routers"], *filter(None, [shared.get("router_id")])}:
        await delete_router(p, router_id)
        count += 1
    nets = set(found["networks"])
    if shared.get("network_created") and shared.get("network_id"):
        nets.add(shared["network_id"])
    for net_id in nets:
        await delete_network(p, net_id)
        count += 1
    for sg_id in {*found["security_groups"], *filter(None, [shared.get("security_group_id")])}:
        await delete_security_group(p, sg_id)
        count += 1
    groups = set(found["server_groups"])
    if shared.get("server_group_id"):
        groups.add(shared["server_group_id"])
    for gid in groups:
        await delete_server_group(p, gid)
        count += 1
    keypairs = set(found["keypairs"])
    if shared.get("keypair_created") and shared.get("keypair_name"):
        keypairs.add(shared["keypair_name"])
    for name in keypairs:
        local = home / "openstack" / name
        await delete_keypair(p, name, local)
        count += 1
    return count


async def find_shared(p: Provider, owner: Owner) -> dict[str, list[str]]:
    compute, net = p.conn.compute, p.conn.network
    prefix = name_prefix(owner)

    def mine(items: Any) -> list[str]:
        return [str(i.id) for i in items if owned_by(parse_pairs(i.description), owner)]

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


async def owned(p: Provider, owner: Owner) -> list[tuple[str, str, str]]:
    """(kind, id, label) of everything flotte made for ``owner`` that still exists."""
    compute, net = p.conn.compute, p.conn.network

    def described(kind: str, items: Any) -> list[tuple[str, str, str]]:
        return [
            (kind, str(i.id), f"{i.name or i.id} ({i.id})")
            for i in items
            if owned_by(parse_pairs(getattr(i, "description", "")), owner)
        ]

    prefix = name_prefix(owner)
    parts = await asyncio.gather(
        p.read(
            lambda: [
                ("server", str(s.id), f"{s.name} ({s.id})")
                for s in compute.servers(details=True)
                if owned_by(server_owner(s), owner)
            ],
            "list servers",
        ),
        p.read(
            lambda: [
                ("floating ip", str(f.id), f"{f.floating_ip_address} ({f.id})")
                for f in net.ips()
                if owned_by(parse_pairs(f.description), owner)
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


# A killed run's last requests can still be in Nova's or Neutron's hands when the sweep
# lists (CI, stop 23: a floating IP for a node's port appeared after the listing and was
# left behind). Once a pass has deleted the ports, nothing can attach to them any more,
# so listing again until a pass finds nothing catches what landed late.
_PASSES = 4


async def sweep(p: Provider, owner: Owner, home: Path) -> int:
    """Delete everything owned by ``owner``, servers first, then what they used; list
    again after each pass that found something, until one finds nothing."""
    count = 0
    for _ in range(_PASSES):
        found = await owned(p, owner)
        if not found:
            break
        count += await _sweep_pass(p, owner, home, found)
    return count


async def _sweep_pass(
    p: Provider, owner: Owner, home: Path, found: list[tuple[str, str, str]]
) -> int:
    compute, net = p.conn.compute, p.conn.network
    by_kind: dict[str, list[str]] = {}
    for kind, rid, _ in found:
        by_kind.setdefault(kind, []).append(rid)
    wanted = set(by_kind.get("server", []))
    # the objects (delete_node needs each name); a pass without servers (a cluster's
    # release finds only its network and groups) lists none
    servers = (
        await p.read(
            lambda: {s.id: s for s in compute.servers(details=True) if s.id in wanted},
            "list servers",
        )
        if wanted
        else {}
    )
    await asyncio.gather(
        *(
            delete_node(p, s.name, owner, server_id=s.id, port_id=None, fip_id=None, search=False)
            for s in servers.values()
        ),
        *(
            p.run(partial(net.delete_ip, f, ignore_missing=True), "delete floating IP")
            for f in by_kind.get("floating ip", [])
        ),
    )
    await asyncio.gather(*(delete_port(p, port) for port in by_kind.get("port", [])))
    count = len(servers) + len(by_kind.get("floating ip", [])) + len(by_kind.get("port", []))
    count += await delete_shared(p, owner, {}, home)
    return count
