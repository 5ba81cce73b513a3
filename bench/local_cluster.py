"""Benchmark of local clusters: prints JSON.

Wall time to a Ready Swarm of 1, 3 and 10 nodes on the local Docker engine (node image
already built), resize +5, delete; and the same creates with parallelism 1 (the
serial baseline, measured in the same run), so the speed-up is a ratio of two figures
taken under the same load. Runs in a throw-away FLOTTE_HOME; leaves nothing behind.

    .venv/bin/python bench/local_cluster.py [--sizes 1,3,10] [--skip-serial]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from typing import Any

TARGETS = {"ready_3_s": 8.0, "ready_10_s": 20.0, "delete_s": 5.0, "speedup_10": 3.0}


async def one_cluster(
    home: str, name: str, nodes: int, parallelism: int | None, resize: bool
) -> dict[str, Any]:
    """Create (Ready), optionally resize by +5 workers, and delete one cluster, timed,
    through the use cases every command runs (plan, executor, journal)."""
    from flotte.service import Service

    svc = Service(home, parallelism=parallelism)
    try:
        spec, secrets = svc.resolve(
            name, driver="local", master_count=1, node_count=nodes - 1, timeout_min=10
        )
        out: dict[str, Any] = {"nodes": nodes, "parallelism": parallelism or "default"}
        t = time.monotonic()
        await svc.clusters.create(spec, secrets)
        out["ready_s"] = round(time.monotonic() - t, 2)
        if resize:
            t = time.monotonic()
            await svc.clusters.resize(name, nodes - 1 + 5)
            out["resize_plus5_s"] = round(time.monotonic() - t, 2)
        t = time.monotonic()
        await svc.clusters.delete(name)
        out["delete_s"] = round(time.monotonic() - t, 2)
        return out
    finally:
        svc.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1,3,10")
    parser.add_argument("--skip-serial", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    from flotte.drivers.local import local_client
    from flotte.drivers.local.image import ensure_node_image

    client = local_client()
    t = time.monotonic()
    ensure_node_image(client)
    image_s = round(time.monotonic() - t, 2)

    results: dict[str, Any] = {
        "benchmark": "local_cluster",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg_1m": os.getloadavg()[0],
        },
        "node_image_check_s": image_s,
        "parallel": [],
        "serial": [],
    }
    with tempfile.TemporaryDirectory(prefix="flotte-bench-") as home:
        os.environ["DOCKER_CONFIG"] = os.path.join(home, "docker")
        # Warm-up: the first cluster pays for the privileged-mode probe and page cache.
        asyncio.run(one_cluster(home, "warmup", 1, None, False))
        for n in sizes:
            results["parallel"].append(
                asyncio.run(one_cluster(home, f"p{n}", n, None, n == max(sizes)))
            )
        if not args.skip_serial:
            for n in sizes:
                results["serial"].append(asyncio.run(one_cluster(home, f"s{n}", n, 1, False)))
    par = {r["nodes"]: r for r in results["parallel"]}
    ser = {r["nodes"]: r for r in results["serial"]}
    summary: dict[str, Any] = {}
    if 3 in par:
        summary["ready_3_s"] = par[3]["ready_s"]
    if 10 in par:
        summary["ready_10_s"] = par[10]["ready_s"]
        summary["delete_10_s"] = par[10]["delete_s"]
        summary["resize_plus5_s"] = par[10].get("resize_plus5_s")
    if 10 in par and 10 in ser:
        summary["speedup_10"] = round(ser[10]["ready_s"] / par[10]["ready_s"], 2)
    summary["delete_s"] = max(r["delete_s"] for r in results["parallel"])
    results["summary"] = summary
    results["targets"] = TARGETS
    results["meets_targets"] = {
        key: (summary[key] <= target if key != "speedup_10" else summary[key] >= target)
        for key, target in TARGETS.items()
        if summary.get(key) is not None
    }
    json.dump(results, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
