"""Inventories rendered for Ansible and OpenSSH, read back by ansible-inventory and ssh -G."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flotte.inventory import InventoryHost, ansible_inventory, group_name, ssh_config
from flotte.models import Endpoint

HOSTS = [
    InventoryHost.of(
        "web-prod-manager-0",
        Endpoint(host="10.0.0.10", ssh_user="root", ssh_key="/keys/m0"),
        role="manager",
        group="default",
    ),
    InventoryHost.of(
        "web-prod-worker-0",
        Endpoint(host="10.0.0.11", ssh_user="deploy", ssh_port=2222, ssh_key="/keys/w0"),
        role="worker",
        group="gpu",
    ),
    InventoryHost.of(
        "web-prod-worker-1",
        Endpoint(host="10.0.0.12", ssh_user="debian", docker_port=2377),
        role="worker",
        group="default",
    ),
]


def ansible_inventory_list(path: Path) -> dict:
    exe = Path(sys.executable).with_name("ansible-inventory")
    if not exe.exists():
        found = shutil.which("ansible-inventory")
        if found is None:
            pytest.skip("ansible-core is not installed (pip install -e '.[test]')")
        exe = Path(found)
    res = subprocess.run(
        [str(exe), "-i", str(path), "--list"],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            "PATH": "/usr/bin:/bin",
            "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
            "HOME": str(path.parent),
        },
    )
    assert res.returncode == 0, res.stderr
    assert "WARNING" not in res.stderr, res.stderr
    return json.loads(res.stdout)


@pytest.mark.parametrize("fmt, suffix", [("ansible", ".yml"), ("json", ".json")])
def test_ansible_reads_the_inventory(tmp_path: Path, fmt: str, suffix: str) -> None:
    path = tmp_path / f"inventory{suffix}"
    path.write_text(ansible_inventory(HOSTS, "web-prod", tmp_path / "known_hosts", fmt))
    listed = ansible_inventory_list(path)
    assert listed["web_prod"]["children"] == sorted(listed["web_prod"]["children"])
    assert set(listed["web_prod"]["children"]) == {
        "managers", "workers", "nodegroup_default", "nodegroup_gpu",
    }  # fmt: skip
    assert listed["managers"]["hosts"] == ["web-prod-manager-0"]
    assert listed["workers"]["hosts"] == ["web-prod-worker-0", "web-prod-worker-1"]
    assert listed["nodegroup_gpu"]["hosts"] == ["web-prod-worker-0"]
    hv = listed["_meta"]["hostvars"]
    assert hv["web-prod-worker-0"]["ansible_host"] == "10.0.0.11"
    assert hv["web-prod-worker-0"]["ansible_port"] == 2222
    assert hv["web-prod-worker-0"]["ansible_user"] == "deploy"
    assert hv["web-prod-worker-0"]["ansible_become"] is True
    assert hv["web-prod-worker-0"]["ansible_ssh_private_key_file"] == "/keys/w0"
    assert "ansible_become" not in hv["web-prod-manager-0"]
    assert "ansible_ssh_private_key_file" not in hv["web-prod-worker-1"]
    assert hv["web-prod-worker-1"]["docker_host"] == "tcp://10.0.0.12:2377"
    assert (
        f"UserKnownHostsFile={tmp_path / 'known_hosts'}"
        in hv["web-prod-manager-0"]["ansible_ssh_common_args"]
    )


def test_group_names_are_identifiers() -> None:
    assert group_name("web-prod") == "web_prod"
    assert group_name("3d.render") == "_3d_render"


def test_ssh_reads_the_host_blocks(tmp_path: Path) -> None:
    config = tmp_path / "config"
    known = tmp_path / "with space" / "known_hosts"
    config.write_text(ssh_config(HOSTS, known, prefix="flotte-"))
    res = subprocess.run(
        ["ssh", "-G", "-F", str(config), "flotte-web-prod-worker-0"],
        capture_output=True,
        text=True,
        check=True,
    )
    settings = dict(line.split(" ", 1) for line in res.stdout.splitlines() if " " in line)
    assert settings["hostname"] == "10.0.0.11"
    assert settings["port"] == "2222"
    assert settings["user"] == "deploy"
    assert settings["identityfile"] == "/keys/w0"
    assert settings["identitiesonly"] == "yes"
    assert str(known) in settings["userknownhostsfile"]
    assert settings["stricthostkeychecking"] == "accept-new"
    assert ssh_config([]) == ""
