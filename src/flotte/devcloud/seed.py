"""Fill a fresh devcloud through the OpenStack APIs, and write its clouds.yaml entries.

Every step finds before it creates, so seeding again (each ``up`` that found
something stopped) converges instead of duplicating. The catalog (service users,
endpoints) is seeded first: the other APIs need it to validate tokens.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from flotte.config import write_secret
from flotte.devcloud import render
from flotte.devcloud.layout import (
    CATALOG,
    CLOUD_ADMIN,
    CLOUD_ALT,
    CLOUD_DEMO,
    REGION,
)
from flotte.errors import ConfigError

SERVICE_USERS = ("glance", "placement", "nova", "neutron")
DEMO_PROJECT = "devcloud-demo"
ALT_PROJECT = "devcloud-alt"


@dataclass(frozen=True)
class Flavor:
    id: str
    name: str
    vcpus: int
    ram: int  # MiB
    disk: int  # GiB
    extra_specs: dict[str, str] = field(default_factory=dict)


# IDs 1-4 are the classic OpenStack defaults, so the talk's `--openstack-flavor-id 2`
# means m1.small here too. bm.small stands for an Ironic flavor: `--server-type bm`
# looks for the `baremetal=true` extra spec (Ironic flavors carry
# `resources:CUSTOM_*`, which fake compute could not schedule).
FLAVORS = (
    Flavor("1", "m1.tiny", 1, 512, 1),
    Flavor("2", "m1.small", 1, 2048, 20),
    Flavor("3", "m1.medium", 2, 4096, 40),
    Flavor("4", "m1.large", 4, 8192, 80),
    Flavor(
        "bm1",
        "bm.small",
        8,
        16384,
        200,
        {"baremetal": "true"},
    ),
)

IMAGE_NAME = "debian-12"
IMAGE_PROPERTIES = {
    "os_distro": "debian",
    "os_version": "12",
    "os_admin_user": "debian",
    "hw_architecture": "x86_64",
}

EXT_NET = "ext-net"
# Outside Docker's default address pools (172.17-31.0.0/16, 192.168.0.0/16), which
# devstack's 172.24.4.0/24 is in: Docker gave a network of its own 172.24.0.0/16 while
# devcloud-ext was down, and the floating IPs' bridge could not be made (CI, 2026-12-03).
# 198.18.0.0/15 is set aside for benchmarking networks (RFC 2544): no lab routes it.
EXT_POOL_CIDR = "198.18.4.0/24"
TENANT_POOL_CIDR = "10.42.0.0/16"
DEMO_NET = "formation-net"
DEMO_CIDR = "10.42.1.0/24"

# Room for 30-node clusters, several at once, per project.
COMPUTE_QUOTAS = {
    "instances": 200,
    "cores": 800,
    "ram": 1638400,
    "key_pairs": 200,
    "server_groups": 100,
    "server_group_members": 200,
    "metadata_items": 128,
}
NETWORK_QUOTAS = {
    "networks": 100,
    "subnets": 100,
    "ports": 1000,
    "routers": 50,
    "floating_ips": 200,
    "security_groups": 200,
    "security_group_rules": 2000,
}


def auth(pw: dict[str, str], user: str, project: str, password_key: str) -> dict[str, str]:
    return {
        "auth_url": render.url("keystone") + "/v3",
        "username": user,
        "password": pw[password_key],
        "project_name": project,
        "user_domain_name": "Default",
        "project_domain_name": "Default",
    }


def clouds(pw: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The clouds.yaml entries: admin, a non-admin demo project, and a second one."""

    def entry(user: str, project: str, key: str) -> dict[str, Any]:
        return {
            "auth": auth(pw, user, project, key),
            "region_name": REGION,
            "interface": "public",
            "identity_api_version": 3,
        }

    return {
        CLOUD_ADMIN: entry("admin", "admin", "admin"),
        CLOUD_DEMO: entry(DEMO_PROJECT, DEMO_PROJECT, "demo"),
        CLOUD_ALT: entry(ALT_PROJECT, ALT_PROJECT, "alt"),
    }


def connect(pw: dict[str, str]) -> Any:
    """An admin openstacksdk Connection (with no cloud name it reads no clouds.yaml, no OS_*)."""
    from openstack.connection import Connection

    return Connection(
        auth=auth(pw, "admin", "admin", "admin"),
        auth_type="password",
        region_name=REGION,
        interface="public",
        identity_api_version="3",
    )


