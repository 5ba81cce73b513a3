"""The mesh port in an EC2 security group (issue 15), on a real moto server over HTTP.

``sync_mesh_ingress`` opens UDP 51820 to exactly the addresses the mesh asks for and
revokes those of members that left; the group's other rules stay. Checked with an
independent boto3 client (DescribeSecurityGroups).
"""

from __future__ import annotations

from typing import Any

from ec2_helpers import INSTALLATION, nothing_left

from flotte.drivers.base import GroupSpec
from flotte.drivers.ec2 import resources
from flotte.models import NodeRecord, Owner


def mesh_ranges(ec2: Any, group_id: str) -> set[str]:
    perms = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
    return {
        r["CidrIp"]
        for p in perms["IpPermissions"]
        if p["IpProtocol"] == "udp" and p.get("FromPort") == 51820
        for r in p.get("IpRanges", [])
    }


def other_rules(ec2: Any, group_id: str) -> list[Any]:
    perms = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
    return sorted(
        (p["IpProtocol"], p.get("FromPort"), str(p.get("IpRanges")), len(p["UserIdGroupPairs"]))
        for p in perms["IpPermissions"]
        if p.get("FromPort") != 51820
    )


async def test_mesh_ingress_follows_members(make_driver: Any, ec2: Any) -> None:
    driver = make_driver()
    owner = Owner(cluster="meshsg", installation=INSTALLATION)
    group = GroupSpec(name="meshsg", owner=owner, roles=("cluster", "manager", "worker"))
    shared = await driver.prepare(group)
    sg = shared["security_group_id"]
    api = driver.conn.api_for(shared)
    before = other_rules(ec2, sg)
    assert mesh_ranges(ec2, sg) == set()
    try:
        await resources.sync_mesh_ingress(api, sg, ["198.51.100.7/32", "203.0.113.9/32"], 51820)
        assert mesh_ranges(ec2, sg) == {"198.51.100.7/32", "203.0.113.9/32"}
        await resources.sync_mesh_ingress(api, sg, ["203.0.113.9/32", "198.51.100.7/32"], 51820)
        assert mesh_ranges(ec2, sg) == {"198.51.100.7/32", "203.0.113.9/32"}
        await resources.sync_mesh_ingress(api, sg, ["203.0.113.9/32", "192.0.2.4/32"], 51820)
        assert mesh_ranges(ec2, sg) == {"203.0.113.9/32", "192.0.2.4/32"}
        await resources.sync_mesh_ingress(api, sg, [], 51820)
        assert mesh_ranges(ec2, sg) == set()
        assert other_rules(ec2, sg) == before  # SSH, Docker and Swarm's member rules
    finally:
        await driver.release(group, shared)
    assert nothing_left(ec2)


async def test_the_driver_opens_the_mesh_port_in_its_nodes_group(
    make_driver: Any, ec2: Any
) -> None:
    driver = make_driver()
    owner = Owner(cluster="meshdrv", installation=INSTALLATION)
    group = GroupSpec(name="meshdrv", owner=owner, roles=("cluster", "manager", "worker"))
    shared = await driver.prepare(group)
    sg = shared["security_group_id"]
    # a node as the driver records it: where it was made (region, endpoint) and its group
    node = NodeRecord(name="meshdrv-node-0", driver="ec2", data=dict(shared))
    try:
        await driver.open_mesh([node], ["198.51.100.7/32"], 51820)
        assert mesh_ranges(ec2, sg) == {"198.51.100.7/32"}
        await driver.open_mesh([node], [], 51820)
        assert mesh_ranges(ec2, sg) == set()
    finally:
        await driver.release(group, shared)
    assert nothing_left(ec2)
