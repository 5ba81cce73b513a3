"""devcloud end to end: real Keystone, Glance, Placement, Nova (fake compute), Neutron.

Each check goes through openstacksdk and is confirmed with python-openstackclient
(an independent client, run as a subprocess).
"""

from __future__ import annotations

import ipaddress
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fixtures.devcloud import DevCloud, flotte
from flotte.devcloud import procs

pytestmark = pytest.mark.slow


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def demo(devcloud: DevCloud) -> Iterator[Any]:
    conn = devcloud.connect(devcloud.demo_cloud)
    yield conn
    conn.close()


def _boot(conn: Any, devcloud: DevCloud, name: str, network_id: str, **extra: Any) -> Any:
    image = conn.image.find_image(devcloud.image, ignore_missing=False)
    server = conn.compute.create_server(
        name=name,
        image_id=image.id,
        flavor_id=devcloud.flavor_id,
        networks=[{"uuid": network_id}],
        **extra,
    )
    return conn.compute.wait_for_server(server, wait=120)


def test_catalog_lists_every_service(devcloud: DevCloud) -> None:
    services = {row["Type"] for row in devcloud.openstack("catalog", "list")}
    assert {"identity", "image", "placement", "compute", "network"} <= services
    conn = devcloud.connect(devcloud.admin_cloud)
    # One fake compute host (with `up --ironic`, bare-metal nodes and their host too).
    hypervisors = [h for h in conn.compute.hypervisors(details=True) if h.name == "devcloud"]
    assert len(hypervisors) == 1
    binaries = {(s.binary, s.state) for s in conn.compute.services() if s.host == "devcloud"}
    assert binaries == {("nova-conductor", "up"), ("nova-scheduler", "up"), ("nova-compute", "up")}


def test_seeded_flavors_image_networks(devcloud: DevCloud, demo: Any) -> None:
    flavors = {f.id: f for f in demo.compute.flavors()}
    assert {fid: flavors[fid].name for fid in ("1", "2", "3", "4")} == {
        "1": "m1.tiny",
        "2": "m1.small",
        "3": "m1.medium",
        "4": "m1.large",
    }
    bm = devcloud.openstack("flavor", "show", devcloud.bm_flavor, cloud=devcloud.admin_cloud)
    # An Ironic flavor while bare metal is on (`up --ironic`), else marked for what it is.
    specs = bm["properties"]
    assert specs.get("baremetal") == "true" or specs.get("resources:CUSTOM_BAREMETAL") == "1"

    image = devcloud.openstack("image", "show", devcloud.image)
    assert image["status"] == "active"
    assert image["visibility"] == "public"
    assert image["properties"]["os_admin_user"] == devcloud.ssh_user

    ext = devcloud.openstack("network", "show", devcloud.floating_pool)
    assert ext["router:external"] is True
    net = demo.network.find_network(devcloud.network, ignore_missing=False)
    assert net.project_id == demo.current_project_id
    pool = demo.network.find_subnet_pool("devcloud-tenant-pool", ignore_missing=False)
    (subnet,) = demo.network.subnets(network_id=net.id)
    assert subnet.subnet_pool_id == pool.id  # projects' subnets never overlap
    # devcloud's own demo project (a second test worker has a project of its own)
    admin = devcloud.connect(devcloud.admin_cloud)
    seeded = admin.identity.find_project("devcloud-demo", domain_id="default")
    own = admin.network.find_network(devcloud.network, project_id=seeded.id)
    assert [s.cidr for s in admin.network.subnets(network_id=own.id)] == ["10.42.1.0/24"]


def test_quotas_hold_30_node_clusters(devcloud: DevCloud) -> None:
    for cloud in (devcloud.demo_cloud, devcloud.alt_cloud):
        project = devcloud.clouds()[cloud]["auth"]["project_name"]
        quota = devcloud.openstack("quota", "show", project, cloud=devcloud.admin_cloud)
        flat = (
            {row["Resource"]: row["Limit"] for row in quota} if isinstance(quota, list) else quota
        )
        assert int(flat["instances"]) >= 60
        assert int(flat["cores"]) >= 240
        assert int(flat["ram"]) >= 60 * 8192
        assert int(flat["floating_ips"]) >= 60
        assert int(flat["ports"]) >= 120
        assert int(flat["security_groups"]) >= 30
        assert int(flat["server-groups"]) >= 20


