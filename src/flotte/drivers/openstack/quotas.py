"""Quotas: what a group will add to the project, checked before anything is made."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flotte.drivers.base import GroupSpec
from flotte.drivers.openstack.connection import Provider
from flotte.drivers.openstack.inventory import Inventory
from flotte.drivers.openstack.lookups import Flavor
from flotte.drivers.openstack.options import split
from flotte.errors import QuotaExceeded


@dataclass
class Need:
    """What a group will add to the project; compared with quotas before anything is made."""

    instances: int = 0
    cores: int = 0
    ram: int = 0
    server_groups: int = 0
    keypairs: int = 0
    floatingip: int = 0
    port: int = 0
    security_group: int = 0
    security_group_rule: int = 0
    network: int = 0
    subnet: int = 0
    router: int = 0


_COMPUTE = {
    # Need field -> (limit attribute, used attribute, label)
    "instances": ("instances", "instances_used", "instances"),
    "cores": ("total_cores", "total_cores_used", "vCPUs"),
    "ram": ("total_ram", "total_ram_used", "RAM (MB)"),
    "server_groups": ("server_groups", "server_groups_used", "server groups"),
}
_NETWORK = {
    "floatingip": ("floating_ips", "floating IPs"),
    "port": ("ports", "ports"),
    "security_group": ("security_groups", "security groups"),
    "security_group_rule": ("security_group_rules", "security group rules"),
    "network": ("networks", "networks"),
    "subnet": ("subnets", "subnets"),
    "router": ("routers", "routers"),
}


def _free(limit: Any, used: Any, reserved: Any = 0) -> int | None:
    if limit is None or int(limit) < 0:
        return None  # unlimited
    return int(limit) - int(used or 0) - int(reserved or 0)


@dataclass(frozen=True)
class Usage:
    """The project's limits and usage, read once (while the group's lookups run)."""

    compute: Any
    network: Any  # None where policy hides Neutron's quota details


async def read_usage(p: Provider) -> Usage:
    compute = p.conn.compute
    limits, network = await asyncio.gather(
        p.read(lambda: compute.get_limits().absolute, "read compute limits"),
        _network_quota(p),
    )
    return Usage(compute=limits, network=network)


def check_quotas(usage: Usage, need: Need, what: str) -> None:
    """Raise QuotaExceeded naming every resource that is short, before anything is made."""
    short: list[str] = []
    for field_, (limit_attr, used_attr, label) in _COMPUTE.items():
        wanted = getattr(need, field_)
        if wanted <= 0:
            continue
        limits = usage.compute
        free = _free(getattr(limits, limit_attr, None), getattr(limits, used_attr, 0))
        if free is not None and wanted > free:
            short.append(f"{label}: need {wanted}, {max(free, 0)} free")
    for field_, (attr, label) in _NETWORK.items():
        wanted = getattr(need, field_)
        entry = getattr(usage.network, attr, None) if usage.network is not None else None
        if wanted <= 0 or not isinstance(entry, Mapping):
            continue
        free = _free(entry.get("limit"), entry.get("used"), entry.get("reserved"))
        if free is not None and wanted > free:
            short.append(f"{label}: need {wanted}, {max(free, 0)} free")
    if short:
        raise QuotaExceeded(
            f"quota too small for {what}: " + "; ".join(short),
            hint="ask the cloud's operators for more, or ask for fewer or smaller nodes",
        )


async def _network_quota(p: Provider) -> Any:
    """The project's Neutron quota with usage, or None where policy hides it."""
    net = p.conn.network
    project = p.conn.current_project_id
    try:
        return await p.read(
            lambda: net.get_quota(project, details=True), "read network quota", raw=True
        )
    except Exception:
        # Some clouds forbid reading quota details; Neutron still refuses over-quota
        # creates with a clear 409, which translate() turns into QuotaExceeded.
        return None


def what(group: GroupSpec) -> str:
    plural = "s" if group.size != 1 else ""
    return f"{group.size} node{plural} of {group.name}"


def need(
    group: GroupSpec,
    opts: Mapping[str, Any],
    resolved: Mapping[str, Any],
    inv: Inventory,
    flavors: Mapping[str, Flavor] | None = None,
) -> Need:
    """What the group adds: its planned nodes (``group.nodes``, each with its own flavor
    from ``flavors`` or the group's) that the cloud does not have yet, else ``size``."""
    flavor: Flavor = resolved["flavor"]
    create_net = bool(opts.get("openstack_create_network"))
    swarm = bool({"manager", "worker"} & set(group.roles))
    cidrs = split(opts.get("openstack_allowed_cidr"))
    if group.nodes:
        fresh = [n.name for n in group.nodes if n.name not in inv.servers]
        sizes = [(flavors or {}).get(name, flavor) for name in fresh]
        ports = [n.name for n in group.nodes if n.name not in inv.ports]
        with_fip = {n for n, port in inv.ports.items() if port.id in inv.fips}
        fips = len([n for n in group.nodes if n.name not in with_fip])
        new_ports = len(ports)
    else:
        sizes = [flavor] * max(group.size - len(inv.servers), 0)
        fips = max(group.size - len(inv.fips), 0)
        new_ports = max(group.size - len(inv.ports), 0)
    return Need(
        instances=len(sizes),
        cores=sum(f.vcpus for f in sizes),
        ram=sum(f.ram for f in sizes),
        server_groups=int(wants_server_group(group, opts)),
        floatingip=fips if resolved.get("pool_id") else 0,
        # One port per node, plus the router interface and DHCP port of a new network.
        port=new_ports + (2 if create_net else 0),
        security_group=1,
        security_group_rule=2 * len(cidrs) + (4 if swarm else 0) + 2,
        network=int(create_net),
        subnet=int(create_net),
        router=int(create_net),
    )


def wants_server_group(group: GroupSpec, opts: Mapping[str, Any]) -> bool:
    return "manager" in group.roles and opts.get("openstack_server_type") != "bm"
