"""How flotte's cost grows with the number of nodes, per driver: prints JSON, draws PNGs.

For each driver and size, ``flotte`` runs as a child process (the CLI a user runs) in a
throw-away ``FLOTTE_HOME``, with ``--no-provision`` for the clouds, and each figure is
taken where it cannot be flattered:

* wall time of ``cluster create`` and ``cluster delete``;
* provider API calls per node, counted at the peer by a proxy in front of the cloud's
  endpoints (bench/scale_proxy.py), which also adds the per-call latency (EC2);
* the flotte process's own CPU seconds and peak RSS (``os.wait4`` on the child);
* rows it wrote to its SQLite state (SQLite's ``total_changes``, bench/scale_child.py).

Each size runs in the same run as its baseline: the bare SDK floor (OpenStack: the
parallel openstacksdk script of bench/openstack_cluster.py; EC2: one boto3 RunInstances
for every node then DescribeInstances until running, through the same proxy).

Drivers: ``cli`` (``machine ls``, ``cluster list``, ``cluster show`` with N machines and
an N-node cluster recorded on the hidden fake driver; CLI start-up included), ``ec2``
(moto + 100 ms per call), ``openstack`` (devcloud's fake compute), ``local`` (Docker
nodes and a real Swarm, 3 managers). Plots go to docs/perf/ (``--plots DIR``).

    .venv/bin/python bench/scale.py --quick            # a small sample, a few minutes
    .venv/bin/python bench/scale.py --drivers cli,ec2 --sizes 200,1000
    .venv/bin/python bench/scale.py --drivers openstack --sizes 100,200
    # spread over ten fake compute hosts first, as a cloud would (docs/devcloud.md)
    flotte devcloud up --computes 10
    .venv/bin/python bench/scale.py --drivers local --sizes 10,50
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent / "tests"))  # fixtures: moto server

import scale_clouds  # noqa: E402
import scale_plot  # noqa: E402
import scale_run  # noqa: E402

DEFAULT_SIZES = {"cli": [100, 1000], "ec2": [200, 1000], "openstack": [100, 200], "local": [50]}
QUICK_SIZES = {"cli": [100], "ec2": [50], "openstack": [10], "local": [3]}
TARGETS = {
    "cli_command_s": 0.5,
    "ec2_create_s_at_1000": 10.0,
    "ec2_calls_per_node": 1.05,
    "openstack_calls_per_node": 8.0,
    "openstack_ratio_to_floor": 1.0,
    "local_ready_s_at_50": 30.0,
    "local_delete_s_at_50": 15.0,
    "cpu_ms_per_node": 20.0,
    "peak_rss_mb_at_1000": 300.0,
}
CLI_COMMANDS = [
    ["machine", "ls"],
    ["machine", "ls", "-f", "json"],
    ["cluster", "list"],
    ["cluster", "list", "-f", "json"],
    ["cluster", "show", "big"],
    ["cluster", "show", "big", "-f", "json"],
]


def cli_case(size: int, repeat: int) -> dict[str, Any]:
    """N recorded machines and an N-node cluster, then each listing command, best of N.

    The records are seeded in bulk (bench/scale_seed.py: one machine and a small cluster
    through the use cases, the rest copied), since what is measured is the listings.
    """
    with tempfile.TemporaryDirectory(prefix="flotte-scale-cli-") as tmp:
        env = {"FLOTTE_HOME": f"{tmp}/home", "FLOTTE_FAKE_DIR": f"{tmp}/fake"}
        seed = scale_run.python([str(BENCH / "scale_seed.py"), str(size), str(size)], env)
        seed.check()
        commands: dict[str, Any] = {}
        for argv in CLI_COMMANDS:
            runs = [scale_run.flotte(argv, env, counted=False).check() for _ in range(repeat)]
            best = min(runs, key=lambda r: r.wall_s)
            commands[" ".join(argv)] = {
                **best.figures(),
                "all_wall_s": [round(r.wall_s, 3) for r in runs],
                "all_cpu_s": [round(r.cpu_s, 3) for r in runs],
                "output_lines": best.stdout.count("\n"),
                "load_1m": scale_run.load()["load_1m"],
            }
            print(
                f"scale: cli {size}: {' '.join(argv)}: best of {repeat} "
                f"{best.wall_s:.2f} s wall, {best.cpu_s:.2f} s CPU "
                f"(load {commands[' '.join(argv)]['load_1m']})",
                file=sys.stderr,
            )
    return {
        "nodes": size,
        "machines_recorded": size,
        "repeat": repeat,
        "seed_s": round(seed.wall_s, 2),
        "commands": commands,
        "load": scale_run.load(),
    }


def per_node(figures: dict[str, Any], size: int) -> dict[str, Any]:
    """Adds the per-node ratios the plots and targets use."""
    out = dict(figures)
    out["cpu_ms_per_node"] = round(1000 * figures["cpu_s"] / size, 2)
    out["peak_rss_mb"] = figures["peak_rss_mb"]
    if "rows_written" in figures:
        out["rows_per_node"] = round(figures["rows_written"] / size, 2)
        out["write_statements_per_node"] = round(figures["write_statements"] / size, 2)
    return out


def growth(runs: list[dict[str, Any]], at: int = 1000) -> dict[str, Any] | None:
    """How flotte's create CPU grows between this run's two largest sizes.

    ``cpu_s / nodes`` at one size carries the command's fixed cost (imports, login,
    lookups: about a second) spread over the nodes, so it falls as sizes grow. The slope
    between two sizes measured in the same run is what one more node costs; with the
    fixed part it gives the figure at ``at`` nodes where the peer cannot hold that many
    (devcloud's external network is a /24). A projection, marked as one.
    """
    sized = sorted((r for r in runs if "cpu_s" in r.get("create", {})), key=lambda r: r["nodes"])
    if len(sized) < 2 or sized[-1]["nodes"] == sized[-2]["nodes"]:
        return None
    a, b = sized[-2], sized[-1]
    slope = (b["create"]["cpu_s"] - a["create"]["cpu_s"]) / (b["nodes"] - a["nodes"])
    fixed = b["create"]["cpu_s"] - slope * b["nodes"]
    return {
        "from_nodes": a["nodes"],
        "to_nodes": b["nodes"],
        "cpu_ms_per_added_node": round(1000 * slope, 2),
        "fixed_cpu_s": round(fixed, 3),
        "projected_at": at,
        "projected_cpu_ms_per_node": round(1000 * (fixed + slope * at) / at, 2),
    }


def verdict(results: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Each target with the figure that meets or misses it (None: not measured)."""
    t = TARGETS
    out: dict[str, Any] = {}
    cli = results.get("cli", [])
    if cli:
        worst = max(c["wall_s"] for r in cli for c in r["commands"].values())
        out["cli_command_s"] = {"worst": worst, "ok": worst <= t["cli_command_s"]}
    for name in ("ec2", "openstack", "local"):
        for r in results.get(name, []):
            n, c = r["nodes"], r["create"]
            key = f"{name}_{n}"
            if "calls_per_node" in c:
                limit = t[f"{name}_calls_per_node"] if name != "local" else None
                out[f"{key}_calls_per_node"] = {
                    "value": c["calls_per_node"],
                    "ok": None if limit is None else c["calls_per_node"] <= limit,
                }
            out[f"{key}_cpu_ms_per_node"] = {
                "value": c["cpu_ms_per_node"],
                "ok": c["cpu_ms_per_node"] <= t["cpu_ms_per_node"],
            }
            if name == "ec2" and n >= 1000:
                out["ec2_create_s_at_1000"] = {
                    "value": c["wall_s"],
                    "ok": c["wall_s"] <= t["ec2_create_s_at_1000"],
                }
                out["peak_rss_mb_at_1000"] = {
                    "value": c["peak_rss_mb"],
                    "ok": c["peak_rss_mb"] <= t["peak_rss_mb_at_1000"],
                }
            if name == "ec2" and r.get("floor_same_request"):
                # no target: how far flotte is from moto's own time for the same request
                ratio = round(c["wall_s"] / r["floor_same_request"]["create_s"], 2)
                out[f"{key}_ratio_to_same_request_floor"] = {"value": ratio, "ok": None}
            if name == "openstack" and r.get("floor"):
                ratio = round(c["wall_s"] / r["floor"]["create_s"], 2)
                out[f"{key}_ratio_to_floor"] = {"value": ratio, "ok": ratio <= 1.0}
            if name == "local" and n >= 50:
                out["local_ready_s_at_50"] = {"value": c["wall_s"], "ok": c["wall_s"] <= 30}
                d = r["delete"]["wall_s"]
                out["local_delete_s_at_50"] = {"value": d, "ok": d <= 15}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--drivers", default="cli,ec2,openstack,local")
    parser.add_argument("--sizes", help="Comma-separated node counts (default: per driver).")
    parser.add_argument("--quick", action="store_true", help="Small sizes (CI's sample).")
    parser.add_argument("--repeat", type=int, default=3, help="Best of N where noisy.")
    parser.add_argument("--latency-ms", type=float, default=100.0, help="Added per EC2 call.")
    parser.add_argument("--plots", default=str(BENCH.parent / "docs" / "perf"))
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument(
        "--no-floor",
        action="store_true",
        help="OpenStack: flotte alone, without the SDK floor (at 200 the floor's own "
        "200 threads take devcloud more than half an hour; no ratio is then given).",
    )
    parser.add_argument(
        "--parallelism",
        type=int,
        help="OpenStack: pass --parallelism N to cluster create (bounds the node steps the "
        "driver otherwise paces itself; for an A/B of the executor's bound).",
    )
    parser.add_argument(
        "--merge",
        help="Previous JSON reports (comma-separated) whose runs are kept; with --drivers '' "
        "nothing runs and the plots are drawn from them.",
    )
    args = parser.parse_args()
    drivers = [d for d in args.drivers.split(",") if d]
    table = QUICK_SIZES if args.quick else DEFAULT_SIZES
    chosen = [int(s) for s in args.sizes.split(",")] if args.sizes else None

    results: dict[str, list[dict[str, Any]]] = {}
    for previous in (args.merge or "").split(","):
        if previous:
            for driver, runs in json.loads(Path(previous).read_text())["results"].items():
                # a later report's run of a size replaces an earlier one of that size
                sizes_given = {r["nodes"] for r in runs}
                kept = [r for r in results.get(driver, []) if r["nodes"] not in sizes_given]
                results[driver] = sorted(kept + runs, key=lambda r: int(r["nodes"]))
    growths: dict[str, Any] = {}  # from this run's sizes only: same load, same code
    for driver in drivers:
        sizes = chosen or table[driver]
        runs = []
        for size in sizes:
            print(f"scale: {driver} {size} nodes (load {os.getloadavg()[0]:.1f})", file=sys.stderr)
            if driver == "cli":
                runs.append(cli_case(size, args.repeat))
            elif driver == "ec2":
                runs.append(scale_clouds.ec2_case(size, args.latency_ms / 1000))
            elif driver == "openstack":
                runs.append(
                    scale_clouds.openstack_case(
                        size, floor=not args.no_floor, parallelism=args.parallelism
                    )
                )
            elif driver == "local":
                runs.append(scale_clouds.local_case(size))
            else:
                parser.error(f"unknown driver {driver!r} (cli, ec2, openstack, local)")
        grew = growth(runs)
        if grew is not None:
            # beside the verdict, not in it: a projection meets or misses no target
            grew["within_target_if_linear"] = (
                grew["projected_cpu_ms_per_node"] <= TARGETS["cpu_ms_per_node"]
            )
            growths[driver] = grew
        keep = [r for r in results.get(driver, []) if r["nodes"] not in sizes]
        results[driver] = sorted(keep + runs, key=lambda r: int(r["nodes"]))
    report = {
        "benchmark": "scale",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            **scale_run.load(),
        },
        "latency_ms_per_ec2_call": args.latency_ms,
        "results": results,
        "targets": TARGETS,
        "verdict": verdict(results),
        "growth": growths,
    }
    if not args.no_plots:
        report["plots"] = scale_plot.draw(results, Path(args.plots))
        # The figures beside their plots, so a later run can --merge its sizes in.
        (Path(args.plots) / "scale.json").write_text(json.dumps(report, indent=2) + "\n")
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
