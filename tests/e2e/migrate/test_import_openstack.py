"""docker-machine's openstack machines taken in: ``rm`` deletes exactly that server.

The cloud is devcloud (real Keystone, Nova, Neutron on 127.0.0.1); two servers are
booted through openstacksdk, docker-machine's store names one. After the import,
``status`` asks Nova, and ``rm`` deletes that server and leaves the other. The password
docker-machine kept in config.json goes to flotte's 0600 secret file only.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from test_import_cli import make_flotte

from fixtures.docker_machine import base_driver, make_tls, write_machine

pytestmark = pytest.mark.docker


def boot(conn: Any, cloud: Any, name: str) -> Any:
    image = conn.image.find_image(cloud.image)
    flavor = conn.compute.find_flavor(cloud.flavor)
    net = conn.network.find_network(cloud.network)
    server = conn.compute.create_server(
        name=name, image_id=image.id, flavor_id=flavor.id, networks=[{"uuid": net.id}]
    )
    return conn.compute.wait_for_server(server, wait=300)


def test_openstack_machine_rm_deletes_exactly_that_server(devcloud: Any, tmp_path: Path) -> None:
    conn = devcloud.connect()
    tag = uuid.uuid4().hex[:6]
    ours, other = boot(conn, devcloud, f"dm-{tag}-a"), boot(conn, devcloud, f"dm-{tag}-b")
    try:
        auth = devcloud.clouds()[devcloud.demo_cloud]["auth"]
        ip = next(a["addr"] for addrs in ours.addresses.values() for a in addrs)
        store = tmp_path / "docker-machine"
        driver = base_driver(
            store, "os-box", ip,
            SSHUser=devcloud.ssh_user, MachineId=ours.id, AuthUrl=auth["auth_url"],
            Username=auth["username"], Password=auth["password"],
            TenantName=auth["project_name"], DomainName=auth["user_domain_name"],
            Region="RegionOne", FlavorName=devcloud.flavor, ImageName=devcloud.image,
            NetworkName=devcloud.network, KeyPairName=f"os-box-{tag}", ActiveTimeout=200,
        )  # fmt: skip
        write_machine(store, "os-box", "openstack", driver, make_tls(ip))
        flotte = make_flotte(tmp_path / "a")
        env = {"OS_CLIENT_CONFIG_FILE": "/dev/null"}  # only what docker-machine recorded

        res = flotte("machine", "import", "--from-docker-machine", "-s", str(store), env=env)
        assert res.stdout.startswith("os-box: imported: openstack -> openstack"), res.stdout
        assert auth["password"].encode() not in (flotte.home / "flotte.db").read_bytes()
        inspect = json.loads(flotte("machine", "inspect", "os-box", env=env).stdout)
        assert inspect["record"]["provider_id"] == ours.id
        assert auth["password"] not in json.dumps(inspect)
        assert flotte("machine", "status", "os-box", env=env).stdout.strip() == "Running"

        flotte("machine", "rm", "-y", "os-box", env=env, timeout=400)
        assert conn.compute.find_server(ours.id) is None
        assert conn.compute.get_server(other.id).status == "ACTIVE"
        assert flotte("machine", "ls", "-q", env=env).stdout == ""
    finally:
        for server in (ours, other):
            conn.compute.delete_server(server.id, ignore_missing=True)
