"""The mesh port in an OpenStack security group (issue 15), on devcloud's real Neutron.

The driver opens UDP 51820 to exactly the addresses the mesh asks for, as one
``remote_ip_prefix`` rule each, and closes those of members that left; the group's
other rules stay as they were. Checked with python-openstackclient.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from os_helpers import Cloud, cluster_group

from flotte.drivers.openstack import OpenStackDriver
from flotte.models import NodeRecord


def udp_rules(cloud: Cloud, sg: str) -> dict[str, dict[str, Any]]:
    rules = cloud.osc("security group rule list", sg)
    return {
        str(r["IP Range"]): r
        for r in rules
        if r["IP Protocol"] == "udp" and r["Port Range"] == "51820:51820"
    }


async def test_mesh_rules_follow_members(
    make_driver: Callable[..., OpenStackDriver], cloud: Cloud, installation: str
) -> None:
    driver = make_driver()
    group = cluster_group("meshsg", installation, 2)
    shared = await driver.prepare(group)
    sg = shared["security_group_id"]
    before = [r["ID"] for r in cloud.osc("security group rule list", sg)]
    # what a node of this cluster records (its owner marks, how to connect)
    node = NodeRecord(
        name="meshsg-master-0",
        driver="openstack",
        data={"owner": group.owner.tags(node="meshsg-master-0"), "connect": shared["connect"]},
    )
    try:
        await driver.open_mesh([node], ["198.51.100.7/32", "203.0.113.9/32"], 51820)
        found = udp_rules(cloud, sg)
        assert set(found) == {"198.51.100.7/32", "203.0.113.9/32"}
        assert all(r["Direction"] == "ingress" for r in found.values())
        # the same list again changes nothing; a member gone closes its rule only
        await driver.open_mesh([node], ["198.51.100.7/32", "203.0.113.9/32"], 51820)
        assert udp_rules(cloud, sg).keys() == found.keys()
        await driver.open_mesh([node], ["203.0.113.9/32"], 51820)
        assert set(udp_rules(cloud, sg)) == {"203.0.113.9/32"}
        await driver.open_mesh([node], [], 51820)
        assert udp_rules(cloud, sg) == {}
        assert [r["ID"] for r in cloud.osc("security group rule list", sg)] == before
    finally:
        await driver.release(group, shared)
    assert not [g for g in cloud.osc("security group list") if g["ID"] == sg]
