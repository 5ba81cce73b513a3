"""Issue 6: a Swarm cluster on Docker-backed devcloud, through the OpenStack driver.

Servers really boot (cloud-init, sshd, Docker); flotte provisions them over SSH at
their floating IPs and forms the swarm on their fixed IPs, which is what the
security group opens between members.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from fixtures.cli_zygote import run_cli
from fixtures.devcloud import DevCloud

pytestmark = [pytest.mark.slow, pytest.mark.docker]
HELLO = Path(__file__).resolve().parents[3] / "examples" / "hello"


def test_swarm_cluster_on_devcloud(devcloud_docker: DevCloud, tmp_path: Path) -> None:
    dc = devcloud_docker
    name = f"sw{uuid.uuid4().hex[:5]}"
    env = dict(dc.env, FLOTTE_HOME=str(tmp_path / "home"), DOCKER_CONFIG=str(tmp_path / "docker"))

    def flotte(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        res = run_cli([sys.executable, "-m", "flotte.cli.main", *args], env, timeout)
        assert res.returncode == 0, f"flotte {' '.join(args)}:\n{res.stderr[-3000:]}"
        return res

    def swarm_nodes() -> list[dict[str, Any]]:
        out = subprocess.run(
            ["docker", "--context", f"flotte-{name}", "node", "ls", "--format", "{{json .}}"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        return [json.loads(line) for line in out.splitlines()]

    with contextlib.closing(dc.connect(dc.demo_cloud)) as demo:
        servers_before = {s.name for s in demo.compute.servers()}
    flags = [
        "--openstack-cloud", dc.demo_cloud, "--openstack-flavor-id", dc.flavor_id,
        "--openstack-net-name", dc.network, "--openstack-floatingip-pool", dc.floating_pool,
        "--openstack-image-name", dc.image, "--openstack-ssh-user", dc.ssh_user,
    ]  # fmt: skip
    started = time.monotonic()
    try:
        flotte("cluster", "create", name, "--driver", "openstack", "--node-count", "2", *flags)
        created_s = time.monotonic() - started
        nodes = swarm_nodes()
        assert len(nodes) == 3 and all(n["Status"] == "Ready" for n in nodes), nodes

        # A service built here spreads over the three nodes (no registry anywhere).
        import docker

        client = docker.from_env()
        from flotte.drivers.local.image import build_base

        build_base(client)
        client.images.build(path=str(HELLO), tag="flotte-hello:1", rm=True)
        client.close()
        flotte("cluster", "load-image", name, "flotte-hello:1")
        ctx = ["docker", "--context", f"flotte-{name}"]
        subprocess.run(
            [
                *ctx, "service", "create", "--detach", "--name", "hello", "--replicas", "3",
                "--no-resolve-image", "--endpoint-mode", "dnsrr",
                "--publish", "mode=host,target=80,published=8080", "flotte-hello:1",
            ],
            env=env, capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip

        def running() -> set[str]:
            out = subprocess.run(
                [*ctx, "service", "ps", "hello", "--filter", "desired-state=running",
                 "--format", "{{.Node}} {{.CurrentState}}"],
                env=env, capture_output=True, text=True, timeout=60, check=True,
            ).stdout  # fmt: skip
            return {line.split()[0] for line in out.splitlines() if " Running " in f" {line} "}

        deadline = time.monotonic() + 120
        while len(running()) < 3 and time.monotonic() < deadline:
            time.sleep(1)
        assert len(running()) == 3
        flotte("cluster", "resize", name, "--node-count", "4")
        assert len(swarm_nodes()) == 5 and all(n["Status"] == "Ready" for n in swarm_nodes())
        flotte("cluster", "resize", name, "--node-count", "1")
        assert len(swarm_nodes()) == 2
    finally:
        subprocess.run(
            [sys.executable, "-m", "flotte.cli.main", "cluster", "delete", name],
            env=env, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
    with contextlib.closing(dc.connect(dc.demo_cloud)) as demo:
        left = {s.name for s in demo.compute.servers()} - servers_before
        ports = [p.id for p in demo.network.ports() if name in str(p.to_dict())]
        fips = [f.id for f in demo.network.ips() if name in str(f.to_dict())]
    assert left == set()
    assert ports == []
    assert fips == []
    print(f"3-node swarm on devcloud ready in {created_s:.0f} s")
