"""devcloud with several fake compute hosts (``devcloud up --computes N``).

A cloud spreads servers over hosts: with three, a cluster's managers in a hard
anti-affinity server group land on three hosts (one host could hold only one of
them). Hosts are taken away only when they hold no server.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from os_helpers import ADMIN, Cloud, cluster_group, leaked, node_specs

from fixtures.devcloud import COMPUTE_HOSTS, DevCloud, flotte
from fixtures.devcloud import devcloud_computes as devcloud_computes  # the fixture

HOSTS = {f"devcloud-{i}" if i > 1 else "devcloud" for i in range(1, COMPUTE_HOSTS + 1)}


def _hosts_of(cloud: Cloud, server_ids: set[str]) -> dict[str, str]:
    admin = cloud.connection(ADMIN)
    return {
        s.id: s.compute_host for s in admin.compute.servers(all_projects=True) if s.id in server_ids
    }


def _services(cloud: Cloud) -> dict[str, str]:
    admin = cloud.connection(ADMIN)
    return {
        s.host: s.state
        for s in admin.compute.services(binary="nova-compute")
        if s.host.startswith("devcloud") and s.host != "devcloud-ironic"
    }


def _up(root: str, count: int, *, check: bool = True) -> Any:
    return flotte("devcloud", "up", "--dir", root, "--clouds-yaml", "none",
                  "--computes", str(count), check=check)  # fmt: skip


def _refused(res: Any, why: str) -> None:
    """One clear line, no traceback, a non-zero exit."""
    assert res.returncode != 0
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert why in lines[0], res.stderr
    assert "Traceback" not in res.stderr


def _status(root: str) -> Any:
    return json.loads(flotte("devcloud", "status", "--dir", root, "-f", "json").stdout)


async def test_hard_anti_affinity_managers_land_on_three_hosts(
    devcloud_computes: DevCloud, cloud: Cloud, make_driver: Any, installation: str
) -> None:
    assert _services(cloud) == dict.fromkeys(HOSTS, "up")
    before = cloud.inventory()
    driver = make_driver(openstack_server_group_policy="anti-affinity")
    group = cluster_group("spread", installation, 3)
    await driver.check(group)
    shared = await driver.prepare(group)
    records = await asyncio.gather(
        *(driver.create(s, shared) for s in node_specs(group, managers=3))
    )
    try:
        sg = cloud.connection().compute.get_server_group(shared["server_group_id"])
        assert "anti-affinity" in str(sg.policy or sg.policies)
        assert "soft" not in str(sg.policy or sg.policies)
        placed = _hosts_of(cloud, {r.provider_id for r in records})
        assert sorted(placed.values()) == sorted(HOSTS), placed
    finally:
        await asyncio.gather(*(driver.remove(r) for r in records))
        await driver.release(group, shared)
    assert await driver.leftovers(group.owner) == []
    assert leaked(cloud, before) == {}


def test_a_host_holding_a_server_is_not_taken_away(
    devcloud_computes: DevCloud, cloud: Cloud
) -> None:
    root = str(devcloud_computes.root)
    last = f"devcloud-{COMPUTE_HOSTS}"
    # An admin may put a server on a given host (availability zone nova:HOST); the
    # demo project's network, by ID (the admin sees each project's formation-net).
    network = cloud.connection().network.find_network("formation-net", ignore_missing=False).id
    server = cloud.osc(
        "server", "create", "--image", "debian-12", "--flavor", "m1.tiny",
        "--network", network, "--availability-zone", f"nova:{last}",
        "--wait", "host-pin-test", cloud=ADMIN,
    )  # fmt: skip
    try:
        assert _hosts_of(cloud, {server["id"]}) == {server["id"]: last}
        _refused(_up(root, COMPUTE_HOSTS - 1, check=False), f"compute host {last} still holds 1")
        # Nothing changed: the host still runs and reports.
        assert _status(root)["compute_hosts"] == COMPUTE_HOSTS
        assert _services(cloud)[last] == "up"
    finally:
        cloud.osc("server", "delete", "--wait", server["id"], cloud=ADMIN)

    # Empty, it goes: its process, its Nova service and hypervisor, its provider.
    _up(root, COMPUTE_HOSTS - 1)
    assert set(_services(cloud)) == HOSTS - {last}
    admin = cloud.connection(ADMIN)
    assert last not in {h.name for h in admin.compute.hypervisors()}
    assert last not in {rp.name for rp in admin.placement.resource_providers()}
    status = _status(root)
    assert status["compute_hosts"] == COMPUTE_HOSTS - 1
    assert f"nova-compute-{COMPUTE_HOSTS}" not in {p["name"] for p in status["processes"]}
    # And comes back, new, when asked for again.
    _up(root, COMPUTE_HOSTS)
    assert _services(cloud) == dict.fromkeys(HOSTS, "up")


@pytest.mark.parametrize("count", ["0", "99"])
def test_a_number_of_hosts_out_of_range_is_refused(devcloud: DevCloud, count: str) -> None:
    # Refused before anything changes: no need for devcloud to itself.
    root = str(devcloud.root)
    hosts = _status(root)["compute_hosts"]
    _refused(_up(root, int(count), check=False), f"--computes {count} is out of range")
    assert _status(root)["compute_hosts"] == hosts
