"""One Docker host on EC2, driver level, against moto over HTTP."""

from __future__ import annotations

import base64
import logging
import stat
from pathlib import Path
from typing import Any

import pytest
from ec2_helpers import AMI_NAME, AMI_OWNER, INSTALLATION, flotte_resources, nothing_left

from flotte.drivers import get
from flotte.drivers.base import GroupSpec
from flotte.drivers.ec2 import EC2Driver
from flotte.drivers.ec2.userdata import READY_MARKER
from flotte.models import NodeSpec, NodeState, Owner, Role


def machine(name: str = "web") -> tuple[GroupSpec, NodeSpec]:
    owner = Owner(machine=name, installation=INSTALLATION)
    return GroupSpec(name=name, owner=owner), NodeSpec(name, Role.MACHINE, owner, "ec2")


def tags(resource: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


def instance(ec2: Any, iid: str) -> dict[str, Any]:
    found: dict[str, Any] = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0][
        "Instances"
    ][0]
    return found


def test_registered_under_its_name() -> None:
    assert get("ec2") is EC2Driver
    keys = {o.key for o in EC2Driver.options}
    assert {"ec2_region", "ec2_ami", "ec2_endpoint_url", "ec2_allowed_cidr"} <= keys
    aliases = {a for o in EC2Driver.options for a in o.aliases}
    assert {"amazonec2-region", "amazonec2-instance-type", "amazonec2-ssh-keypath"} <= aliases
    assert EC2Driver.capabilities.snapshot


async def test_machine_lifecycle_leaves_nothing(make_driver: Any, ec2: Any) -> None:
    driver = make_driver()
    group, spec = machine()
    shared = await driver.prepare(group)
    node = await driver.create(spec, shared)

    inst = instance(ec2, node.provider_id)
    assert inst["State"]["Name"] == "running"
    assert node.address == inst["PublicIpAddress"]
    assert tags(inst)["flotte:owner"] == INSTALLATION
    assert tags(inst)["flotte:machine"] == "web"
    assert tags(inst)["Name"] == "web"
    assert inst["KeyName"] == shared["key_name"]
    volume = ec2.describe_volumes(
        Filters=[{"Name": "attachment.instance-id", "Values": [node.provider_id]}]
    )["Volumes"][0]
    assert tags(volume)["flotte:machine"] == "web"

    # Only SSH and Docker TLS, only from the allowed CIDR: a lone machine has no Swarm ports.
    group_sg = ec2.describe_security_groups(GroupIds=[shared["security_group_id"]])
    perms = group_sg["SecurityGroups"][0]["IpPermissions"]
    assert sorted(p["FromPort"] for p in perms) == [22, 2376]
    assert all(
        p["IpRanges"] == [{"CidrIp": "203.0.113.7/32", "Description": "flotte"}] for p in perms
    )

    # The generated private key is a 0600 file under ctx.home.
    key = Path(shared["key_path"])
    assert key.is_relative_to(driver.ctx.home)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert driver.endpoint(node).ssh_key == str(key)

    assert await driver.state(node) == NodeState.RUNNING
    await driver.stop(node)
    assert await driver.state(node) == NodeState.STOPPED
    node = await driver.start(node)
    assert await driver.state(node) == NodeState.RUNNING
    assert node.address == instance(ec2, node.provider_id)["PublicIpAddress"]
    node = await driver.restart(node)
    await driver.kill(node)
    assert await driver.state(node) == NodeState.STOPPED

    assert any(line.startswith("instance ") for line in await driver.leftovers(group.owner))
    await driver.remove(node)
    await driver.release(group, shared)
    assert nothing_left(ec2)
    assert await driver.leftovers(group.owner) == []
    assert not key.exists()
    assert await driver.state(node) == NodeState.NOT_FOUND
    # Removing again is not an error.
    await driver.remove(node)
    await driver.release(group, shared)


async def test_rm_needs_no_flags_again(make_driver: Any, ec2: Any, tmp_path: Path) -> None:
    """A node record alone is enough to manage the node (the CLI's rm has no --ec2-*)."""
    group, spec = machine("db")
    creator = make_driver()
    shared = await creator.prepare(group)
    node = await creator.create(spec, shared)
    later = make_driver()
    later.ctx.options = {}
    assert await later.state(node) == NodeState.RUNNING
    await later.remove(node)
    await later.release(group, shared)
    assert nothing_left(ec2)


async def test_create_is_idempotent(make_driver: Any, ec2: Any) -> None:
    driver = make_driver()
    group, spec = machine()
    shared = await driver.prepare(group)
    first = await driver.create(spec, shared)
    again = await make_driver().prepare(group)
    assert again == shared  # security group and key pair found, not duplicated
    second = await make_driver().create(spec, again)
    assert second.provider_id == first.provider_id
    found = flotte_resources(ec2)
    assert len(found["instances"]) == 1
    assert len(found["security_groups"]) == 1
    assert len(found["key_pairs"]) == 1
    await driver.sweep(group.owner)
    assert nothing_left(ec2)


async def test_user_data_reaches_the_instance(make_driver: Any, ec2: Any, tmp_path: Path) -> None:
    script = tmp_path / "mine.sh"
    script.write_text("#!/bin/sh\necho hello-from-user > /tmp/hello\n")
    driver = make_driver(ec2_user_data_file=str(script))
    group, spec = machine()
    node = await driver.create(spec, await driver.prepare(group))
    attr = ec2.describe_instance_attribute(InstanceId=node.provider_id, Attribute="userData")
    text = base64.b64decode(attr["UserData"]["Value"]).decode()
    assert "#cloud-config" in text
    assert READY_MARKER in text
    assert f'"flotte:owner": "{INSTALLATION}"' in text
    assert "hello-from-user" in text  # the user's own part, in the same MIME document
    assert "text/x-shellscript" in text
    await driver.sweep(group.owner)


