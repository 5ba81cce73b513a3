"""Ansible and OpenSSH reach real sshd hosts through the inventories flotte renders."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import fixtures.sshd_hosts as _sshd
from flotte.inventory import InventoryHost, ansible_inventory, ssh_config
from flotte.models import Endpoint

pytestmark = pytest.mark.docker

PYTHON = (  # Ansible's modules need Python on the node; the test hosts have none
    "command -v python3 >/dev/null || { apt-get install -y -qq --no-install-recommends "
    "python3 >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && "
    "apt-get install -y -qq --no-install-recommends python3 >/dev/null 2>&1; }; }"
)


def tool(name: str) -> str:
    exe = Path(sys.executable).with_name(name)
    if exe.exists():
        return str(exe)
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")
    return found


@pytest.fixture
def short_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="ans-", dir="/tmp") as found:
        yield Path(found)


def test_ansible_ping_reaches_every_node_through_the_inventory(
    ssh_lab: _sshd.SSHLab, ssh_host, tmp_path: Path, short_dir: Path
) -> None:
    manager, worker = ssh_host("bare"), ssh_host("bare")
    with ThreadPoolExecutor(2) as pool:  # about 30 s each, from the Debian mirror
        list(pool.map(lambda h: h.sh(PYTHON), (manager, worker)))
    hosts = [
        InventoryHost.of(
            "lab-manager-0",
            Endpoint(host=manager.ip, ssh_user="root", ssh_key=str(ssh_lab.key)),
            role="manager",
        ),
        InventoryHost.of(
            "lab-worker-0",
            Endpoint(host=worker.ip, ssh_user="deploy", ssh_key=str(ssh_lab.key)),
            role="worker",
            group="big",
        ),
    ]
    known = tmp_path / "known_hosts"
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(ansible_inventory(hosts, "lab", known))
    # ssh's control sockets go in a short directory: a socket path over 108 bytes is refused,
    # and pytest's HOME here is long (a user's ~/.ansible/cp is not)
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(short_dir),
    }
    res = subprocess.run(
        [tool("ansible"), "-i", str(inventory), "lab", "-m", "ping"],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count("SUCCESS") == 2, res.stdout
    # become works for the sudo user, and each role group holds its node
    res = subprocess.run(
        [tool("ansible"), "-i", str(inventory), "workers", "-m", "command", "-a", "id -u"],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    assert "lab-worker-0 | CHANGED | rc=0 >>\n0" in res.stdout
    assert "lab-manager-0" not in res.stdout
    assert len(known.read_text().splitlines()) >= 2  # host keys pinned in flotte's file

    config = tmp_path / "ssh_config"
    config.write_text(ssh_config(hosts, known))
    for name, host in (("lab-manager-0", manager), ("lab-worker-0", worker)):
        out = subprocess.run(
            ["ssh", "-F", str(config), "-o", "BatchMode=yes", name, "hostname -I"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert host.ip in out.stdout.split()
    listed = subprocess.run(
        [tool("ansible-inventory"), "-i", str(inventory), "--list"],
        capture_output=True, text=True, timeout=120, env=env, check=True,
    )  # fmt: skip
    assert set(json.loads(listed.stdout)["lab"]["children"]) >= {"managers", "workers"}
