"""The mesh port in an OpenStack security group (issue 15), on devcloud's real Neutron.

The driver opens UDP 51820 to exactly the addresses the mesh asks for, as one
``remote_ip_prefix`` rule each, and closes those of members that left; the group's
other rules stay as they were. Checked with openstacksdk (os_helpers.rules).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from os_helpers import Cloud, Rule, cluster_group

from flotte.drivers.openstack import OpenStackDriver
from flotte.models import NodeRecord


def udp_rules(cloud: Cloud, sg: str) -> dict[str, Rule]:
    return {
        str(r.ip_range): r
        for r in cloud.rules(sg)
        if r.protocol == "udp" and r.port_range == "51820:51820"
    }


async def test_mesh_rules_follow_members(
    make_driver: Callable[..., OpenStackDriver], cloud: Cloud, installation: str
) -> None:
    driver = make_driver()
    group = cluster_group("meshsg", installation, 2)
    shared = await driver.prepare(group)
    sg = shared["security_group_id"]
    before = [r.id for r in cloud.rules(sg)]
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
        assert all(r.direction == "ingress" for r in found.values())
        # the same list again changes nothing; a member gone closes its rule only
        await driver.open_mesh([node], ["198.51.100.7/32", "203.0.113.9/32"], 51820)
        assert udp_rules(cloud, sg).keys() == found.keys()
        await driver.open_mesh([node], ["203.0.113.9/32"], 51820)
        assert set(udp_rules(cloud, sg)) == {"203.0.113.9/32"}
        await driver.open_mesh([node], [], 51820)
        assert udp_rules(cloud, sg) == {}
        assert [r.id for r in cloud.rules(sg)] == before
    finally:
        await driver.release(group, shared)
    assert not [g for g in cloud.connection().network.security_groups() if g.id == sg]


def test_sites_that_cannot_reach_each_other_refused_before_anything(
    cloud: Cloud, tmp_path: Path, image_id: str
) -> None:
    """Two groups on two clouds (devcloud's demo and alt projects), neither with a
    floating IP pool: their nodes would have no address the other site reaches. One
    line, non-zero exit, nothing made in either project."""
    import yaml
    from os_helpers import ALT, DEMO, leaked
    from test_os_cli import flotte

    common = {
        "openstack_image_id": image_id,
        "openstack_flavor_id": "2",
        "openstack_net_name": "formation-net",
    }
    spec = {
        "apiVersion": "flotte/v1",
        "kind": "Cluster",
        "name": "walled",
        "driver": "openstack",
        "options": {"openstack_cloud": DEMO, **common},
        "nodegroups": [
            {"name": "default-master", "role": "master", "node_count": 1},
            {"name": "default-worker", "role": "worker", "node_count": 1},
            # the alt project has no network of its own: its servers would sit on
            # ext-net, with no floating IP either
            {"name": "partner", "role": "worker", "node_count": 1,
             "options": {"openstack_cloud": ALT, "openstack_net_name": "ext-net"}},
        ],
    }  # fmt: skip
    path = tmp_path / "walled.yaml"
    path.write_text(yaml.safe_dump(spec))
    env = {"OS_CLIENT_CONFIG_FILE": str(cloud.clouds_yaml)}
    before = {p: cloud.inventory(p) for p in (DEMO, ALT)}
    res = flotte(tmp_path / "home", env, "apply", "-f", str(path), ok=False)
    assert res.returncode != 0
    assert "cannot reach each other" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    assert len([line for line in res.stderr.splitlines() if line.startswith("Error")]) <= 1
    assert {p: leaked(cloud, before[p], p) for p in (DEMO, ALT)} == {DEMO: {}, ALT: {}}
