"""Docker-backed devcloud (issue 6): a Nova server becomes a container that really boots.

The ``devcloud_docker`` fixture turns the shared devcloud's Docker mode on for this
module and off again at the end, so later tests see a fake-compute devcloud.
"""

from __future__ import annotations

import base64
import contextlib
import socket
import uuid
from pathlib import Path
from typing import Any

import openstack.exceptions
import pytest

from fixtures import container_exec
from fixtures.devcloud import DevCloud, server_container, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.docker]

USER_DATA = """#cloud-config
write_files:
  - path: /etc/devcloud-test
    content: "written by cloud-init from user data\\n"
runcmd:
  - [sh, -c, "echo runcmd-ran > /root/runcmd"]
"""


def _docker() -> Any:
    docker = pytest.importorskip("docker")
    try:
        client = docker.from_env()
        client.ping()
    except Exception as err:
        pytest.skip(f"no Docker engine: {err}")
    return client


def _ssh_banner(host: str) -> bytes:
    try:
        with socket.create_connection((host, 22), timeout=2) as sock:
            return sock.recv(64)
    except OSError:
        return b""


def test_server_is_a_container_that_runs_cloud_init(devcloud_docker: DevCloud) -> None:
    import asyncssh

    dc = devcloud_docker
    client = _docker()
    conn = dc.connect(dc.demo_cloud)
    key = asyncssh.generate_private_key("ssh-ed25519")
    name = f"dock-{uuid.uuid4().hex[:8]}"
    kp = conn.compute.create_keypair(name=name, public_key=key.export_public_key().decode())
    net = conn.network.find_network(dc.network, ignore_missing=False)
    ext = conn.network.find_network(dc.floating_pool, ignore_missing=False)
    image = conn.image.find_image(dc.image, ignore_missing=False)
    sg = conn.network.create_security_group(name=name)

    def allow_ssh() -> Any:
        return conn.network.create_security_group_rule(
            security_group_id=sg.id,
            direction="ingress",
            protocol="tcp",
            port_range_min=22,
            port_range_max=22,
            remote_ip_prefix="0.0.0.0/0",
        )

    ssh_rule = allow_ssh()
    server = conn.compute.create_server(
        name=name,
        image_id=image.id,
        flavor_id=dc.flavor_id,
        networks=[{"uuid": net.id}],
        key_name=kp.name,
        security_groups=[{"name": sg.name}],
        user_data=base64.b64encode(USER_DATA.encode()).decode(),
    )
    fip = None
    try:
        server = conn.compute.wait_for_server(server, wait=120)
        fixed = server.addresses[dc.network][0]["addr"]
        container = wait_for(lambda: server_container(client, server.id), 60, "container")

        def addresses() -> list[str]:
            container.reload()
            networks = container.attrs["NetworkSettings"]["Networks"].values()
            return [str(n["IPAddress"]) for n in networks]

        # Same address on the Docker network as the Neutron port's fixed IP. devcloud's
        # agent mirrors an ACTIVE server: it creates the container, then starts it, and
        # a container not yet started has no address (ci28 found it between the two).
        wait_for(lambda: fixed in addresses(), 60, f"the container at {fixed}")

        port = next(iter(conn.network.ports(device_id=server.id)))
        fip = conn.network.create_ip(floating_network_id=ext.id, port_id=port.id)
        address = fip.floating_ip_address
        assert wait_for(lambda: _ssh_banner(address), 90, "sshd at the floating IP").startswith(
            b"SSH-"
        )

        def booted() -> bool:
            return (
                container.exec_run(
                    ["test", "-e", "/var/lib/cloud/instance/boot-finished"]
                ).exit_code
                == 0
            )

        wait_for(booted, 120, "cloud-init boot-finished")

        async def login() -> str:
            async with asyncssh.connect(
                address, username=dc.ssh_user, client_keys=[key], known_hosts=None
            ) as ssh:
                res = await ssh.run("cat /etc/devcloud-test; sudo cat /root/runcmd", check=True)
                return str(res.stdout)

        import asyncio

        out = asyncio.run(login())
        assert "written by cloud-init from user data" in out
        assert "runcmd-ran" in out

        # Security groups are enforced in the server: no rule for 22, no SSH.
        conn.network.delete_security_group_rule(ssh_rule)
        wait_for(lambda: not _ssh_banner(address), 30, "SSH blocked without a rule")
        allow_ssh()
        wait_for(lambda: _ssh_banner(address), 30, "SSH allowed by the rule again")

        # A snapshot is a Glance image naming a committed container image; a server
        # booted from it starts from the first server's disk.
        snap = conn.compute.create_server_image(server, name=f"{name}-snap", wait=True, timeout=120)
        snap = conn.image.get_image(snap.id)
        assert snap.status == "active"
        assert snap.properties["flotte_container_image"] == f"flotte-devcloud-snap:{snap.id}"
        clone = conn.compute.create_server(
            name=f"{name}-clone",
            image_id=snap.id,
            flavor_id=dc.flavor_id,
            networks=[{"uuid": net.id}],
        )
        clone = conn.compute.wait_for_server(clone, wait=120)
        clone_box = wait_for(lambda: server_container(client, clone.id), 60, "clone container")
        assert clone_box.image.tags == [f"flotte-devcloud-snap:{snap.id}"]
        wait_for(
            lambda: (clone_box.reload(), clone_box.status == "running")[1], 30, "clone running"
        )
        copied = container_exec.read_file(clone_box, "/etc/devcloud-test")
        assert copied is not None and b"written by cloud-init" in copied
        conn.compute.delete_server(clone)
        conn.compute.wait_for_delete(clone, wait=120)
        conn.image.delete_image(snap)

        # Power state follows Nova within seconds.
        conn.compute.stop_server(server)
        conn.compute.wait_for_server(server, status="SHUTOFF", wait=60)
        wait_for(lambda: (container.reload(), container.status != "running")[1], 20, "stopped")
        conn.compute.start_server(server)
        conn.compute.wait_for_server(server, status="ACTIVE", wait=60)
        wait_for(lambda: (container.reload(), container.status == "running")[1], 20, "started")
    finally:
        if fip is not None:
            conn.network.delete_ip(fip)
        conn.compute.delete_server(server)
        conn.compute.wait_for_delete(server, wait=120)
        conn.compute.delete_keypair(kp)
        conn.network.delete_security_group(sg)
    wait_for(lambda: server_container(client, server.id) is None, 30, "container removed")
    conn.close()
    client.close()