def seed_identity(conn: Any, pw: dict[str, str]) -> None:
    ident = conn.identity
    default = "default"
    roles = {}
    for role in ("admin", "member", "reader", "service"):
        roles[role] = ident.find_role(role) or ident.create_role(name=role)
    service_project = ident.find_project("service", domain_id=default) or ident.create_project(
        name="service", domain_id=default, description="OpenStack service users"
    )
    for name in SERVICE_USERS:
        ensure_service_user(conn, pw, name, service_project, roles, reset_password=True)
    for project_name, key in ((DEMO_PROJECT, "demo"), (ALT_PROJECT, "alt")):
        project = ident.find_project(project_name, domain_id=default) or ident.create_project(
            name=project_name, domain_id=default, description="devcloud non-admin project"
        )
        user = ident.find_user(project_name, domain_id=default)
        if user is None:
            user = ident.create_user(
                name=project_name,
                password=pw[key],
                domain_id=default,
                default_project_id=project.id,
            )
        else:
            ident.update_user(user, password=pw[key])
        ident.assign_project_role_to_user(project, user, roles["member"])
    for name, (stype, suffix) in CATALOG.items():
        ensure_endpoints(conn, name, stype, render.url(name) + suffix)
    # Last: it revokes the admin token this connection holds (keystoneauth fetches a
    # new one on the 401), and a password set again is hashed at today's cost.
    admin = ident.find_user("admin", domain_id=default)
    if admin is not None:
        ident.update_user(admin, password=pw["admin"])


def ensure_service_user(
    conn: Any,
    pw: dict[str, str],
    name: str,
    service_project: Any = None,
    roles: dict[str, Any] | None = None,
    reset_password: bool = False,
) -> None:
    """A service user with the ``admin`` and ``service`` roles in project ``service``.

    ``reset_password`` sets the password of an existing user too; Keystone then
    revokes that user's tokens, which a running service notices only as a 401.
    """
    ident = conn.identity
    if service_project is None:
        service_project = ident.find_project("service", domain_id="default", ignore_missing=False)
    if roles is None:
        roles = {r: ident.find_role(r, ignore_missing=False) for r in ("admin", "service")}
    user = ident.find_user(name, domain_id="default")
    if user is None:
        user = ident.create_user(name=name, password=pw["service"], domain_id="default")
    elif reset_password:
        ident.update_user(user, password=pw["service"])
    for role in ("admin", "service"):
        ident.assign_project_role_to_user(service_project, user, roles[role])


def ensure_endpoints(conn: Any, name: str, service_type: str, url: str) -> None:
    """A catalog service with its public, internal and admin endpoints at ``url``."""
    ident = conn.identity
    svc = ident.find_service(name) or ident.create_service(name=name, type=service_type)
    existing = {e.interface for e in ident.endpoints(service_id=svc.id)}
    for interface in ("public", "internal", "admin"):
        if interface not in existing:
            ident.create_endpoint(service_id=svc.id, interface=interface, url=url, region_id=REGION)


def seed_flavors(conn: Any) -> None:
    for f in FLAVORS:
        flavor = conn.compute.find_flavor(f.id, ignore_missing=True)
        if flavor is None:
            flavor = conn.compute.create_flavor(
                id=f.id, name=f.name, vcpus=f.vcpus, ram=f.ram, disk=f.disk, is_public=True
            )
        if f.extra_specs:
            conn.compute.create_flavor_extra_specs(flavor, f.extra_specs)


def seed_image(conn: Any) -> None:
    if conn.image.find_image(IMAGE_NAME, ignore_missing=True) is not None:
        return
    # Fake compute never reads the disk; a few bytes make a valid active image.
    conn.image.create_image(
        name=IMAGE_NAME,
        data=b"devcloud placeholder disk\n",
        disk_format="raw",
        container_format="bare",
        visibility="public",
        wait=True,
        timeout=60,
        **IMAGE_PROPERTIES,
    )


def _pool(conn: Any, name: str, cidr: str, project_id: str, **extra: Any) -> Any:
    pool = conn.network.find_subnet_pool(name, ignore_missing=True)
    if pool is None:
        pool = conn.network.create_subnet_pool(
            name=name, prefixes=[cidr], default_prefix_length=24, project_id=project_id, **extra
        )
    return pool


