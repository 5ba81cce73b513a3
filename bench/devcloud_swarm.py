"""Benchmark of Swarm clusters on Docker-backed devcloud (issue 6): prints JSON.

Wall time from ``cluster create`` to a Ready 3-node and 10-node Swarm whose servers
really boot (cloud-init, sshd, Docker), and per server the time from its create step
to an engine answering over TLS (SSH-ready, then provisioned). Turns devcloud's Docker
mode on for the run and back off afterwards; deletes every cluster it made.

    .venv/bin/python bench/devcloud_swarm.py [--sizes 3,10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TARGET_10_S = 90.0


def devcloud(*args: str) -> None:
    root = os.environ.get("FLOTTE_DEVCLOUD_DIR") or str(
        Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local/share") / "flotte/devcloud"
    )
    subprocess.run(
        [sys.executable, "-m", "flotte.cli.main", "devcloud", "up", "--dir", root,
         "--clouds-yaml", "none", *args],
        check=True, capture_output=True, timeout=1800,
    )  # fmt: skip
    os.environ["OS_CLIENT_CONFIG_FILE"] = str(Path(root) / "clouds.yaml")


async def one(home: str, name: str, nodes: int) -> dict[str, Any]:
    from flotte.clusters import Clusters
    from flotte.engine.executor import Step
    from flotte.service import Service

    started: dict[str, float] = {}
    ready: dict[str, float] = {}

    def events(step: Step, phase: str, detail: str = "") -> None:
        if step.name.startswith("create:") and phase == "start":
            started[step.name[7:]] = time.monotonic()
        if step.name.startswith("provision:") and phase == "done":
            ready[step.name[10:]] = time.monotonic()

    svc = Service(home, events=events)
    clusters = Clusters(svc)
    options = {
        "openstack_cloud": "devcloud-demo",
        "openstack_flavor_id": "2",
        "openstack_net_name": "formation-net",
        "openstack_floatingip_pool": "ext-net",
        "openstack_image_name": "debian-12",
        "openstack_ssh_user": "debian",
    }
    spec = clusters.resolve(
        template=None, driver="openstack", coe="swarm", master_count=1, node_count=nodes - 1,
        options=options, labels={}, engine=None, timeout_min=10,
    )  # fmt: skip
    t = time.monotonic()
    try:
        await clusters.create(name, spec)
        ready_s = time.monotonic() - t
    finally:
        t_del = time.monotonic()
        await clusters.delete(name)
        delete_s = time.monotonic() - t_del
    per_node = sorted(round(ready[n] - started[n], 1) for n in ready if n in started)
    svc.close()
    return {
        "nodes": nodes,
        "ready_s": round(ready_s, 1),
        "delete_s": round(delete_s, 1),
        "server_to_engine_s": {"min": per_node[0], "max": per_node[-1], "all": per_node},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="3,10")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    devcloud("--docker")
    results: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="flotte-bench-") as home:
            os.environ["DOCKER_CONFIG"] = os.path.join(home, "docker")
            for n in sizes:
                results.append(asyncio.run(one(home, f"bench{n}", n)))
    finally:
        devcloud("--no-docker")
    by = {r["nodes"]: r for r in results}
    out = {
        "benchmark": "devcloud_swarm",
        "machine": {"cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0]},
        "clusters": results,
        "target_10_ready_s": TARGET_10_S,
        "meets_target": by[10]["ready_s"] <= TARGET_10_S if 10 in by else None,
    }
    json.dump(out, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
