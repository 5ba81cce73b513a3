"""What the nodes of one group share: key pair, security group, network, server group.

Each ``ensure_*`` finds what a previous (possibly killed) run made, by its owner
marker or owned name, and makes only what is missing; each ``delete_*`` accepts
that the thing is already gone. That is what lets ``prepare`` and ``release`` be
re-run after any crash.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from flotte.drivers.openstack.connection import Provider, status_of, translate
from flotte.drivers.openstack.create_once import create_once
from flotte.drivers.openstack.marks import marker, owned_name
from flotte.errors import UsageError
from flotte.models import Owner
from flotte.sshkeys import new_keypair


async def neutron_attrs(p: Provider, owner: Owner, **attrs: Any) -> dict[str, Any]:
    """Create attributes with the owner marker.

    The marker goes in ``description``, which every Neutron resource takes in its create
    request. Tags would need a second request per resource (``tag-creation`` is not
    honoured for most resources, measured on Neutron 29), leaving a window where a
    crash leaves an unmarked resource.
    """
    attrs["description"] = marker(owner)
    return attrs


# -- key pair -----------------------------------------------------------------------


def public_key_of(private_key: Path) -> str:
    """The OpenSSH public key line of a private key file (OpenSSH or PEM format)."""
    from cryptography.hazmat.primitives import serialization

    pub = private_key.with_name(private_key.name + ".pub")
    if pub.exists():
        return pub.read_text().strip()
    data = private_key.read_bytes()
    try:
        if b"OPENSSH PRIVATE KEY" in data:
            key: Any = serialization.load_ssh_private_key(data, password=None)
        else:
            key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as err:
        raise UsageError(
            f"cannot read the private key {private_key} (encrypted keys need a .pub file "
            "beside them)"
        ) from err
    line = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return bytes(line).decode()


def _same_key(a: str, b: str) -> bool:
    return a.split()[:2] == b.split()[:2]


async def ensure_keypair(
    p: Provider,
    owner: Owner,
    group: str,
    home: Path,
    keypair_name: str | None,
    private_key_file: str | None,
) -> dict[str, Any]:
    """The key pair nodes boot with, and the private key that opens them.

    docker-machine's rules: ``--openstack-keypair-name`` with ``--openstack-private-key-file``
    uses an existing cloud key pair; a private key file alone is imported; neither
    generates one, kept 0600 under the driver's home and deleted with the group.
    """
    from openstack import exceptions as os_exc

    compute = p.conn.compute
    if keypair_name:
        return {
            "keypair_name": keypair_name,
            "keypair_created": False,
            "private_key": str(Path(private_key_file).expanduser()) if private_key_file else None,
        }
    name = owned_name(owner, group)
    if private_key_file:
        key_path = Path(private_key_file).expanduser()
        public = public_key_of(key_path)
    else:
        # The private half is written before the import: a crash in between leaves a
        # local file to reuse, never a cloud key pair nobody can log in with.
        key_path = home / "openstack" / name
        public = public_key_of(key_path) if key_path.exists() else new_keypair(key_path)
    try:
        existing = await p.read(lambda: compute.get_keypair(name), "get key pair", raw=True)
    except os_exc.NotFoundException:
        existing = None
    except Exception as err:
        if status_of(err) != 404:
            raise translate(err, "get key pair", p.spec) from err
        existing = None
    if existing is not None and not _same_key(existing.public_key or "", public):
        await p.run(lambda: compute.delete_keypair(name, ignore_missing=True), "delete key pair")
        existing = None
    if existing is None:
        try:
            await p.run(
                lambda: compute.create_keypair(name=name, public_key=public),
                "import key pair",
                raw=True,
            )
        except Exception as err:
            if status_of(err) != 409:  # made by a concurrent or lost earlier request
                raise translate(err, f"import key pair {name}", p.spec) from err
    return {"keypair_name": name, "keypair_created": True, "private_key": str(key_path)}


async def delete_keypair(p: Provider, name: str, local: Path | None) -> None:
    compute = p.conn.compute
    await p.run(lambda: compute.delete_keypair(name, ignore_missing=True), "delete key pair")
    if local is not None:
        for f in (local, local.with_name(local.name + ".pub")):
            f.unlink(missing_ok=True)


# -- security group -----------------------------------------------------------------


_UNKNOWN = object()  # ensure_security_group(found=...): not looked up yet


async def owned(p: Provider, owner: Owner, group: str, collection: str) -> list[Any]:
    """The group's things of one Neutron collection (``networks``, ``routers``...), by
    name and owner marker: one, unless a killed run's create landed late (``twins``)."""
    query = getattr(p.conn.network, collection)
    name, desc = f"flotte-{group}", marker(owner)
    return await p.read(lambda: list(query(name=name, description=desc)), f"list {collection}")