def test_server_with_keypair_secgroup_floating_ip(devcloud: DevCloud, demo: Any) -> None:
    name = _name("dc")
    kp = demo.compute.create_keypair(name=name)
    sg = demo.network.create_security_group(name=name)
    demo.network.create_security_group_rule(
        security_group_id=sg.id,
        direction="ingress",
        protocol="tcp",
        port_range_min=22,
        port_range_max=22,
        remote_ip_prefix="0.0.0.0/0",
    )
    net = demo.network.find_network(devcloud.network, ignore_missing=False)
    ext = demo.network.find_network(devcloud.floating_pool, ignore_missing=False)
    fip = None
    try:
        started = time.monotonic()
        server = _boot(
            demo,
            devcloud,
            name,
            net.id,
            key_name=kp.name,
            security_groups=[{"name": sg.name}],
            user_data="I2Nsb3VkLWNvbmZpZwo=",
            metadata={"flotte:test": "1"},
        )
        assert server.status == "ACTIVE"
        assert time.monotonic() - started < 60
        listed = {s["Name"]: s for s in devcloud.openstack("server", "list")}
        assert listed[name]["Status"] == "ACTIVE"
        port = next(iter(demo.network.ports(device_id=server.id)))
        assert port.status == "ACTIVE"
        # Bound by devcloud's ML2 driver (binding fields are for admins only).
        admin = devcloud.connect(devcloud.admin_cloud)
        assert admin.network.get_port(port.id).binding_vif_type == "ovs"
        fip = demo.network.create_ip(floating_network_id=ext.id)
        demo.network.update_ip(fip, port_id=port.id)
        shown = devcloud.openstack("floating ip", "show", fip.floating_ip_address)
        assert shown["port_id"] == port.id
        (ext_subnet,) = admin.network.subnets(network_id=ext.id)
        admin.close()
        assert ipaddress.ip_address(fip.floating_ip_address) in ipaddress.ip_network(
            ext_subnet.cidr
        )
    finally:
        if fip is not None:
            demo.network.delete_ip(fip)
        for s in demo.compute.servers(name=name):
            demo.compute.delete_server(s)
            demo.compute.wait_for_delete(s, wait=60)
        demo.network.delete_security_group(sg)
        demo.compute.delete_keypair(kp)
    assert not [s for s in devcloud.openstack("server", "list") if s["Name"] == name]
    assert not list(demo.network.ports(device_id=server.id))


def test_network_subnet_router_floating_ip(devcloud: DevCloud, demo: Any) -> None:
    name = _name("dcnet")
    ext = demo.network.find_network(devcloud.floating_pool, ignore_missing=False)
    net = demo.network.create_network(name=name)
    try:
        # From the shared default pool: never overlaps another project's subnet.
        subnet = demo.network.create_subnet(
            name=name, network_id=net.id, ip_version=4, use_default_subnet_pool=True
        )
        assert subnet.cidr.startswith("10.42.")
        router = demo.network.create_router(name=name, external_gateway_info={"network_id": ext.id})
        demo.network.add_interface_to_router(router, subnet_id=subnet.id)
        fip = demo.network.create_ip(floating_network_id=ext.id)
        assert devcloud.openstack("router", "show", name)["external_gateway_info"]
        demo.network.delete_ip(fip)
        demo.network.remove_interface_from_router(router, subnet_id=subnet.id)
        demo.network.delete_router(router)
    finally:
        demo.network.delete_network(net)
    assert not [n for n in devcloud.openstack("network", "list") if n["Name"] == name]


