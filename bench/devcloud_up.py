"""Benchmark devcloud: time to ready (cold, warm, restart), memory, one boot; prints JSON.

    python bench/devcloud_up.py [--cold] [--dir DIR]

- cold: nothing in DIR (venv created, packages installed by pip, databases made);
  apt packages are whatever the machine has (their install is ~16 s when absent).
- warm: packages installed, data wiped (`down --wipe` keeps the venv).
- restart: data kept, processes stopped (`down` then `up`).

As root with `unshare` available, the run happens in a private network namespace
(own loopback), so it neither disturbs nor is disturbed by a devcloud already
running on this machine's 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def _in_namespace() -> bool:
    return os.environ.get("FLOTTE_BENCH_NETNS") == "1"


def _reexec_in_namespace(extra_env: dict[str, str]) -> None:
    if _in_namespace() or os.geteuid() != 0 or shutil.which("unshare") is None:
        return
    script = 'ip link set lo up && exec "$0" "$@"'
    env = dict(os.environ, FLOTTE_BENCH_NETNS="1", **extra_env)
    argv = ["unshare", "-n", "sh", "-c", script, sys.executable, *sys.argv]
    sys.exit(subprocess.run(argv, env=env, check=False).returncode)


def _up(root: Path) -> dict[str, Any]:
    from flotte.devcloud.cloud import DevCloud

    cloud = DevCloud(root, clouds_yaml=None)
    t0 = time.monotonic()
    result = cloud.up()
    return {"seconds": round(time.monotonic() - t0, 1), "steps": dict(result.steps)}


def _boot_seconds(root: Path) -> float:
    import openstack

    os.environ["OS_CLIENT_CONFIG_FILE"] = str(root / "clouds.yaml")
    conn = openstack.connect(cloud="devcloud-demo")
    net = conn.network.find_network("formation-net", ignore_missing=False)
    image = conn.image.find_image("debian-12", ignore_missing=False)
    t0 = time.monotonic()
    server = conn.compute.create_server(
        name="bench", image_id=image.id, flavor_id="1", networks=[{"uuid": net.id}]
    )
    conn.compute.wait_for_server(server, wait=120)
    seconds = time.monotonic() - t0
    conn.compute.delete_server(server)
    conn.compute.wait_for_delete(server, wait=120)
    conn.close()
    return round(seconds, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--cold", action="store_true", help="start from an empty directory")
    args = parser.parse_args()
    from flotte.devcloud import install
    from flotte.devcloud.cloud import DevCloud
    from flotte.devcloud.layout import Layout

    made = args.dir is None and "FLOTTE_BENCH_DIR" not in os.environ
    root = Path(
        os.environ.get("FLOTTE_BENCH_DIR")
        or args.dir
        or tempfile.mkdtemp(prefix="dcbench-", dir="/tmp")
    ).resolve()
    if not _in_namespace():
        # Packages first, in the machine's own network namespace (PyPI is reachable
        # there, not from the private one the rest runs in).
        if args.cold and root.exists():
            DevCloud(root, clouds_yaml=None).down(wipe=True)
            shutil.rmtree(root)
        layout = Layout(root)
        layout.ensure()
        t0 = time.monotonic()
        install.install_system_packages(layout)
        install.install_services(layout)
        pip_s = round(time.monotonic() - t0, 1)
        _reexec_in_namespace(
            {
                "FLOTTE_BENCH_DIR": str(root),
                "FLOTTE_BENCH_PIP_S": str(pip_s),
                "FLOTTE_BENCH_DIR_MADE": "1" if made else "0",
            }
        )
        os.environ["FLOTTE_BENCH_PIP_S"] = str(pip_s)  # no namespace: run here
    cloud = DevCloud(root, clouds_yaml=None)
    out: dict[str, Any] = {"dir": str(root), "netns": _in_namespace()}
    out["packages_s"] = float(os.environ["FLOTTE_BENCH_PIP_S"])
    try:
        first = _up(root)
        out["first_up_after_packages"] = first
        out["cold_total_s"] = round(out["packages_s"] + first["seconds"], 1)
        status = cloud.status()
        out["memory_mib"] = status["memory_mib"]
        out["memory_by_process_mib"] = {p["name"]: p["memory_mib"] for p in status["processes"]}
        out["boot_to_active_s"] = _boot_seconds(root)
        t0 = time.monotonic()
        cloud.down()
        out["down_s"] = round(time.monotonic() - t0, 1)
        out["restart"] = _up(root)
        cloud.down(wipe=True)
        out["warm"] = _up(root)
        venv = root / "venv"
        out["venv_mib"] = round(
            sum(f.stat().st_size for f in venv.rglob("*") if f.is_file()) / 2**20
        )
    finally:
        cloud.down(wipe=True)
        if made or os.environ.get("FLOTTE_BENCH_DIR_MADE") == "1":
            shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
