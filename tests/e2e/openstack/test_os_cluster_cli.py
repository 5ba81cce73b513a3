"""``flotte cluster create|resize|delete -d openstack --no-provision`` against devcloud."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from os_helpers import Cloud, leaked, proxied_clouds_yaml
from test_os_cli import flotte

_ONE_SERVER = re.compile(r"GET /v2.1/servers/[0-9a-f-]{36}$")


def test_cluster_create_resize_delete(
    cloud: Cloud, tmp_path: Path, image_id: str, fault_proxy_factory: Any
) -> None:
    home = tmp_path / "flotte-home"
    # Nova and Neutron through proxies that count the calls
    nova = fault_proxy_factory("http://127.0.0.1:8774")
    neutron = fault_proxy_factory("http://127.0.0.1:9696")
    name = f"devcloud-counted-{tmp_path.name[-12:]}"
    clouds_yaml = proxied_clouds_yaml(cloud, tmp_path, name, nova, neutron)
    env = {"OS_CLOUD": name, "OS_CLIENT_CONFIG_FILE": str(clouds_yaml)}
    before = cloud.inventory()
    try:
        flotte(
            home, env,
            "cluster", "create", "lab", "--driver", "openstack",
            "--master-count", "3", "--node-count", "7",
            "--openstack-flavor-name", "m1.tiny", "--openstack-image-id", image_id,
            "--openstack-net-name", "formation-net", "--openstack-floatingip-pool", "ext-net",
            "--no-provision",
        )  # fmt: skip
        servers = [s for s in cloud.servers() if s.name.startswith("lab-")]
        assert len(servers) == 10 and {s.status for s in servers} == {"ACTIVE"}
        groups = cloud.connection().compute.server_groups()
        assert len([g for g in groups if g.name.endswith("-lab-managers")]) == 1
        shown = json.loads(flotte(home, env, "cluster", "show", "lab", "-f", "json").stdout)
        assert shown["name"] == "lab"

        # ``machine ls`` asks the ten states at once: one connection (Nova's version
        # document read once) and one listing, no GET per server
        nova.stats.calls.clear()
        listed = flotte(home, env, "machine", "ls").stdout
        assert listed.count("Running") == 10, listed
        calls = nova.stats.calls
        per_server = sum(n for call, n in calls.items() if _ONE_SERVER.match(call))
        assert (per_server, calls["GET /v2.1/servers/detail"], calls["GET /v2.1"]) == (0, 1, 1), (
            calls
        )

        flotte(home, env, "cluster", "resize", "lab", "--node-count", "4")
        servers = [s for s in cloud.servers() if s.name.startswith("lab-")]
        assert len(servers) == 7
    finally:
        flotte(home, env, "cluster", "delete", "lab", ok=False)
    assert leaked(cloud, before) == {}
