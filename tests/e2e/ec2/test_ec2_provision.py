"""The EC2 driver's provision step, through the same SSH provisioner as the ssh driver.

moto's instances are not machines, so the node record made through moto is pointed at a
real sshd test host (a Debian container with Docker) that holds the key pair flotte
imported: what runs is EC2Driver.provision, unchanged.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from ec2_helpers import INSTALLATION, nothing_left

import fixtures.sshd_hosts as _sshd
from flotte import dockerapi
from flotte.drivers.base import GroupSpec
from flotte.models import EngineOptions, NodeSpec, Owner, Role

ssh_lab = _sshd.ssh_lab
ssh_host = _sshd.ssh_host

pytestmark = pytest.mark.docker


async def test_ec2_node_becomes_a_tls_docker_host(
    make_driver: Any, ec2: Any, ssh_lab: Any, ssh_host: Any, tmp_path: Path
) -> None:
    host = ssh_host("docker")
    driver = make_driver(ec2_ssh_keypath=str(ssh_lab.key), ec2_ssh_user="root")
    driver.ctx.ca.ensure()
    driver.ctx.known_hosts = tmp_path / "known_hosts"
    owner = Owner(machine="prov", installation=INSTALLATION)
    group = GroupSpec(name="prov", owner=owner)
    spec = NodeSpec("prov", Role.MACHINE, owner, "ec2")
    shared = await driver.prepare(group)
    node = await driver.create(spec, shared)
    assert node.data["ssh_user"] == "root"
    assert node.data["key_path"] == str(ssh_lab.key)

    node = dataclasses.replace(node, addresses=[host.ip])
    endpoint = await driver.provision(spec, node, EngineOptions(labels=("from=ec2",)))
    assert endpoint.host == host.ip
    with dockerapi.connected(endpoint, driver.ctx.ca) as client:
        assert "from=ec2" in client.info()["Labels"]

    await driver.remove(node)
    await driver.release(group, shared)
    assert nothing_left(ec2)
    assert Path(ssh_lab.key).exists()  # the user's key stays