async def find_security_group(p: Provider, owner: Owner, group: str) -> Any:
    """The group's security group, or None."""
    found = await owned(p, owner, group, "security_groups")
    return found[0] if found else None


async def delete_security_group(p: Provider, sg_id: str) -> None:
    """Delete one security group; already gone is done."""
    net = p.conn.network
    await p.run(
        partial(net.delete_security_group, sg_id, ignore_missing=True), "delete security group"
    )


async def ensure_security_group(
    p: Provider,
    owner: Owner,
    group: str,
    cidrs: Iterable[str],
    *,
    swarm: bool,
    ssh_port: int,
    found: Any = _UNKNOWN,
) -> tuple[str, bool]:
    """The group's security group with its rules, and whether this call made it;
    ``found`` is what ``find_security_group`` returned moments ago (check), which saves
    asking again."""
    net = p.conn.network
    sg = await find_security_group(p, owner, group) if found is _UNKNOWN else found
    made = sg is None
    if sg is None:
        attrs = await neutron_attrs(p, owner, name=f"flotte-{group}")
        sg = await create_once(
            p,
            "create security group",
            lambda: net.create_security_group(**attrs),
            lambda: find_security_group(p, owner, group),
        )
    have = {rule_key(r) for r in (sg.security_group_rules or [])}
    wanted = [r for r in rule_specs(sg.id, cidrs, swarm=swarm, ssh_port=ssh_port)]
    missing = [r for r in wanted if rule_key(r) not in have]
    if missing:
        # One bulk request for every rule instead of one request per rule.
        try:
            await p.run(
                lambda: list(net.create_security_group_rules(missing)),
                "create security group rules",
                raw=True,
            )
        except Exception as err:
            if status_of(err) != 409:  # a rule made by a lost earlier request
                raise translate(err, "create security group rules", p.spec) from err
            for rule in missing:
                try:
                    await p.run(
                        partial(net.create_security_group_rule, **rule),
                        "create security group rule",
                        raw=True,
                    )
                except Exception as err2:
                    if status_of(err2) != 409:
                        raise translate(err2, "create security group rule", p.spec) from err2
    return str(sg.id), made


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


# -- network, subnet, router --------------------------------------------------------


def default_cidr(owner: Owner, group: str) -> str:
    """A /24 in 10.64.0.0/10 derived from the owner, so groups rarely overlap."""
    digest = hashlib.sha256(f"{owner.installation}/{group}".encode()).digest()
    base = int(ipaddress.IPv4Address("10.64.0.0")) + (int.from_bytes(digest[:2]) % 16384) * 256
    return f"{ipaddress.IPv4Address(base)}/24"


