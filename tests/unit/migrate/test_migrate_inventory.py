"""``flotte cluster inventory`` and ``flotte machine ssh-config`` over a recorded cluster.

The cluster is made by the real use cases on the fake driver (a cloud kept in a file);
the inventory is read back by ansible-core's own ``ansible-inventory --list``, and the
ssh_config by OpenSSH's ``ssh -G``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures.cli_zygote import run_cli
from flotte.service import Service

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FLOTTE_FAKE_DIR", str(tmp_path / "cloud"))
    monkeypatch.delenv("FLOTTE_DATABASE_URL", raising=False)
    svc = Service(tmp_path / "home")
    spec, secrets = svc.resolve("lab", driver="fake", node_count=2, no_provision=True, flags={})
    asyncio.run(svc.clusters.create(spec, secrets))
    svc.close()
    return tmp_path / "home"


def flotte(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, FLOTTE_HOME=str(home), PYTHONPATH=str(ROOT / "src"))
    return run_cli([sys.executable, "-m", "flotte.cli.main", *args], env, 120)


def tool(name: str) -> str:
    exe = Path(sys.executable).with_name(name)
    if not exe.exists():
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")
    return str(exe)


def test_cluster_inventory_is_read_by_ansible(home: Path, tmp_path: Path) -> None:
    res = flotte(home, "cluster", "inventory", "lab")
    assert res.returncode == 0, res.stderr
    inventory = tmp_path / "lab.yml"
    inventory.write_text(res.stdout)
    listed = subprocess.run(
        [tool("ansible-inventory"), "-i", str(inventory), "--list"],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, HOME=str(tmp_path)),
    )
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    assert sorted(data["managers"]["hosts"]) == ["lab-master-0"]
    assert sorted(data["workers"]["hosts"]) == ["lab-node-0", "lab-node-1"]
    assert sorted(data["nodegroup_default_worker"]["hosts"]) == ["lab-node-0", "lab-node-1"]
    assert set(data["lab"]["children"]) >= {"managers", "workers"}
    hostvars = data["_meta"]["hostvars"]["lab-node-0"]
    assert hostvars["ansible_host"] and hostvars["flotte_role"] == "worker"
    as_json = json.loads(flotte(home, "cluster", "inventory", "lab", "-f", "json").stdout)
    assert set(as_json["all"]["hosts"]) == {"lab-master-0", "lab-node-0", "lab-node-1"}


def test_unknown_cluster_is_one_line(home: Path) -> None:
    res = flotte(home, "cluster", "inventory", "nope")
    assert res.returncode != 0
    (line,) = res.stderr.strip().splitlines()
    assert "cluster 'nope' not found" in line


def test_ssh_config_names_every_node_asked(home: Path, tmp_path: Path) -> None:
    res = flotte(home, "machine", "ssh-config", "--prefix", "fl-", "lab-master-0", "lab-node-1")
    assert res.returncode == 0, res.stderr
    config = tmp_path / "ssh_config"
    config.write_text(res.stdout)
    shown = subprocess.run(
        ["ssh", "-G", "-F", str(config), "fl-lab-node-1"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert shown.returncode == 0, shown.stderr
    options = dict(line.split(" ", 1) for line in shown.stdout.splitlines() if " " in line)
    assert options["hostname"] != "fl-lab-node-1"  # the node's address, from flotte's record
    assert options["stricthostkeychecking"] in ("accept-new", "true")
    assert res.stdout.count("Host fl-") == 2
