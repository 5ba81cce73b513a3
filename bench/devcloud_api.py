"""Latency and throughput of devcloud's Nova and Neutron APIs under parallel requests; JSON.

C client threads (one authenticated openstacksdk connection each, made before timing)
send the same request at once, R rounds per operation:

* ``servers_detail``: ``GET /servers/detail`` (Nova, which also asks Neutron for ports);
* ``ports_list``: ``GET /v2.0/ports`` (Neutron);
* ``port_create`` / ``port_delete``: a port on the project's network, then its delete
  (Neutron's writes: IPAM, ML2 binding).

For each: latency p50/p95/max per request, and throughput (requests / wall time of the
rounds). It also reports the resident memory of each API's gunicorn workers (the master's
children, ``VmRSS``, and the tree's proportional size), how each API is started (its
gunicorn arguments) and the 1-minute load, since devcloud shares two cores.

    .venv/bin/python bench/devcloud_api.py [--concurrency 20] [--rounds 3]

Needs devcloud (``flotte devcloud up``); reads its clouds.yaml like the tests do. The
ports it makes are named ``bench-api-<run>-*`` and deleted, also on failure.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _clouds_yaml() -> Path:
    if os.environ.get("OS_CLIENT_CONFIG_FILE"):
        return Path(os.environ["OS_CLIENT_CONFIG_FILE"])
    from flotte.devcloud.layout import default_dir

    return default_dir() / "clouds.yaml"


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def api_processes() -> dict[str, Any]:
    """Per API: its gunicorn arguments, and each worker's RSS (MiB) and the tree's PSS."""
    from flotte.devcloud import procs
    from flotte.devcloud.layout import Layout, default_dir
    from flotte.devcloud.services import API_PROCESS

    layout = Layout(default_dir())
    out: dict[str, Any] = {}
    for name in [*API_PROCESS.values(), "nova-conductor", "nova-scheduler"]:
        rec = procs.running(layout, name)
        if rec is None:
            out[name] = None
            continue
        children = [pid for pid, _ in procs._descendants(rec.pid)]
        argv = list(rec.argv)
        out[name] = {
            "args": {
                a: argv[i + 1]
                for i, a in enumerate(argv[:-1])
                if a in ("--workers", "--threads", "--worker-class")
            },
            "master_rss_mib": round(_rss_kib(rec.pid) / 1024, 1),
            "workers_rss_mib": [round(_rss_kib(p) / 1024, 1) for p in children],
            "tree_pss_mib": round(procs.memory_kib(rec.pid) / 1024, 1),
        }
    return out


def _stats(latencies: list[float], wall: float, errors: list[str]) -> dict[str, Any]:
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 3) if ordered else 0

    return {
        "requests": len(latencies),
        "errors": len(errors),
        "first_errors": errors[:3],
        "p50_s": pct(0.5),
        "p95_s": pct(0.95),
        "max_s": round(max(ordered), 3) if ordered else 0,
        "mean_s": round(statistics.mean(ordered), 3) if ordered else 0,
        "wall_s": round(wall, 3),
        "req_per_s": round(len(latencies) / wall, 2) if wall else 0,
    }


def run(concurrency: int, rounds: int, cloud: str) -> dict[str, Any]:
    import openstack

    os.environ.setdefault("OS_CLIENT_CONFIG_FILE", str(_clouds_yaml()))
    tag = f"bench-api-{uuid.uuid4().hex[:8]}"
    conns = [openstack.connect(cloud=cloud) for _ in range(concurrency)]
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda c: c.session.get_token(), conns))
        net = conns[0].network.find_network("formation-net") or next(
            n for n in conns[0].network.networks() if not n.is_router_external
        )
        made: list[str] = []

        def timed(op: str, conn: Any, i: int) -> tuple[float, str | None]:
            t = time.monotonic()
            if op == "servers_detail":
                resp = conn.compute.get("/servers/detail")
            elif op == "ports_list":
                resp = conn.network.get("/ports")
            elif op == "port_create":
                body = {"port": {"network_id": net.id, "name": f"{tag}-{i}"}}
                resp = conn.network.post("/ports", json=body)
                if resp.status_code == 201:
                    made.append(resp.json()["port"]["id"])
            else:
                resp = conn.network.delete(f"/ports/{made[i]}")
            took = time.monotonic() - t
            ok = resp.status_code < 300
            return took, None if ok else f"{op}: HTTP {resp.status_code} {resp.text[:120]}"

        results: dict[str, Any] = {}
        try:
            for op in ("servers_detail", "ports_list", "port_create", "port_delete"):
                latencies: list[float] = []
                errors: list[str] = []
                wall = 0.0
                # GETs: R rounds of C at once; writes: C*R ports through the C threads.
                writes = op in ("port_create", "port_delete")
                for _ in range(1 if writes else rounds):
                    count = concurrency * (rounds if writes else 1)
                    if op == "port_delete":
                        count = len(made)
                    started = time.monotonic()
                    jobs = [pool.submit(timed, op, conns[i % concurrency], i) for i in range(count)]
                    for fut in jobs:
                        try:
                            took, err = fut.result()
                        except Exception as exc:  # a refused/reset connection is a figure too
                            took, err = time.monotonic() - started, f"{op}: {exc!s:.120}"
                        latencies.append(took)
                        if err:
                            errors.append(err)
                    wall += time.monotonic() - started
                results[op] = _stats(latencies, wall, errors)
                print(f"devcloud_api: {op}: {results[op]}", file=sys.stderr)
        finally:
            # Whatever was made and not deleted (a failed round) goes, by name.
            for port in conns[0].network.ports(network_id=net.id):
                if port.name.startswith(tag):
                    conns[0].network.delete_port(port, ignore_missing=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="Rounds of the GETs.")
    parser.add_argument("--cloud", default="devcloud-demo")
    parser.add_argument("--label", default="", help="Free text kept in the report.")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    results = run(args.concurrency, args.rounds, args.cloud)
    report = {
        "benchmark": "devcloud_api",
        "label": args.label,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "concurrency": args.concurrency,
        "rounds": args.rounds,
        "load_1m": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
        "results": results,
        "processes": api_processes(),
    }
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
