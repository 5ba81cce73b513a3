"""OpenStack resources flotte looks up, checks and owns: markers, lookups, quotas.

Ownership is written *in the create request itself*, so no crash can leave an
unmarked resource behind: Neutron resources carry a ``description`` marker
(``flotte:owner=<installation> flotte:cluster=<name>``, exact-match filterable);
servers carry the same pairs as Nova metadata. Key pairs and server groups have neither, so their names encode the
owner (``flotte-<installation hash>-<owner hash>-<group>``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from flotte.drivers.openstack_conn import Provider, close_matches
from flotte.errors import DriverError, QuotaExceeded, UsageError
from flotte.models import Owner

OWNER_KEYS = ("flotte:owner", "flotte:cluster", "flotte:machine")
NODE_KEY = "flotte:node"


def owner_pairs(owner: Owner) -> dict[str, str]:
    out = {"flotte:owner": owner.installation}
    if owner.cluster:
        out["flotte:cluster"] = owner.cluster
    if owner.machine:
        out["flotte:machine"] = owner.machine
    return out


def marker(owner: Owner) -> str:
    """The description every Neutron resource of this owner carries (exact-match filter)."""
    return " ".join(f"{k}={v}" for k, v in owner_pairs(owner).items())


def tags(owner: Owner) -> list[str]:
    # Neutron caps a tag at 60 characters; names are at most 40, so these fit.
    return [f"{k}={v}"[:60] for k, v in owner_pairs(owner).items()]


def parse_pairs(text: str | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for word in (text or "").split():
        key, sep, value = word.partition("=")
        if sep and key.startswith("flotte:"):
            out[key] = value
    return out


def owned_by(pairs: Mapping[str, str], owner: Owner) -> bool:
    """True when ``pairs`` (metadata or a parsed marker) belong to ``owner`` or below it."""
    if not owner.installation or pairs.get("flotte:owner") != owner.installation:
        return False
    if owner.cluster and pairs.get("flotte:cluster") != owner.cluster:
        return False
    return not (owner.machine and pairs.get("flotte:machine") != owner.machine)


def _h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:6]


def name_prefix(owner: Owner) -> str:
    """Prefix of key pair / server group names: all of an installation, or one owner."""
    base = f"flotte-{_h(owner.installation)}-"
    if owner.cluster or owner.machine:
        who = f"{owner.cluster or ''}/{owner.machine or ''}"
        base += f"{_h(who)}-"
    return base


def owned_name(owner: Owner, group: str, suffix: str = "") -> str:
    return f"{name_prefix(owner)}{group}{suffix}"


@dataclass(frozen=True)
class Flavor:
    id: str
    name: str
    vcpus: int
    ram: int
    disk: int
    extra_specs: Mapping[str, str]


async def _find(p: Provider, kind: str, finder: Any, lister: Any, value: str, flag: str) -> Any:
    """Find by name or ID; not found lists close names; several with one name is an error."""
    from openstack import exceptions as os_exc

    key = f"{kind}:{value}"
    if key in p.cache:
        return p.cache[key]
    try:
        # ignore_missing=False: True is deprecated (openstacksdk warns); a miss raises.
        found = await p.read(lambda: finder(value, ignore_missing=False), f"find {kind}", raw=True)
    except os_exc.NotFoundException:
        found = None
    except os_exc.DuplicateResource as err:
        raise UsageError(
            f"several {kind}s are named {value!r}: give its ID with {flag.replace('name', 'id')}"
        ) from err
    except Exception as err:
        from flotte.drivers.openstack_conn import translate

        raise translate(err, f"find {kind} {value!r}", p.spec) from err
    if found is None:
        names = await p.read(lambda: [r.name for r in lister()], f"list {kind}s")
        raise UsageError(f"{kind} {value!r} not found{close_matches(value, names)} ({flag})")
    p.cache[key] = found
    return found


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

    found = await _find(p, kind, net.find_network, lister, value, flag)
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
    )


async def find_keypair(p: Provider, value: str) -> Any:
    compute = p.conn.compute
    return await _find(
        p, "key pair", compute.find_keypair, compute.keypairs, value, "--openstack-keypair-name"
    )


async def has_extension(p: Provider, alias: str) -> bool:
    key = "extensions"
    if key not in p.cache:
        net = p.conn.network
        p.cache[key] = await p.read(
            lambda: {e.alias for e in net.extensions()}, "list network extensions"
        )
    return alias in p.cache[key]


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


async def check_quotas(p: Provider, need: Need, what: str) -> None:
    """Raise QuotaExceeded naming every resource that is short, before anything is made."""
    short: list[str] = []
    compute = p.conn.compute
    limits = await p.read(lambda: compute.get_limits().absolute, "read compute limits")
    for field_, (limit_attr, used_attr, label) in _COMPUTE.items():
        wanted = getattr(need, field_)
        if wanted <= 0:
            continue
        free = _free(getattr(limits, limit_attr, None), getattr(limits, used_attr, 0))
        if free is not None and wanted > free:
            short.append(f"{label}: need {wanted}, {max(free, 0)} free")
    network_need = {k: getattr(need, k) for k in _NETWORK if getattr(need, k) > 0}
    if network_need:
        details = await _network_quota(p)
        for field_, wanted in network_need.items():
            attr, label = _NETWORK[field_]
            entry = getattr(details, attr, None) if details is not None else None
            if not isinstance(entry, Mapping):
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


def rule_specs(
    sg_id: str, cidrs: Iterable[str], *, swarm: bool, ssh_port: int = 22
) -> list[dict[str, Any]]:
    """Ingress rules: SSH and TLS Docker from ``cidrs``; Swarm ports between members only."""
    rules: list[dict[str, Any]] = []
    for cidr in cidrs:
        ethertype = "IPv6" if ":" in cidr else "IPv4"
        for port in sorted({ssh_port, 2376}):
            rules.append(
                {
                    "security_group_id": sg_id,
                    "direction": "ingress",
                    "ethertype": ethertype,
                    "protocol": "tcp",
                    "port_range_min": port,
                    "port_range_max": port,
                    "remote_ip_prefix": cidr,
                }
            )
    if swarm:
        for protocol, port in (("tcp", 2377), ("tcp", 7946), ("udp", 7946), ("udp", 4789)):
            rules.append(
                {
                    "security_group_id": sg_id,
                    "direction": "ingress",
                    "ethertype": "IPv4",
                    "protocol": protocol,
                    "port_range_min": port,
                    "port_range_max": port,
                    "remote_group_id": sg_id,
                }
            )
    return rules


def rule_key(rule: Mapping[str, Any]) -> tuple[Any, ...]:
    return (
        rule.get("direction"),
        rule.get("ethertype"),
        rule.get("protocol"),
        rule.get("port_range_min"),
        rule.get("port_range_max"),
        rule.get("remote_ip_prefix"),
        rule.get("remote_group_id"),
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


def require(condition: bool, message: str) -> None:
    if not condition:
        raise UsageError(message)


def ensure_no_error(server: Any, what: str) -> None:
    from flotte.drivers.openstack_wait import fault_message

    if server is not None and getattr(server, "status", "") == "ERROR":
        raise DriverError(f"{what}: server in ERROR: {fault_message(server)}")