def test_talk_command_makes_a_docker_host(devcloud_docker: DevCloud, tmp_path: Any) -> None:
    """`machine create -d openstack` with the talk's flags: a TLS Docker engine at the FIP."""
    import os
    import subprocess
    import sys

    dc = devcloud_docker
    client = _docker()
    name = f"talk-{uuid.uuid4().hex[:6]}"
    key = tmp_path / "securekey"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    demo = dc.connect(dc.demo_cloud)
    demo.compute.create_keypair(name=name, public_key=Path(f"{key}.pub").read_text())
    env = dict(dc.env, FLOTTE_HOME=str(tmp_path / "home"))

    def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)

    flotte_cmd = [sys.executable, "-m", "flotte.cli.main"]
    try:
        made = run(
            *flotte_cmd,
            "machine",
            "create",
            "-d",
            "openstack",
            "--openstack-cloud",
            dc.demo_cloud,
            "--openstack-flavor-id",
            dc.flavor_id,
            "--openstack-net-name",
            dc.network,
            "--openstack-floatingip-pool",
            dc.floating_pool,
            "--openstack-image-name",
            dc.image,
            "--openstack-keypair-name",
            name,
            "--openstack-private-key-file",
            str(key),
            "--openstack-ssh-user",
            dc.ssh_user,
            name,
        )
        assert made.returncode == 0, made.stderr
        info = run(
            "docker", "--context", f"flotte-{name}", "info", "--format", "{{.Name}}", timeout=60
        )
        assert info.returncode == 0, info.stderr
        assert info.stdout.strip() == name
    finally:
        gone = run(*flotte_cmd, "machine", "rm", "-y", name)
        with contextlib.suppress(openstack.exceptions.SDKException):
            demo.compute.delete_keypair(name)
    assert gone.returncode == 0, gone.stderr
    assert name not in {s.name for s in demo.compute.servers()}
    demo.close()
    assert not [
        c
        for c in client.containers.list(ignore_removed=True, all=True)
        if c.labels.get("flotte.devcloud.name") == name
    ]
    assert os.path.exists(key)
    client.close()