async def test_ami_by_name_filter(make_driver: Any, ec2: Any) -> None:
    driver = make_driver(ec2_ami=AMI_NAME, ec2_ami_owner=AMI_OWNER)
    group, spec = machine()
    node = await driver.create(spec, await driver.prepare(group))
    assert node.data["image_id"] == "ami-785db401"
    await driver.sweep(group.owner)
    assert nothing_left(ec2)


async def test_imported_and_existing_keys(make_driver: Any, ec2: Any, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    mine = tmp_path / "id_mine"
    mine.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    )
    mine.chmod(0o600)
    driver = make_driver(ec2_ssh_keypath=str(mine))
    group, spec = machine()
    shared = await driver.prepare(group)
    assert shared["key_path"] == str(mine) and not shared["key_generated"]
    await driver.create(spec, shared)
    await driver.release(group, shared)
    assert nothing_left(ec2)  # the imported key pair is flotte's: deleted
    assert mine.exists()  # the user's file is not

    ec2.import_key_pair(
        KeyName="team-key",
        PublicKeyMaterial=Path(str(mine) + ".pub").read_bytes()
        if Path(str(mine) + ".pub").exists()
        else _public(mine),
    )
    existing = make_driver(ec2_keypair_name="team-key", ec2_ssh_keypath=str(mine))
    group2, spec2 = machine("api")
    shared2 = await existing.prepare(group2)
    node = await existing.create(spec2, shared2)
    assert instance(ec2, node.provider_id)["KeyName"] == "team-key"
    await existing.release(group2, shared2)
    assert nothing_left(ec2)
    assert [k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]] == ["team-key"]


def _public(private: Path) -> bytes:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_ssh_private_key(private.read_bytes(), password=None)
    return key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )


async def test_elastic_ip_follows_the_node(make_driver: Any, ec2: Any) -> None:
    driver = make_driver(ec2_elastic_ip=True)
    group, spec = machine()
    shared = await driver.prepare(group)
    node = await driver.create(spec, shared)
    address = ec2.describe_addresses()["Addresses"][0]
    assert address["InstanceId"] == node.provider_id
    assert node.address == address["PublicIp"]
    assert tags(address)["flotte:node"] == "web"
    await driver.stop(node)
    node = await driver.start(node)
    assert node.address == address["PublicIp"]  # an Elastic IP survives stop/start
    await driver.remove(node)
    await driver.release(group, shared)
    assert ec2.describe_addresses()["Addresses"] == []
    assert nothing_left(ec2)


async def test_snapshot_makes_an_image_that_sweep_keeps(make_driver: Any, ec2: Any) -> None:
    driver = make_driver()
    group, spec = machine()
    node = await driver.create(spec, await driver.prepare(group))
    image_id = await driver.snapshot(node, "web-backup")
    image = ec2.describe_images(ImageIds=[image_id])["Images"][0]
    assert image["Name"] == "web-backup"
    assert tags(image)["flotte:snapshot-of"] == "web"
    await driver.sweep(group.owner)
    assert nothing_left(ec2)
    assert ec2.describe_images(ImageIds=[image_id])["Images"]  # the user's to keep


async def test_private_key_never_logged(
    make_driver: Any, ec2: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    driver = make_driver()
    group, spec = machine()
    shared = await driver.prepare(group)
    await driver.create(spec, shared)
    secret = Path(shared["key_path"]).read_text().splitlines()[1]
    assert secret not in caplog.text
    assert "PRIVATE KEY" not in caplog.text
    await driver.sweep(group.owner)


async def test_create_adopts_a_stopped_node_as_it_is(make_driver: Any, ec2: Any) -> None:
    driver = make_driver(ec2_active_timeout=5)
    group, spec = machine()
    shared = await driver.prepare(group)
    node = await driver.create(spec, shared)
    await driver.stop(node)
    again = await make_driver(ec2_active_timeout=5).create(spec, shared)
    assert again.provider_id == node.provider_id
    assert await driver.state(again) == NodeState.STOPPED
    await driver.sweep(group.owner)
    assert nothing_left(ec2)


async def test_the_drivers_client_reads_timestamps_as_botocore_does(
    make_driver: Any, ec2: Any
) -> None:
    """flotte's client parses EC2's timestamps with datetime.fromisoformat (botocore's
    dateutil parser cost 0.7 s of CPU per 1,000 described instances): same instants,
    timezone-aware."""
    driver = make_driver()
    group, spec = machine("clock")
    shared = await driver.prepare(group)
    node = await driver.create(spec, shared)
    api = driver.api(driver.conn.target(driver.conn.settings()))
    ours = (await driver.nodes.describe(api, [node.provider_id]))[node.provider_id]
    theirs = instance(ec2, node.provider_id)
    assert ours["LaunchTime"].tzinfo is not None
    assert ours["LaunchTime"] == theirs["LaunchTime"]
    assert (
        ours["BlockDeviceMappings"][0]["Ebs"]["AttachTime"]
        == (theirs["BlockDeviceMappings"][0]["Ebs"]["AttachTime"])
    )
    await driver.remove(node)
    await driver.release(group, shared)
