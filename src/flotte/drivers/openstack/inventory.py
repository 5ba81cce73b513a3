"""What an owner already has on OpenStack: read once per group, or looked up by node.

A create adopts what an earlier, interrupted run made instead of making it twice.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from flotte.drivers.openstack.connection import Provider
from flotte.drivers.openstack.marks import marker, owned_by
from flotte.drivers.openstack.wait import servers_named
from flotte.models import NODE_KEY, Owner


@dataclass
class Inventory:
    """What one owner already has in the cloud, read in three requests for a whole group."""

    servers: dict[str, Any] = field(default_factory=dict)  # node name -> server
    ports: dict[str, Any] = field(default_factory=dict)  # node name -> port
    fips: dict[str, Any] = field(default_factory=dict)  # port id -> floating IP
    # A node to be made already has a server or port: an earlier run was interrupted,
    # and requests it had in flight may still land (see nodes._drop_stray_ports).
    earlier: bool = False


def server_owner(server: Any) -> dict[str, str]:
    return dict(getattr(server, "metadata", None) or {})


async def read_inventory(p: Provider, owner: Owner, names: list[str] | None = None) -> Inventory:
    """What ``owner`` has; with ``names`` (the nodes a plan will make), only servers
    whose names could be theirs are listed, not the whole project's."""
    compute, net = p.conn.compute, p.conn.network
    desc = marker(owner)
    query = servers_named(names) if names else {"details": True}
    servers, ports, fips = await asyncio.gather(
        p.read(lambda: list(compute.servers(**query)), "list servers"),
        p.read(lambda: list(net.ports(description=desc)), "list ports"),
        p.read(lambda: list(net.ips(description=desc)), "list floating IPs"),
    )
    inv = Inventory()
    for s in servers:
        meta = server_owner(s)
        if owned_by(meta, owner) and meta.get(NODE_KEY):
            inv.servers[meta[NODE_KEY]] = s
    for port in _bound_first(ports):
        inv.ports.setdefault(port.name, port)
    for fip in fips:
        if fip.port_id:
            inv.fips[fip.port_id] = fip
    # Ports of the owner's other nodes (a resize) are no sign of an interrupted run.
    inv.earlier = any(not names or n in names for n in (*inv.servers, *inv.ports))
    return inv


async def servers_of(p: Provider, name: str, owner: Owner) -> list[Any]:
    compute = p.conn.compute
    listed = await p.read(
        lambda: list(compute.servers(details=True, name=f"^{name}$")), "find server"
    )
    return [
        s for s in listed if owned_by(meta := server_owner(s), owner) and meta.get(NODE_KEY) == name
    ]


async def find_server(p: Provider, name: str, owner: Owner) -> Any:
    found = await servers_of(p, name, owner)
    return found[0] if found else None


async def ports_of(p: Provider, name: str, owner: Owner) -> list[Any]:
    net = p.conn.network
    desc = marker(owner)
    return await p.read(lambda: list(net.ports(name=name, description=desc)), "find port")


def _bound_first(ports: list[Any]) -> list[Any]:
    # A node may keep an unused twin of its port (a killed run's late request whose
    # delete failed): the port a server uses is the node's.
    return sorted(ports, key=lambda port: not port.device_id)


async def find_port(p: Provider, name: str, owner: Owner) -> Any:
    found = _bound_first(await ports_of(p, name, owner))
    return found[0] if found else None


async def find_fip(p: Provider, port_id: str) -> Any:
    net = p.conn.network
    found = await p.read(lambda: list(net.ips(port_id=port_id)), "find floating IP")
    return found[0] if found else None
