"""Healing a Swarm over existing SSH hosts: an engine is restarted, a host is never made.

Faults are made on the hosts themselves, out of band: dockerd stopped with the host's
init script, then a host's machine gone altogether.
"""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest

from fixtures.local import Flotte

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def check(flotte: Flotte, name: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    res = flotte("cluster", "check", name, "-f", "json", check=False)
    return res.returncode, json.loads(res.stdout)


def test_engine_restarted_and_a_gone_host_left_unhealthy(flotte: Flotte, ssh_lab, ssh_host) -> None:  # type: ignore[no-untyped-def]
    hosts = [ssh_host("docker") for _ in range(3)]
    name = f"hls{uuid.uuid4().hex[:4]}"
    flotte(
        "cluster", "create", name, "--driver", "ssh", "--hosts", ",".join(h.ip for h in hosts),
        "--master-count", "1", "--node-count", "2", "--ssh-key", str(ssh_lab.key),
        "--labels", "auto_healing_enabled=true",
    )  # fmt: skip
    try:
        code, healthy = check(flotte, name)
        assert code == 0 and healthy["health_status"] == "HEALTHY", healthy
        worker = next(n for n in healthy["nodes"] if n["name"] == f"{name}-node-0")
        assert worker["pressure"]["disk_used_pct"] > 0  # read over SSH

        # dockerd stopped on a host: heal restarts it, on the same host
        hosts[1].sh("service docker stop")
        code, found = check(flotte, name)
        assert code == 1 and found["health_status"] == "UNHEALTHY"
        node = next(n for n in found["nodes"] if n["name"] == f"{name}-node-0")
        assert node["action"] == "restart", node
        assert "the Docker service is stopped on the host" in node["reason"]
        healed = flotte("cluster", "heal", name)
        assert f"Restarted the engine of {name}-node-0" in healed.stdout
        assert f"Cluster {name}: HEALTHY" in healed.stdout
        assert "Replaced" not in healed.stdout
        assert hosts[1].sh("docker info -f '{{.Swarm.LocalNodeState}}'").strip() == "active"
        restarts = [s for s, p in flotte.journal(f"cluster:{name}") if s.startswith("restart:")]
        assert restarts == [f"restart:{name}-node-0", f"restart:{name}-node-0"]  # intent, done

        # the machine of another host is gone: nothing flotte can make in its place
        ssh_lab.remove(hosts[2])
        res = flotte("cluster", "heal", name, check=False)
        assert res.returncode == 1, res.stdout + res.stderr
        assert "Traceback" not in res.stderr
        assert f"left: {name}-node-1:" in res.stdout
        assert "unreachable over SSH (not made by flotte)" in res.stdout
        show = json.loads(flotte("cluster", "show", name, "-f", "json").stdout)
        assert show["health_status"] == "UNHEALTHY"
        assert "unreachable over SSH" in show["health_status_reason"][f"{name}-node-1"]
        assert sorted(n["name"] for n in show["nodes"]) == [
            f"{name}-master-0",
            f"{name}-node-0",
            f"{name}-node-1",
        ]
        # the watch does not loop on it either: three rounds, no heal
        before = flotte.journal(f"cluster:{name}")
        watched = flotte("watch", name, "--rounds", "3", "--interval", "1")
        new = flotte.journal(f"cluster:{name}")[len(before) :]
        assert all(step.startswith("health:") for step, _ in new), new
        assert "healed" not in watched.stdout
    finally:
        subprocess.run(
            flotte.command("cluster", "delete", name), env=flotte.env, capture_output=True,
            timeout=300, check=False,
        )  # fmt: skip