def test_application_credential_auth(devcloud: DevCloud, demo: Any) -> None:
    import openstack

    name = _name("dcapp")
    cred = demo.identity.create_application_credential(user=demo.current_user_id, name=name)
    try:
        conn = openstack.connect(
            auth_type="v3applicationcredential",
            auth={
                "auth_url": devcloud.auth_url,
                "application_credential_id": cred.id,
                "application_credential_secret": cred.secret,
            },
            region_name="RegionOne",
        )
        assert conn.current_project_id == demo.current_project_id
        assert isinstance(list(conn.compute.servers()), list)
        conn.close()
        # And the same credential through the openstack CLI.
        import subprocess
        import sys
        from pathlib import Path

        env = {k: v for k, v in devcloud.env.items() if not k.startswith("OS_")}
        env.update(
            OS_AUTH_TYPE="v3applicationcredential",
            OS_AUTH_URL=devcloud.auth_url,
            OS_APPLICATION_CREDENTIAL_ID=cred.id,
            OS_APPLICATION_CREDENTIAL_SECRET=cred.secret,
        )
        exe = Path(sys.executable).with_name("openstack")
        res = subprocess.run(
            [str(exe), "flavor", "list", "-f", "json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert "m1.small" in {f["Name"] for f in json.loads(res.stdout)}
    finally:
        demo.identity.delete_application_credential(demo.current_user_id, cred)


def test_projects_do_not_see_each_other(devcloud: DevCloud, demo: Any) -> None:
    alt = devcloud.connect(devcloud.alt_cloud)
    name = _name("dcalt")
    net = alt.network.create_network(name=name)
    try:
        alt.network.create_subnet(
            name=name, network_id=net.id, ip_version=4, use_default_subnet_pool=True
        )
        server = _boot(alt, devcloud, name, net.id)
        assert name in {s.name for s in alt.compute.servers()}
        assert name not in {s.name for s in demo.compute.servers()}
        assert name not in {s["Name"] for s in devcloud.openstack("server", "list")}
        assert devcloud.openstack("server", "show", server.id, check=False) is None
        admin_view = devcloud.openstack(
            "server", "list", "--all-projects", cloud=devcloud.admin_cloud
        )
        assert name in {s["Name"] for s in admin_view}
        alt.compute.delete_server(server)
        alt.compute.wait_for_delete(server, wait=60)
    finally:
        for s in alt.compute.servers(name=name):
            alt.compute.delete_server(s)
            alt.compute.wait_for_delete(s, wait=60)
        alt.network.delete_network(net)
        alt.close()


def test_up_again_is_a_no_op(devcloud: DevCloud) -> None:
    before = json.loads(
        flotte("devcloud", "status", "--dir", str(devcloud.root), "-f", "json").stdout
    )
    started = time.monotonic()
    res = flotte("devcloud", "up", "--dir", str(devcloud.root), "--clouds-yaml", "none")
    assert time.monotonic() - started < 15
    assert "already up" in res.stderr
    after = json.loads(
        flotte("devcloud", "status", "--dir", str(devcloud.root), "-f", "json").stdout
    )
    assert [p["pid"] for p in before["processes"]] == [p["pid"] for p in after["processes"]]


def test_status_reports_processes_and_memory(devcloud: DevCloud) -> None:
    info = json.loads(
        flotte("devcloud", "status", "--dir", str(devcloud.root), "-f", "json").stdout
    )
    assert info["state"] == "up"
    assert info["ready"] is True
    assert all(api["answers"] for api in info["apis"].values())
    names = [p["name"] for p in info["processes"]]
    assert names[0] == "mariadb" and "nova-compute" in names
    assert 300 < info["memory_mib"] < 4000
    table = flotte("devcloud", "status", "--dir", str(devcloud.root)).stdout
    assert "nova-compute" in table and "keystone=ok" in table


def test_services_talk_to_mariadb_through_the_c_driver(devcloud: DevCloud) -> None:
    """devcloud's `up` (as root) installs MariaDB's headers and builds mysqlclient: the
    services' database calls then run in C, not in PyMySQL's Python."""
    info = json.loads(
        flotte("devcloud", "status", "--dir", str(devcloud.root), "-f", "json").stdout
    )
    assert info["db_driver"] == "mysqlclient"
    for name in ("neutron", "nova-api", "nova-conductor"):
        master = next(p["pid"] for p in info["processes"] if p["name"] == name)
        workers = [pid for pid, _ in procs._descendants(master) if procs._stat(pid)[1] == master]
        assert workers, name
        for pid in workers:
            maps = Path(f"/proc/{pid}/maps").read_text()
            assert "libmariadb" in maps and "MySQLdb" in maps, (name, pid)


def test_second_devcloud_refuses_taken_ports(devcloud: DevCloud, tmp_path: Any) -> None:
    # Another directory, same ports: one clear line, nothing installed or started.
    other = tmp_path / "dc2"
    res = flotte("devcloud", "up", "--dir", str(other), "--clouds-yaml", "none", check=False)
    assert res.returncode == 1
    assert (
        res.stderr.strip()
        .splitlines()[-1]
        .startswith("Error: port 5000 is in use by another process")
    )
    assert not (other / "venv").exists()
