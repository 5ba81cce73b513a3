"""Benchmark devcloud's bare metal (issue 18); prints JSON.

    python bench/devcloud_ironic.py [--dir DIR] [--no-cold] [--rounds 2]

On a running devcloud (DIR, default devcloud's own directory), Docker-backed:

- cold: the first `up --ironic` of a devcloud that never had it (pip install of
  Ironic into the services' venv, its database, enrolment of the nodes, the ironic
  nova-compute, nodes schedulable). To get there the bench turns Ironic off, pip
  uninstalls its packages (those marked `# up --ironic` in constraints.txt), drops
  its database and forgets its state first;
- warm: `up --ironic` after `up --no-ironic` (installed, data kept);
- memory: PSS of Ironic's two processes, and devcloud's total with and without them;
- create to Docker over TLS, bare metal against VM, same run: `flotte machine create
  -d openstack` with the talk's flags on `bm.small` (`--openstack-server-type bm`) and
  on `m1.small`, alternately, each until its TLS engine answers `docker info`; then
  `machine rm` (and, for bare metal, until the node is `available` again).

It leaves Docker mode and bare metal as they were.
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
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def _flotte(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(
        [sys.executable, "-m", "flotte.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
        check=False,
    )
    if res.returncode != 0:
        raise SystemExit(f"flotte {' '.join(args)} failed:\n{res.stderr[-2000:]}")
    return res


def _up(root: Path, *flags: str) -> float:
    t0 = time.monotonic()
    _flotte("devcloud", "up", "--dir", str(root), "--clouds-yaml", "none", *flags)
    return round(time.monotonic() - t0, 1)


def _make_cold(root: Path) -> None:
    """Ironic off, uninstalled, its database dropped, its state forgotten."""
    from flotte.devcloud import install, services
    from flotte.devcloud.layout import Layout

    _up(root, "--no-ironic")
    layout = Layout(root)
    marked = [
        line.split("==")[0]
        for line in install.data_file("constraints.txt").decode().splitlines()
        if line.rstrip().endswith(install.IRONIC_MARK.decode()) and "==" in line
    ]
    subprocess.run(
        [str(layout.bin("python")), "-m", "pip", "uninstall", "-y", "-q", *marked],
        capture_output=True,
        check=True,
    )
    (layout.venv / ".flotte-ironic").unlink(missing_ok=True)
    services.run_tool(
        layout,
        "mariadb",
        ["mariadb", "--no-defaults", f"--socket={layout.mysql_socket}", "-uroot", "-e",
         "DROP DATABASE IF EXISTS ironic; CREATE DATABASE ironic CHARACTER SET utf8mb4"],
        "resetting Ironic's database",
    )  # fmt: skip
    state = json.loads(layout.state_file.read_text())
    for key in ("ironic_synced", "ironic_config", "ironic_boot"):
        state.pop(key, None)
    layout.state_file.write_text(json.dumps(state, indent=2))


def _memory(root: Path) -> dict[str, Any]:
    from flotte.devcloud.cloud import DevCloud

    status = DevCloud(root, clouds_yaml=None).status()
    by_name = {p["name"]: p["memory_mib"] for p in status["processes"]}
    return {"total_mib": status["memory_mib"], "by_process_mib": by_name}


def _create_to_tls(kind: str, home: Path) -> dict[str, float]:
    """One machine from create to `docker info` over TLS, then its removal."""
    import openstack

    env = dict(os.environ, FLOTTE_HOME=str(home), DOCKER_CONFIG=str(home / "docker"))
    name = f"bench-{kind}-{os.urandom(3).hex()}"
    flavor = ["--openstack-server-type", "bm", "--openstack-flavor-name", "bm.small"]
    if kind == "vm":
        flavor = ["--openstack-flavor-name", "m1.small"]
    t0 = time.monotonic()
    _flotte(
        "machine", "create", "-d", "openstack", "--openstack-cloud", "devcloud-demo", *flavor,
        "--openstack-image-name", "debian-12", "--openstack-net-name", "formation-net",
        "--openstack-floatingip-pool", "ext-net", "--openstack-ssh-user", "debian", name,
        env=env,
    )  # fmt: skip
    subprocess.run(
        ["docker", "--context", f"flotte-{name}", "info"],
        env=env,
        capture_output=True,
        check=True,
        timeout=120,
    )
    out = {"create_to_tls_s": round(time.monotonic() - t0, 1)}
    t0 = time.monotonic()
    _flotte("machine", "rm", "-y", name, env=env)
    out["rm_s"] = round(time.monotonic() - t0, 1)
    if kind == "bm":
        conn = openstack.connect(cloud="devcloud")
        while any(
            n.provision_state != "available"
            for n in conn.baremetal.nodes(details=True)
            if n.name.startswith("devcloud-bm-")
        ):
            time.sleep(0.5)
        out["rm_to_node_available_s"] = round(time.monotonic() - t0, 1)
        conn.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--no-cold", action="store_true", help="skip the cold `up --ironic`")
    parser.add_argument("--rounds", type=int, default=2, help="machines of each kind")
    args = parser.parse_args()
    from flotte.devcloud.layout import default_dir

    root = (args.dir or default_dir()).resolve()
    os.environ["OS_CLIENT_CONFIG_FILE"] = str(root / "clouds.yaml")
    state_file = root / "state.json"
    before = json.loads(state_file.read_text()) if state_file.exists() else {}
    out: dict[str, Any] = {"dir": str(root)}
    try:
        _up(root, "--docker", "--no-ironic")
        out["memory_without_ironic"] = _memory(root)
        if not args.no_cold:
            _make_cold(root)
            out["cold_up_ironic_s"] = _up(root, "--ironic")
            _up(root, "--no-ironic")
        out["warm_up_ironic_s"] = _up(root, "--ironic")
        out["noop_up_s"] = _up(root)
        mem = _memory(root)
        out["memory_with_ironic"] = mem
        out["ironic_extra_mib"] = round(
            sum(mem["by_process_mib"].get(p, 0) for p in ("ironic", "nova-compute-ironic")), 1
        )
        t0 = time.monotonic()
        _up(root, "--no-ironic")
        out["no_ironic_s"] = round(time.monotonic() - t0, 1)
        _up(root, "--ironic")
        runs: dict[str, list[dict[str, float]]] = {"bm": [], "vm": []}
        with tempfile.TemporaryDirectory(prefix="bench-ironic-") as home:
            for _ in range(args.rounds):
                for kind in ("vm", "bm"):
                    runs[kind].append(_create_to_tls(kind, Path(home)))
        out["machines"] = runs
        out["median_create_to_tls_s"] = {
            kind: statistics.median(r["create_to_tls_s"] for r in rs) for kind, rs in runs.items()
        }
    finally:
        flags = ["--docker" if before.get("docker") else "--no-docker"]
        flags.append("--ironic" if before.get("ironic") else "--no-ironic")
        _up(root, *flags)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
