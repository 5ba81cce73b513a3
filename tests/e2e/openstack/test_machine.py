"""One Docker host on OpenStack, created with the talk's docker-machine flags (--no-provision)."""

from __future__ import annotations

import contextlib
import stat
from pathlib import Path
from typing import Any

import openstack.exceptions
from os_helpers import Cloud, leaked, machine_group, node_specs

from flotte.models import NodeState
from flotte.sshkeys import new_keypair as generate_key


async def test_talk_command_machine_lifecycle(
    cloud: Cloud, make_driver: Any, installation: str, tmp_path: Path
) -> None:
    # `--openstack-keypair-name securekey --openstack-private-key-file ...`: the user's
    # key pair already in the cloud.
    key = tmp_path / "securekey"
    generate_key(key)
    keypair = f"securekey-{installation}"
    compute = cloud.connection().compute
    compute.create_keypair(name=keypair, public_key=Path(f"{key}.pub").read_text())
    before = cloud.inventory()
    try:
        driver = make_driver(
            openstack_keypair_name=keypair,
            openstack_private_key_file=str(key),
            openstack_metadata="team=physics,purpose=formation",
        )
        group = machine_group("mydockervm", installation)
        await driver.check(group)
        shared = await driver.prepare(group)
        (spec,) = node_specs(group)
        record = await driver.create(spec, shared)

        assert cloud.floating(record.address)  # a floating IP from ext-net
        server = cloud.server(record.provider_id)
        assert server.status == "ACTIVE"
        assert server.key_name == keypair
        assert server.flavor["original_name"] == "m1.small"
        meta = server.metadata
        assert meta["flotte:owner"] == installation
        assert meta["flotte:machine"] == "mydockervm"
        assert meta["team"] == "physics"
        assert record.address in str(server.addresses)

        # Only SSH and the TLS Docker port, from the allowed CIDR; no Swarm ports.
        rules = cloud.rules(shared["security_group_id"])
        ingress = sorted((r.port_range, r.ip_range) for r in rules if r.direction == "ingress")
        assert ingress == [("22:22", "0.0.0.0/0"), ("2376:2376", "0.0.0.0/0")]

        endpoint = driver.endpoint(record)
        assert (endpoint.host, endpoint.ssh_user, endpoint.ssh_key) == (
            record.address,
            "centos",
            str(key),
        )
        assert await driver.state(record) == NodeState.RUNNING
        await driver.stop(record)
        assert await driver.state(record) == NodeState.STOPPED
        assert cloud.server(record.provider_id).status == "SHUTOFF"
        await driver.start(record)
        assert await driver.state(record) == NodeState.RUNNING
        await driver.restart(record)
        assert await driver.state(record) == NodeState.RUNNING

        await driver.remove(record)
        await driver.remove(record)  # already gone: not an error
        await driver.release(group, shared)
        assert await driver.state(record) == NodeState.NOT_FOUND
        assert await driver.leftovers(group.owner) == []
        assert leaked(cloud, before) == {}
        # The user's key pair is theirs: flotte did not delete it.
        assert compute.get_keypair(keypair).name == keypair
    finally:
        with contextlib.suppress(openstack.exceptions.SDKException):
            compute.delete_keypair(keypair)


async def test_generated_key_pair_goes_with_the_machine(
    cloud: Cloud, make_driver: Any, installation: str
) -> None:
    before = cloud.inventory()
    driver = make_driver(openstack_ssh_user="debian")
    group = machine_group("genkey", installation)
    await driver.check(group)
    shared = await driver.prepare(group)
    key = Path(shared["private_key"])
    assert key.is_relative_to(driver.ctx.home)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert shared["keypair_created"]
    (spec,) = node_specs(group)
    record = await driver.create(spec, shared)
    # Re-running prepare and create adopts what exists: no second key pair or server.
    again = await driver.prepare(group)
    assert again["keypair_name"] == shared["keypair_name"]
    assert (await driver.create(spec, again)).provider_id == record.provider_id
    assert cloud.server(record.provider_id).key_name == shared["keypair_name"]
    await driver.remove(record)
    await driver.release(group, shared)
    assert not key.exists()
    assert leaked(cloud, before) == {}


async def test_create_network_and_sweep(cloud: Cloud, make_driver: Any, installation: str) -> None:
    before = cloud.inventory()
    driver = make_driver(openstack_net_name=None, openstack_create_network=True)
    group = machine_group("ownnet", installation)
    await driver.check(group)
    shared = await driver.prepare(group)
    assert shared["network_created"] and shared["router_id"] and shared["subnet_id"]
    (spec,) = node_specs(group)
    record = await driver.create(spec, shared)
    conn = cloud.connection()
    assert len(list(conn.network.ports(device_id=record.provider_id))) == 1
    assert conn.network.get_network(shared["network_id"]).name == "flotte-ownnet"
    assert cloud.floating(record.address)
    kinds = {item.split()[0] for item in await driver.leftovers(group.owner)}
    assert {"server", "port", "floating", "router", "network", "security", "key"} <= kinds
    # The crash-recovery path: delete everything the owner has, without any record.
    assert await driver.sweep(group.owner) >= 7
    assert await driver.leftovers(group.owner) == []
    assert leaked(cloud, before) == {}


async def test_snapshot_makes_an_image(cloud: Cloud, make_driver: Any, installation: str) -> None:
    before = cloud.inventory()
    driver = make_driver()
    group = machine_group("snap", installation)
    await driver.check(group)
    shared = await driver.prepare(group)
    (spec,) = node_specs(group)
    record = await driver.create(spec, shared)
    image_id = await driver.snapshot(record, f"snap-{installation}")
    images = cloud.connection().image
    try:
        assert images.get_image(image_id).name == f"snap-{installation}"
    finally:
        with contextlib.suppress(openstack.exceptions.SDKException):
            images.delete_image(image_id)
        assert list(images.images(name=f"snap-{installation}")) == []
        await driver.remove(record)
        await driver.release(group, shared)
    assert leaked(cloud, before) == {}
