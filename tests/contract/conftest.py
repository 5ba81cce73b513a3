"""The contract suite's rigs: every driver against its real peer, counted independently.

``rig`` is parametrised over the drivers: local (the real dockerd), ssh (sshd test
hosts), openstack (devcloud's fake compute: servers never boot, the suite stays at the
``--no-provision`` level), ec2 (a moto server) and fake (the file-backed cloud of
``flotte.drivers.fake``, when this checkout has it).
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # rigs, child

from rigs import EC2Rig, FakeRig, LocalRig, OpenStackRig, Rig, SSHRig

from fixtures.devcloud import devcloud  # noqa: F401 - the session fixture, used by name

HAVE_FAKE = importlib.util.find_spec("flotte.drivers.fake") is not None

DRIVERS = [
    pytest.param("local", marks=pytest.mark.docker),
    pytest.param("ssh", marks=pytest.mark.docker),
    pytest.param("openstack"),
    pytest.param("ec2"),
    # The lead's in-memory/file-backed driver: runs as soon as flotte.drivers.fake exists.
    pytest.param(
        "fake",
        marks=pytest.mark.skipif(not HAVE_FAKE, reason="flotte.drivers.fake is not here yet"),
    ),
]


def _local(request: pytest.FixtureRequest, home: Path) -> Rig:
    client = request.getfixturevalue("docker_engine")
    image = request.getfixturevalue("node_image")
    # A second name for the node image: node group "b" runs "another image".
    other = "flotte-contract:b"
    client.images.get(image).tag(other)
    return LocalRig(
        kind="local",
        home=home,
        options={},
        variants={"a": {"local_image": image}, "b": {"local_image": other}},
        shared=Counter({"network": 1}),
        per_node=Counter({"container": 1, "volume": 1}),
        engines=True,
        client=client,
        bad=({"local_privileged": "sometimes"}, "--local-privileged"),
    )


def _ssh(request: pytest.FixtureRequest, home: Path) -> Rig:
    lab = request.getfixturevalue("ssh_lab")
    start = request.getfixturevalue("ssh_host")
    return SSHRig(
        kind="ssh",
        home=home,
        options={"ssh_key": str(lab.key)},
        variants={"a": {}, "b": {}},  # each node group has its own hosts
        shared=Counter(),
        per_node=Counter({"host": 1}),
        provision=True,
        engines=True,
        start_host=lambda: start("docker"),
        bad=({"ssh_port": "0"}, "--ssh-port"),
    )


def _openstack(request: pytest.FixtureRequest, home: Path) -> Rig:
    cloud = request.getfixturevalue("devcloud")
    conn = cloud.connect(cloud.demo_cloud)
    image = conn.image.find_image(cloud.image, ignore_missing=False)
    flavors = {str(f.id): str(f.name) for f in conn.compute.flavors()}
    return OpenStackRig(
        kind="openstack",
        home=home,
        options={
            "openstack_cloud": cloud.demo_cloud,
            "openstack_image_id": str(image.id),
            "openstack_flavor_id": "1",
            "openstack_net_name": cloud.network,
            "openstack_floatingip_pool": cloud.floating_pool,
        },
        variants={"a": {"openstack_flavor_id": "1"}, "b": {"openstack_flavor_id": "2"}},
        shared=Counter({"security group": 1, "key pair": 1}),
        per_node=Counter({"server": 1, "port": 1, "floating ip": 1}),
        conn=conn,
        flavors=flavors,
        bad=({"openstack_flavor_id": "no-such-flavor"}, "flavor"),
        env={"OS_CLIENT_CONFIG_FILE": str(cloud.clouds_yaml)},
    )


def _ec2(request: pytest.FixtureRequest, home: Path) -> Rig:
    import boto3

    endpoint = request.getfixturevalue("moto_endpoint")
    creds = request.getfixturevalue("fake_aws_credentials")
    return EC2Rig(
        kind="ec2",
        home=home,
        options={
            "ec2_endpoint_url": endpoint,
            "ec2_region": "us-east-1",
            "ec2_ami": "ami-785db401",  # in moto's own catalogue
            "ec2_allowed_cidr": ["203.0.113.7/32"],
        },
        variants={"a": {"ec2_instance_type": "t3.micro"}, "b": {"ec2_instance_type": "t3.small"}},
        shared=Counter({"security group": 1, "key pair": 1}),
        per_node=Counter({"instance": 1, "volume": 1}),
        client=boto3.client("ec2", region_name="us-east-1", endpoint_url=endpoint),
        bad=({"ec2_ami": "ami-00000000"}, "ami-00000000"),
        env={**creds, "FLOTTE_EC2_POLL": "0.05"},
    )


def _fake(request: pytest.FixtureRequest, home: Path) -> Rig:
    return FakeRig(
        kind="fake",
        home=home,
        options={"fake_dir": str(home / "cloud")},
        variants={"a": {"fake_flavor": "f.small"}, "b": {"fake_flavor": "f.large"}},
        shared=Counter({"network": 1}),
        per_node=Counter({"node": 1}),
        engines=True,
        bad=({"fake_flavor": "nope"}, "flavor 'nope'"),
    )


BUILDERS = {"local": _local, "ssh": _ssh, "openstack": _openstack, "ec2": _ec2, "fake": _fake}


@pytest.fixture(params=DRIVERS)
def rig(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Rig]:
    the_rig = BUILDERS[request.param](request, tmp_path)
    for key, value in the_rig.env.items():
        monkeypatch.setenv(key, value)
    yield the_rig
    # Whatever a failing test left, swept by the installation's marks: the safety net.
    leftovers: Any = None
    try:
        from flotte.models import Owner

        asyncio.run(the_rig.driver().sweep(Owner(installation=the_rig.installation)))
    except Exception as err:  # report, and let the test's own failure show first
        leftovers = err
    if leftovers is not None:
        print(f"sweep after the test failed: {leftovers}")
