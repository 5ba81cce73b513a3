"""``flotte cluster create|resize|delete -d openstack --no-provision`` against devcloud."""

from __future__ import annotations

import json
from pathlib import Path

from os_helpers import DEMO, Cloud, leaked
from test_os_cli import flotte


def test_cluster_create_resize_delete(cloud: Cloud, tmp_path: Path, image_id: str) -> None:
    home = tmp_path / "flotte-home"
    env = {"OS_CLOUD": DEMO, "OS_CLIENT_CONFIG_FILE": str(cloud.clouds_yaml)}
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
        servers = [s for s in cloud.osc("server", "list") if s["Name"].startswith("lab-")]
        assert len(servers) == 10 and {s["Status"] for s in servers} == {"ACTIVE"}
        groups = [g for g in cloud.osc("server group list") if g["Name"].endswith("-lab-managers")]
        assert len(groups) == 1
        shown = json.loads(flotte(home, env, "cluster", "show", "lab", "-f", "json").stdout)
        assert shown["name"] == "lab"

        flotte(home, env, "cluster", "resize", "lab", "--node-count", "4")
        servers = [s for s in cloud.osc("server", "list") if s["Name"].startswith("lab-")]
        assert len(servers) == 7
    finally:
        flotte(home, env, "cluster", "delete", "lab", ok=False)
    assert leaked(cloud, before) == {}