async def ensure_network(
    p: Provider,
    owner: Owner,
    group: str,
    external_id: str,
    cidr: str | None,
    dns: list[str],
) -> tuple[dict[str, str], dict[str, str]]:
    """A tenant network with one subnet and a router to the external network: their IDs,
    and those this call made, by kind (``twins.drop_twins`` looks for their late twins)."""
    net = p.conn.network
    name = f"flotte-{group}"

    async def find_net() -> Any:
        found = await owned(p, owner, group, "networks")
        return found[0] if found else None

    async def find_subnet() -> Any:
        found = await p.read(lambda: list(net.subnets(network_id=network.id)), "find subnet")
        return found[0] if found else None

    async def find_router() -> Any:
        found = await owned(p, owner, group, "routers")
        return found[0] if found else None

    made: dict[str, str] = {}
    network = await find_net()
    if network is None:
        attrs = await neutron_attrs(p, owner, name=name)
        network = await create_once(
            p, "create network", lambda: net.create_network(**attrs), find_net
        )
        made["network"] = str(network.id)
    subnet = await find_subnet()
    if subnet is None:
        attrs = await neutron_attrs(
            p, owner, name=name, network_id=network.id, ip_version=4, enable_dhcp=True
        )
        if dns:
            attrs["dns_nameservers"] = dns
        if cidr:
            attrs["cidr"] = cidr
        else:
            pools = await p.read(
                lambda: list(net.subnet_pools(is_default=True, ip_version=4)),
                "find subnet pool",
            )
            if pools:
                attrs["subnetpool_id"] = pools[0].id
                attrs["prefixlen"] = 24
            else:
                attrs["cidr"] = default_cidr(owner, group)
        subnet = await create_once(
            p, "create subnet", lambda: net.create_subnet(**attrs), find_subnet
        )
        made["subnet"] = str(subnet.id)
    router = await find_router()
    if router is None:
        attrs = await neutron_attrs(
            p, owner, name=name, external_gateway_info={"network_id": external_id}
        )
        router = await create_once(
            p, "create router", lambda: net.create_router(**attrs), find_router
        )
        made["router"] = str(router.id)
    attached = await p.read(
        lambda: list(net.ports(device_id=router.id, network_id=network.id)), "find router port"
    )
    if not attached:
        try:
            await p.run(
                lambda: net.add_interface_to_router(router, subnet_id=subnet.id),
                "attach router",
                raw=True,
            )
        except Exception as err:
            if status_of(err) not in (400, 409) or "already" not in str(err).lower():
                raise translate(err, "attach the router to the subnet", p.spec) from err
    ids = {"network_id": str(network.id), "subnet_id": str(subnet.id), "router_id": str(router.id)}
    return ids, made


async def delete_router(p: Provider, router_id: str) -> None:
    from openstack import exceptions as os_exc

    net = p.conn.network
    ports = await p.read(lambda: list(net.ports(device_id=router_id)), "list router ports")
    for port in ports:
        if port.device_owner != "network:router_interface":
            continue
        subnet_ids = [ip["subnet_id"] for ip in port.fixed_ips or []]
        for subnet_id in subnet_ids:
            try:
                await p.run(
                    partial(net.remove_interface_from_router, router_id, subnet_id=subnet_id),
                    "detach router",
                    raw=True,
                )
            except os_exc.NotFoundException:
                pass
            except Exception as err:
                if status_of(err) != 404:
                    raise translate(err, "detach router", p.spec) from err
    await p.run(lambda: net.delete_router(router_id, ignore_missing=True), "delete router")


async def delete_network(p: Provider, network_id: str) -> None:
    net = p.conn.network
    # Subnets go with their network; DHCP ports too.
    await p.run(lambda: net.delete_network(network_id, ignore_missing=True), "delete network")


# -- server group -------------------------------------------------------------------


def server_group_name(owner: Owner, group: str) -> str:
    return owned_name(owner, group, "-managers")


async def server_groups_named(p: Provider, name: str) -> list[Any]:
    compute = p.conn.compute
    return await p.read(
        lambda: [g for g in compute.server_groups() if g.name == name], "list server groups"
    )


async def ensure_server_group(
    p: Provider, owner: Owner, group: str, policy: str
) -> tuple[str, bool]:
    """The managers' server group, and whether this call made it."""
    compute = p.conn.compute
    name = server_group_name(owner, group)

    async def find_group() -> Any:
        found = await server_groups_named(p, name)
        return found[0] if found else None

    group_ = await find_group()
    made = group_ is None
    if group_ is None:
        group_ = await create_once(
            p,
            "create server group",
            lambda: compute.create_server_group(name=name, policies=[policy]),
            find_group,
        )
    return str(group_.id), made


async def delete_server_group(p: Provider, group_id: str) -> None:
    compute = p.conn.compute
    await p.run(
        partial(compute.delete_server_group, group_id, ignore_missing=True), "delete server group"
    )
