"""Overflow figures, as JSON (issue 15).

- ``overflow``: 1 manager + 4 workers on the fake driver (no engines), once on one
  "site" that holds them all, once on a lab that holds 3 nodes overflowing onto a
  partner (quota pre-check, placement, two driver instances): what overflow adds to a
  create, in seconds.
- ``mesh``: two containers on two sites joined by flotte's WireGuard mesh (Debian's
  wireguard-go, no kernel module here): round-trip time and TCP throughput (iperf3)
  over the mesh versus directly between their public addresses, on this machine.
- ``clusters`` (``--clusters``, a few minutes): time to a Ready 4-node Swarm on the
  local driver, all on one site versus over two sites (``--local-network``, no route
  between them) joined by the mesh flotte builds (wireguard installed on each node
  from the Debian mirror, then the swarm on the mesh addresses).
- ``devcloud`` (``--devcloud``, about ten minutes): the issue's cluster, 1 manager + 4
  workers, on Docker-backed devcloud: all 5 on devcloud (one site), then with the demo
  project's quota leaving room for 3 servers so that 2 workers overflow onto two SSH
  hosts (two sites, the mesh between them), as tests/e2e/devcloud/test_overflow_devcloud
  sets them up (tests/fixtures/devcloud_sites). Time from ``flotte apply`` to its end
  (all nodes Ready in one Swarm), and the delete. Holds devcloud's mode lock
  exclusively, as the tests' fixture does: waits while others use devcloud.

Run: ``.venv/bin/python bench/overflow.py [--runs N] [--skip-mesh] [--clusters] [--devcloud]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e" / "local"))
sys.path.insert(0, str(ROOT / "tests"))


def spec(name: str, lab_quota: int | None, partner: str) -> Any:
    from flotte.specs import ClusterSpec

    lab_options = {"fake_quota": lab_quota} if lab_quota else {}
    return ClusterSpec.model_validate(
        {
            "name": name,
            "driver": "fake",
            "no_provision": True,
            "options": {"fake_latency": 0.2},
            "nodegroups": [
                {"name": "default-master", "role": "master", "node_count": 1},
                {"name": "default-worker", "node_count": 0, "options": lab_options},
                {"name": "partner", "node_count": 0, "options": {"fake_dir": partner}},
            ],
            "overflow": {"nodegroups": ["default-worker", "partner"], "node_count": 4},
        }
    )


def overflow_run(directory: Path, lab_quota: int | None, name: str) -> dict[str, Any]:
    import os

    from flotte.service import Service

    os.environ["FLOTTE_FAKE_DIR"] = str(directory / f"lab-{name}")
    svc = Service(directory / f"home-{name}")
    try:
        started = time.monotonic()
        asyncio.run(svc.overflow.run(spec(name, lab_quota, str(directory / f"p-{name}")), {}))
        took = time.monotonic() - started
        groups = [n.group for n in svc.machines.all()]
        asyncio.run(svc.clusters.delete(name))
    finally:
        svc.close()
    return {"seconds": round(took, 3), "partner_nodes": groups.count("partner")}


def overflow_figures(runs: int) -> dict[str, Any]:
    one, two = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(runs):
            one.append(overflow_run(Path(tmp), None, f"one{i}"))
            two.append(overflow_run(Path(tmp), 3, f"two{i}"))
    return {
        "what": "1 manager + 4 workers, fake driver (0.2 s per call, no engines)",
        "one_site_s": statistics.median(r["seconds"] for r in one),
        "two_sites_s": statistics.median(r["seconds"] for r in two),
        "two_sites_partner_nodes": [r["partner_nodes"] for r in two],
        "runs": runs,
    }


def _rtt(text: str) -> float:
    found = re.search(r"= [\d.]+/([\d.]+)/", text)
    return float(found.group(1)) if found else float("nan")


def mesh_figures() -> dict[str, Any]:
    import docker
    from test_mesh import setup_mesh, sh, two_sites

    from flotte.mesh import keys

    client = docker.from_env(timeout=300)
    with tempfile.TemporaryDirectory() as tmp, two_sites(client) as (public, pairs):
        members = setup_mesh(pairs, public, keys.KeyStore(Path(tmp) / "mesh"))
        a, b = pairs[0][1], pairs[1][1]
        out: dict[str, Any] = {"wireguard": "wireguard-go (userspace), 2 containers"}
        sh(b, "iperf3 -s -D")
        time.sleep(0.5)
        for label, target in (
            ("direct", str(members[1].public_address)),
            ("mesh", members[1].mesh_address),
        ):
            sh(a, f"ping -c 2 -W 2 {target}")  # handshake and ARP first
            ping = sh(a, f"ping -c 20 -i 0.2 -W 2 {target}")
            perf = json.loads(sh(a, f"iperf3 -c {target} -t 3 -J"))
            out[f"{label}_rtt_ms"] = _rtt(ping)
            out[f"{label}_mbit_s"] = round(perf["end"]["sum_received"]["bits_per_second"] / 1e6, 1)
        out["throughput_ratio"] = round(out["mesh_mbit_s"] / out["direct_mbit_s"], 3)
        out["rtt_added_ms"] = round(out["mesh_rtt_ms"] - out["direct_rtt_ms"], 3)
        return out


def cluster_spec(name: str, tag: str, two_sites: bool) -> dict[str, Any]:
    far: dict[str, Any] = {"name": "far", "role": "worker", "node_count": 2 if two_sites else 0}
    if two_sites:
        far["options"] = {"local_network": f"{tag}-far", "local_public_network": f"{tag}-pub"}
    return {
        "apiVersion": "flotte/v1",
        "kind": "Cluster",
        "name": name,
        "driver": "local",
        "options": {"local_public_network": f"{tag}-pub"} if two_sites else {},
        "nodegroups": [
            {"name": "default-master", "role": "master", "node_count": 1},
            {"name": "default-worker", "role": "worker", "node_count": 1 if two_sites else 3},
            far,
        ],
    }


def cluster_figures(runs: int) -> dict[str, Any]:
    import uuid

    import docker
    import yaml

    from fixtures.local import Flotte, sweep
    from flotte.drivers.local.image import ensure_node_image
    from flotte.models import OWNER_KEY

    client = docker.from_env(timeout=300)
    ensure_node_image(client)
    times: dict[str, list[float]] = {"one": [], "two": []}
    with tempfile.TemporaryDirectory() as tmp:
        flotte = Flotte.own(Path(tmp))
        try:
            for i in range(runs):
                for kind in ("one", "two"):
                    name = f"b{kind}{i}"
                    path = Path(tmp) / f"{name}.yaml"
                    tag = f"flotte-bench-{uuid.uuid4().hex[:6]}"
                    path.write_text(yaml.safe_dump(cluster_spec(name, tag, kind == "two")))
                    started = time.monotonic()
                    flotte("apply", "-f", str(path), timeout=900)
                    times[kind].append(round(time.monotonic() - started, 1))
                    flotte("cluster", "delete", name, timeout=300)
        finally:
            if flotte.installation:
                sweep(client, {OWNER_KEY: flotte.installation})
    return {
        "what": "time to a Ready 4-node Swarm (1 manager + 3 workers), local driver, CLI",
        "one_site_s": times["one"],
        "two_sites_mesh_s": times["two"],
        "two_sites": "2 nodes per site; each node installs wireguard-tools + wireguard-go "
        "from the Debian mirror, then joins on its mesh address",
        "runs": runs,
    }


def devcloud_run(dc: Any, tmp: Path, name: str, two_sites: bool) -> dict[str, Any]:
    """One cluster of 1 manager + 4 workers applied, checked Ready and deleted."""
    import yaml

    from fixtures.devcloud import flotte
    from fixtures.devcloud_sites import cluster_spec, instance_quota, public_hosts

    env = dict(dc.env, FLOTTE_HOME=str(tmp / name), DOCKER_CONFIG=str(tmp / f"{name}-docker"))
    with contextlib.ExitStack() as stack:
        hosts: list[Any] = []
        key = tmp / "none"
        if two_sites:
            stack.enter_context(instance_quota(dc, 3))
            keys = tmp / f"{name}-lab"  # a key of its own per run
            keys.mkdir()
            lab, hosts = stack.enter_context(public_hosts(dc, keys, name, 2))
            key = lab.key
        spec = cluster_spec(dc, name, workers=4, hosts=[h.ip for h in hosts], key=key)
        path = tmp / f"{name}.yaml"
        path.write_text(yaml.safe_dump(spec))
        started = time.monotonic()
        try:
            flotte("apply", "-f", str(path), timeout=1200, env=env)
            took = time.monotonic() - started
            show = json.loads(flotte("cluster", "show", name, "-f", "json", env=env).stdout)
            ready = subprocess.run(
                ["docker", "--context", f"flotte-{name}", "node", "ls", "--format",
                 "{{.Status}}"],
                env=env, capture_output=True, text=True, timeout=120, check=True,
            ).stdout.split()  # fmt: skip
        finally:
            deleting = time.monotonic()
            flotte("cluster", "delete", name, timeout=900, env=env, check=False)
            delete_s = time.monotonic() - deleting
    groups = [n["nodegroup"] for n in show["nodes"]]
    assert ready.count("Ready") == 5 and len(groups) == 5, (ready, groups)
    return {
        "ready_s": round(took, 1),
        "delete_s": round(delete_s, 1),
        "on_devcloud": len(groups) - groups.count("rack"),
        "on_ssh": groups.count("rack"),
    }


def devcloud_figures(runs: int) -> dict[str, Any]:
    """Both clusters on Docker-backed devcloud, one after the other, in one run."""
    import uuid

    from fixtures.devcloud import MODE_LOCK, DevCloud, devcloud_dir, flotte
    from fixtures.machine_lock import machine_wide

    root = devcloud_dir()
    dc = DevCloud(root=root, clouds_yaml=root / "clouds.yaml")
    os.environ["OS_CLIENT_CONFIG_FILE"] = str(dc.clouds_yaml)
    up = ("devcloud", "up", "--dir", str(root), "--clouds-yaml", "none")
    waited = time.monotonic()
    out: dict[str, Any] = {"runs": {"one_site": [], "two_sites": []}}
    with machine_wide(MODE_LOCK), tempfile.TemporaryDirectory() as tmp:
        out["lock_wait_s"] = round(time.monotonic() - waited, 1)
        flotte(*up, "--docker", timeout=900)
        try:
            for _ in range(runs):
                tag = uuid.uuid4().hex[:4]
                for kind in ("one_site", "two_sites"):
                    name = f"bo{kind[:3]}{tag}"
                    run = devcloud_run(dc, Path(tmp), name, kind == "two_sites")
                    out["runs"][kind].append(run)
                    print(kind, json.dumps(run), file=sys.stderr)  # kept if a later run fails
        finally:
            flotte(*up, "--no-docker", timeout=300)
    one = [r["ready_s"] for r in out["runs"]["one_site"]]
    two = [r["ready_s"] for r in out["runs"]["two_sites"]]
    out.update(
        {
            "what": "time from `flotte apply` to 5 nodes Ready in one Swarm (1 manager + 4 "
            "workers), Docker-backed devcloud; two sites: quota room 3, 2 workers "
            "overflow onto 2 SSH hosts, WireGuard mesh",
            "one_site_ready_s": statistics.median(one),
            "two_sites_ready_s": statistics.median(two),
            "two_sites_over_one": round(statistics.median(two) / statistics.median(one), 2),
        }
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-mesh", action="store_true")
    parser.add_argument("--clusters", action="store_true", help="local clusters, minutes")
    parser.add_argument("--devcloud", action="store_true", help="devcloud + SSH, ~10 minutes")
    parser.add_argument("--devcloud-runs", type=int, default=1)
    args = parser.parse_args()
    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load": [round(x, 2) for x in os.getloadavg()],
        "overflow": overflow_figures(args.runs),
    }
    if not args.skip_mesh:
        result["mesh"] = mesh_figures()
    if args.clusters:
        result["clusters"] = cluster_figures(args.runs)
    if args.devcloud:
        result["devcloud"] = devcloud_figures(args.devcloud_runs)
    result["load_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
