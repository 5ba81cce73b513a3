"""Which node groups are one site, and whether a site's nodes will be reachable from
the others, from the drivers' options alone (issue 15): nothing is asked of a cloud."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flotte.drivers.base import Driver, DriverContext
from flotte.drivers.ec2 import EC2Driver
from flotte.drivers.local import LocalDriver
from flotte.drivers.openstack import OpenStackDriver
from flotte.drivers.ssh import SSHDriver
from flotte.errors import PlanError
from flotte.mesh import topology
from flotte.pki import CertificateAuthority


def make(cls: type[Driver], tmp_path: Path, **options: Any) -> Driver:
    ctx = DriverContext(
        home=tmp_path / "home",
        ca=CertificateAuthority(tmp_path / "ca"),
        installation="inst",
        options=options,
    )
    return cls(ctx)


def test_openstack_site_is_cloud_and_network(tmp_path: Path) -> None:
    def site(**options: Any) -> str:
        base = {"openstack_cloud": "lab", "openstack_net_name": "n1"}
        return make(OpenStackDriver, tmp_path, **{**base, **options}).site()

    lab = site()
    assert site(openstack_flavor_name="m1.large") == lab  # another flavor: same network
    others = {
        site(openstack_net_name="n2"),
        site(openstack_cloud="partner"),
        site(openstack_region="RegionTwo"),
        site(openstack_auth_url="https://192.0.2.10:5000/v3"),
    }
    assert len(others) == 4 and lab not in others


def test_ssh_hosts_are_one_site_unless_named_apart(tmp_path: Path) -> None:
    a = make(SSHDriver, tmp_path, ssh_user="ops")
    b = make(SSHDriver, tmp_path, ssh_user="deploy")
    room = make(SSHDriver, tmp_path, ssh_site="room-b")
    assert a.site() == b.site() != room.site()
    assert a.site() != make(LocalDriver, tmp_path).site()


def test_public_addresses_known_before_anything_is_made(tmp_path: Path) -> None:
    assert make(OpenStackDriver, tmp_path, openstack_floatingip_pool="ext").will_be_public()
    assert not make(OpenStackDriver, tmp_path, openstack_net_name="n1").will_be_public()
    assert make(SSHDriver, tmp_path).will_be_public()  # the hosts' own addresses


def test_sites_that_cannot_reach_each_other_are_one_line() -> None:
    topology.check_sites({"openstack:lab": False, "ssh:": True})  # the lab dials out
    topology.check_sites({"openstack:lab": False})
    with pytest.raises(PlanError) as err:
        topology.check_sites({"openstack:lab": False, "openstack:partner": False, "ssh:": True})
    assert "openstack:lab and openstack:partner cannot reach each other" in str(err.value)
    assert "\n" not in str(err.value)


def test_ec2_site_is_cloud_region_and_vpc(tmp_path: Path) -> None:
    def site(**options: Any) -> str:
        return make(EC2Driver, tmp_path, **{"ec2_region": "eu-west-3", **options}).site()

    paris = site()
    assert site(ec2_instance_type="t3.large") == paris
    others = {
        site(ec2_region="eu-central-1"),
        site(ec2_vpc_id="vpc-0abc"),
        site(ec2_cloud="outscale"),
    }
    assert len(others) == 3 and paris not in others
    assert make(EC2Driver, tmp_path).will_be_public()
    assert not make(EC2Driver, tmp_path, ec2_private_address_only=True).will_be_public()


def test_local_nodes_are_reached_only_through_a_public_network(tmp_path: Path) -> None:
    assert not make(LocalDriver, tmp_path).will_be_public()
    assert make(LocalDriver, tmp_path, local_public_network="pub").will_be_public()
