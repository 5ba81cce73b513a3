"""Healing through the OpenStack driver on Docker-backed devcloud.

The faults are made with the official openstack CLI, out of band: one worker's server
stopped (SHUTOFF), another's deleted. flotte finds both through the engine and the
Nova API, replaces them one at a time (``flotte watch``'s storm limit), and leaves no
server, port or floating IP of the old ones behind.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fixtures.devcloud import DevCloud, devcloud_dir, flotte

pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.long]


def openstack(dc: DevCloud, *args: str) -> None:
    """The official client, for its actions that print nothing (no ``-f json``)."""
    exe = Path(sys.executable).with_name("openstack")
    res = subprocess.run(
        [str(exe), "--os-cloud", dc.demo_cloud, *args],
        env=dc.env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert res.returncode == 0, f"openstack {' '.join(args)}: {res.stderr.strip()}"


@pytest.fixture(scope="module")
def docker_backed(devcloud: DevCloud) -> Iterator[DevCloud]:
    """devcloud with Docker-backed servers, left as it was found (other sessions share it)."""
    state = json.loads((devcloud_dir() / "state.json").read_text())
    was_on = bool(state.get("docker"))
    if not was_on:
        flotte("devcloud", "up", "--dir", str(devcloud.root), "--clouds-yaml", "none",
               "--docker", timeout=900)  # fmt: skip
    try:
        yield devcloud
    finally:
        if not was_on:
            flotte("devcloud", "up", "--dir", str(devcloud.root), "--clouds-yaml", "none",
                   "--no-docker", timeout=300)  # fmt: skip


def test_stopped_and_deleted_servers_are_replaced(docker_backed: DevCloud, tmp_path: Path) -> None:
    dc = docker_backed
    name = f"hlo{uuid.uuid4().hex[:4]}"
    env = dict(dc.env, FLOTTE_HOME=str(tmp_path / "home"), DOCKER_CONFIG=str(tmp_path / "d"))

    def run(*args: str, timeout: float = 1200) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "flotte.cli.main", *args],
            env=env, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip

    def servers() -> dict[str, dict[str, Any]]:
        listed = dc.openstack("server", "list", cloud=dc.demo_cloud)
        return {s["Name"]: s for s in listed if s["Name"].startswith(f"{name}-")}

    flags = [
        "--openstack-cloud", dc.demo_cloud, "--openstack-flavor-id", dc.flavor_id,
        "--openstack-net-name", dc.network, "--openstack-floatingip-pool", dc.floating_pool,
        "--openstack-image-name", dc.image, "--openstack-ssh-user", dc.ssh_user,
    ]  # fmt: skip
    create = [
        "cluster", "create", name, "--driver", "openstack", "--node-count", "2",
        "--labels", "auto_healing_enabled=true", "--no-rollback", *flags,
    ]  # fmt: skip
    try:
        res = run(*create)
        for _ in range(2):
            # a loaded machine: a server slow to answer SSH, a join that outlasts the
            # engine's own 20 s; re-running the create resumes it (the subject is healing)
            if res.returncode == 0 or "re-run to resume" not in res.stderr:
                break
            res = run(*create)
        assert res.returncode == 0, res.stderr[-3000:]
        before = servers()
        assert sorted(before) == [f"{name}-master-0", f"{name}-node-0", f"{name}-node-1"]
        stopped, deleted = before[f"{name}-node-0"]["ID"], before[f"{name}-node-1"]["ID"]
        openstack(dc, "server", "stop", stopped)
        openstack(dc, "server", "delete", "--wait", deleted)
        deadline = time.monotonic() + 120
        while dc.openstack("server", "show", stopped, cloud=dc.demo_cloud)["status"] != "SHUTOFF":
            assert time.monotonic() < deadline, "the server never stopped"
            time.sleep(1)

        check = run("cluster", "check", name, "-f", "json")
        assert check.returncode == 1, check.stderr
        reason = json.loads(check.stdout)["health_status_reason"]
        assert reason[f"{name}-node-0"].endswith("server stopped"), reason
        assert reason[f"{name}-node-1"].endswith("server gone (deleted)"), reason

        watched = run("watch", name, "--rounds", "3", "--interval", "1")
        assert watched.returncode == 0, watched.stderr[-3000:]
        assert watched.stdout.count("healed: replaced") == 2, watched.stdout
        after = servers()
        assert len(after) == 3 and all(s["Status"] == "ACTIVE" for s in after.values())
        assert stopped not in {s["ID"] for s in after.values()}
        assert deleted not in {s["ID"] for s in after.values()}
        final = run("cluster", "check", name, "-f", "json")
        assert final.returncode == 0, final.stdout
        assert json.loads(final.stdout)["quorum"]["reachable"] == 1
        ports = [p for p in dc.openstack("port", "list", cloud=dc.demo_cloud) if name in str(p)]
        assert len(ports) == 3  # one per live server: the old ones' went with them
    finally:
        run("cluster", "delete", name)
    assert servers() == {}
    assert [p for p in dc.openstack("port", "list", cloud=dc.demo_cloud) if name in str(p)] == []
    fips = dc.openstack("floating ip", "list", cloud=dc.demo_cloud)
    assert [f for f in fips if name in str(f)] == []
