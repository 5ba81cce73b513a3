"""The plots of bench/scale.py: PNGs under docs/perf/ (matplotlib's Agg backend, no display).

Three figures against node count, one line per driver, the floor dashed where there is
one: create wall time, provider API calls per node, flotte CPU milliseconds per node.
A fourth draws the CLI's listing commands against the number of recorded nodes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

COLOURS = {"ec2": "tab:orange", "openstack": "tab:red", "local": "tab:blue", "cli": "tab:green"}


def _series(runs: list[dict[str, Any]], pick: Any) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for r in runs:
        value = pick(r)
        if value is not None:
            xs.append(int(r["nodes"]))
            ys.append(float(value))
    return xs, ys


def _create(run: dict[str, Any]) -> dict[str, Any]:
    """A run's create figures; the CLI runs since 2026-12-01 seed in bulk and have none."""
    found: dict[str, Any] = run.get("create") or {}
    return found


def draw(results: dict[str, list[dict[str, Any]]], out: Path) -> list[str]:
    """Write the PNGs; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    drivers = [d for d in ("local", "openstack", "ec2", "cli") if results.get(d)]
    written = []
    panels = [
        ("scale_wall.png", "create wall time (s)", lambda r: _create(r).get("wall_s"),
         lambda r: (r.get("floor") or {}).get("create_s")),
        ("scale_calls.png", "provider API calls per node",
         lambda r: _create(r).get("calls_per_node"),
         lambda r: (r["floor"]["api_calls"] / r["nodes"]) if r.get("floor") else None),
        ("scale_cpu.png", "flotte CPU per node created (ms)",
         lambda r: _create(r).get("cpu_ms_per_node"), lambda r: None),
    ]  # fmt: skip
    for filename, label, pick, floor in panels:
        fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
        for d in drivers:
            xs, ys = _series(results[d], pick)
            if xs and any(ys):
                ax.plot(xs, ys, marker="o", color=COLOURS[d], label=d)
            fx, fy = _series(results[d], floor)
            if fx:
                ax.plot(fx, fy, marker="x", ls="--", color=COLOURS[d], label=f"{d} floor (SDK)")
            if filename == "scale_wall.png":  # EC2: also the floor of flotte's own request
                sx, sy = _series(
                    results[d], lambda r: (r.get("floor_same_request") or {}).get("create_s")
                )
                if sx:
                    ax.plot(
                        sx,
                        sy,
                        marker="+",
                        ls=":",
                        color=COLOURS[d],
                        label=f"{d} floor, same request",
                    )
        ax.set_xlabel("nodes")
        ax.set_ylabel(label)
        ax.set_xscale("log")
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = out / filename
        fig.savefig(path)
        plt.close(fig)
        written.append(str(path))
    if results.get("cli"):
        fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
        commands = sorted({c for r in results["cli"] for c in r["commands"]})
        for command in commands:
            xs, ys = _series(results["cli"], lambda r, c=command: r["commands"][c]["wall_s"])
            ax.plot(xs, ys, marker="o", label=command)
        ax.axhline(0.5, color="grey", ls=":", label="target 0.5 s")
        ax.set_xlabel("machines and cluster nodes recorded")
        ax.set_ylabel("wall time incl. start (s)")
        ax.set_xscale("log")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
        fig.tight_layout()
        path = out / "scale_cli.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(str(path))
    return written
