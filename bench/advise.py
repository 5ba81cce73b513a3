"""Benchmark the advisor and the `flotte advise` cold start; prints one JSON object.

- ``real_catalog_ms``: one advise() over the shipped catalog (already loaded), median;
- ``real_catalog_load_ms``: loading and validating the shipped YAML in-process, median;
- ``synthetic_ms``: one advise() over 1,000 providers x 50 flavors x 3 regions, median;
- ``cli_cold_start_ms``: ``flotte advise --nodes 8 --vcpus 2 --ram 8`` as a fresh
  subprocess (JSON and table output), median; ``python_startup_ms`` is the bare
  interpreter on the same machine, to show how loaded the machine was.

Usage: ``.venv/bin/python bench/advise.py [--runs N]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from flotte.catalog import Request, advise
from flotte.catalog.loader import Catalog, load_catalog
from flotte.catalog.models import Provider

TARGETS = {"real_catalog_ms": 50.0, "synthetic_ms": 1000.0, "cli_cold_start_ms": 400.0}


def median_ms(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 2)


def synthetic_catalog(providers: int = 1000, flavors: int = 50) -> Catalog:
    """Providers shaped like the real ones: 3 regions, regional and global prices."""
    src = {"s": {"title": "synthetic", "as_of": "2026-01-01"}}
    sourced = {"source": "s"}
    feature = {"available": True, **sourced}
    out: dict[str, Provider] = {}
    for i in range(providers):
        regions = [
            {"name": f"r{j}", "location": "x", "country": ("fr", "de", "us")[j]} for j in range(3)
        ]
        flavor_list = []
        for k in range(flavors):
            vcpus = 1 + k % 64
            prices: list[dict[str, Any]] = [
                {"eur_per_hour": 0.01 * vcpus * (1 + i % 7), "as_of": "2018-06-06", **sourced},
                {"eur_per_hour": 0.012 * vcpus * (1 + i % 5), "regions": ["r0", "r1"], **sourced},
            ]
            flavor_list.append(
                {
                    "name": f"f{k}",
                    "vcpus": vcpus,
                    "ram_gb": 4.0 * vcpus,
                    "gpus": int(k % 10 == 0),
                    "prices": prices,
                }
            )
        data = {
            "name": f"p{i}",
            "title": f"Provider {i}",
            "kind": ("commercial", "academic", "federation")[i % 3],
            "summary": "synthetic",
            "apis": [("openstack", "ec2")[i % 2]],
            "status": {"state": "active", **sourced},
            "sovereignty": {
                "jurisdiction": ("fr", "de", "us")[i % 3],
                "parent_company": "x",
                "parent_country": "fr",
                "cloud_act": {
                    "exposure": ("no", "unclear", "yes")[i % 3],
                    "reason": "r",
                    **sourced,
                },
            },
            "features": {
                n: feature
                for n in ("image_upload", "bare_metal", "gpu", "managed_kubernetes", "registry")
            },
            "access": {"restricted": False, "route": "r", **sourced},
            "regions": regions,
            "flavors": flavor_list,
            "sources": src,
        }
        out[data["name"]] = Provider.model_validate(data)
    return Catalog(out)


def cli_ms(args: list[str], runs: int, env: dict[str, str]) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(args, capture_output=True, env=env, check=False)
        times.append((time.perf_counter() - start) * 1000)
        if proc.returncode != 0:
            raise SystemExit(f"{args} failed: {proc.stderr.decode()}")
    return round(statistics.median(times), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    opts = parser.parse_args()
    today = date(2026, 11, 25)  # fixed so runs compare; the clock does not change the work
    request = Request(nodes=8, vcpus=2, ram_gb=8, today=today)
    with tempfile.TemporaryDirectory() as home:
        empty = Path(home) / "config" / "catalog"
        env = {**os.environ, "FLOTTE_HOME": home, "COLUMNS": "200"}
        catalog = load_catalog(empty)

        def cold_load() -> None:
            # A new directory key defeats the in-process cache, so this re-reads the YAML.
            load_catalog(Path(home) / f"miss-{time.perf_counter_ns()}")

        results: dict[str, Any] = {
            "providers": len(catalog),
            "offers": len(advise(catalog, request).offers),
            "real_catalog_ms": median_ms(lambda: advise(catalog, request), opts.runs * 5),
            "real_catalog_load_ms": median_ms(cold_load, opts.runs),
        }
        t0 = time.perf_counter()
        synthetic = synthetic_catalog()
        results["synthetic_build_s"] = round(time.perf_counter() - t0, 2)
        results["synthetic_shape"] = "1000 providers x 50 flavors x 3 regions"
        results["synthetic_offers"] = len(advise(synthetic, request).offers)
        results["synthetic_ms"] = median_ms(
            lambda: advise(synthetic, request), max(3, opts.runs // 2)
        )
        flotte = str(Path(sys.executable).with_name("flotte"))
        base = [flotte, "advise", "--nodes", "8", "--vcpus", "2", "--ram", "8"]
        results["python_startup_ms"] = cli_ms([sys.executable, "-c", "pass"], opts.runs, env)
        results["cli_cold_start_ms"] = cli_ms([*base, "-f", "json"], opts.runs, env)
        results["cli_cold_start_table_ms"] = cli_ms(base, opts.runs, env)
    results["runs"] = opts.runs
    results["load_average"] = round(os.getloadavg()[0], 2)
    results["targets"] = TARGETS
    results["pass"] = all(results[k] <= v for k, v in TARGETS.items())
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