def seed_networks(conn: Any) -> None:
    net = conn.network
    admin_project = conn.identity.find_project("admin", domain_id="default")
    demo = conn.identity.find_project(DEMO_PROJECT, domain_id="default")
    ext = net.find_network(EXT_NET, ignore_missing=True)
    if ext is None:
        ext = net.create_network(
            name=EXT_NET,
            is_router_external=True,
            provider_network_type="flat",
            provider_physical_network="external",
            project_id=admin_project.id,
        )
    ext_pool = _pool(conn, "ext-pool", EXT_POOL_CIDR, admin_project.id)
    if not list(net.subnets(network_id=ext.id)):
        net.create_subnet(
            name="ext-subnet",
            network_id=ext.id,
            ip_version=4,
            subnet_pool_id=ext_pool.id,
            prefix_length=24,
            is_dhcp_enabled=False,
            project_id=admin_project.id,
        )
    # Shared default pool: projects' own subnets never overlap, which Docker-backed
    # compute (networks realised as Docker bridges on one host) will rely on.
    tenant_pool = _pool(
        conn,
        "devcloud-tenant-pool",
        TENANT_POOL_CIDR,
        admin_project.id,
        is_shared=True,
        is_default=True,
    )
    ensure_project_network(conn, demo.id, ext.id, tenant_pool.id, DEMO_CIDR)


def ensure_project_network(
    conn: Any, project_id: str, ext_id: str, pool_id: str, cidr: str | None = None
) -> None:
    """``formation-net`` in a project: a subnet of the tenant pool (``cidr``, or the pool's
    next /24) and ``formation-router`` out to ``ext-net``. Found before made."""
    net = conn.network
    network = net.find_network(DEMO_NET, project_id=project_id, ignore_missing=True)
    if network is None:
        network = net.create_network(name=DEMO_NET, project_id=project_id)
    subnets = list(net.subnets(network_id=network.id))
    if not subnets:
        subnets = [
            net.create_subnet(
                name="formation-subnet",
                network_id=network.id,
                ip_version=4,
                subnet_pool_id=pool_id,
                project_id=project_id,
                **({"cidr": cidr} if cidr else {"prefix_length": 24}),
            )
        ]
    router = net.find_router("formation-router", project_id=project_id, ignore_missing=True)
    if router is None:
        router = net.create_router(
            name="formation-router",
            project_id=project_id,
            external_gateway_info={"network_id": ext_id},
        )
        net.add_interface_to_router(router, subnet_id=subnets[0].id)


def seed_quotas(conn: Any) -> None:
    for name in ("admin", DEMO_PROJECT, ALT_PROJECT):
        set_project_quotas(conn, conn.identity.find_project(name, domain_id="default").id)


def set_project_quotas(conn: Any, project_id: str) -> None:
    """devcloud's quotas (room for 30-node clusters, several at once) on one project."""
    conn.set_compute_quotas(project_id, **COMPUTE_QUOTAS)
    conn.set_network_quotas(
        project_id,
        network=NETWORK_QUOTAS["networks"],
        subnet=NETWORK_QUOTAS["subnets"],
        port=NETWORK_QUOTAS["ports"],
        router=NETWORK_QUOTAS["routers"],
        floatingip=NETWORK_QUOTAS["floating_ips"],
        security_group=NETWORK_QUOTAS["security_groups"],
        security_group_rule=NETWORK_QUOTAS["security_group_rules"],
    )


@contextmanager
def _locked_yaml(path: Path) -> Iterator[dict[str, Any]]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        data = {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is not a clouds.yaml mapping")
    data.setdefault("clouds", {})
    yield data
    write_secret(path, yaml.safe_dump(data, sort_keys=False).encode())


def write_clouds_yaml(path: Path, entries: dict[str, dict[str, Any]]) -> None:
    """Add or replace devcloud's entries in ``path``, keeping every other cloud there."""
    with _locked_yaml(path) as data:
        data["clouds"].update(entries)


def remove_clouds_yaml(path: Path, entries: dict[str, dict[str, Any]]) -> None:
    """Remove devcloud's entries from ``path`` (only those pointing at devcloud)."""
    if not path.exists():
        return
    with _locked_yaml(path) as data:
        for name, entry in entries.items():
            mine = data["clouds"].get(name, {})
            if mine.get("auth", {}).get("auth_url") == entry["auth"]["auth_url"]:
                del data["clouds"][name]
    if path.exists() and not (yaml.safe_load(path.read_text()) or {}).get("clouds"):
        os.unlink(path)
