"""One Docker host on OpenStack, created with the talk's docker-machine flags (--no-provision)."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

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
    cloud.osc("keypair", "create", "--public-key", f"{key}.pub", keypair)
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
        server = cloud.osc("server", "show", record.provider_id)
        assert server["status"] == "ACTIVE"
        assert server["key_name"] == keypair
        assert "m1.small" in str(server["flavor"])
        meta = server["properties"]
        assert meta["flotte:owner"] == installation
        assert meta["flotte:machine"] == "mydockervm"
        assert meta["team"] == "physics"
        assert record.address in str(server["addresses"])

        # Only SSH and the TLS Docker port, from the allowed CIDR; no Swarm ports.
        rules = cloud.osc("security group rule list", shared["security_group_id"])
        ingress = (
            sorted(
                (r["Port Range"], r["IP Range"]) for r in rules if r.get("Direction") == "ingress"
            )
            if rules and "Direction" in rules[0]
            else None
        )
        if ingress is not None:
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
        assert cloud.osc("server", "show", record.provider_id)["status"] == "SHUTOFF"
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
        assert cloud.osc("keypair", "show", keypair)["name"] == keypair
    finally:
        cloud.osc("keypair", "delete", keypair, check=False)


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
    assert cloud.osc("server", "show", record.provider_id)["key_name"] == shared["keypair_name"]
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
    ports = cloud.osc("port", "list", "--server", record.provider_id)
    assert len(ports) == 1
    network = cloud.osc("network", "show", shared["network_id"])
    assert network["name"] == "flotte-ownnet"
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
    try:
        image = cloud.osc("image", "show", image_id)
        assert image["name"] == f"snap-{installation}"
    finally:
        cloud.osc("image", "delete", image_id, check=False)
        assert cloud.osc("image", "list", "--name", f"snap-{installation}") == []
        await driver.remove(record)
        await driver.release(group, shared)
    assert leaked(cloud, before) == {}
