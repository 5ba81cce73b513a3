"""Benchmark Docker-backed devcloud: N servers booted in parallel until SSH and cloud-init.

    python bench/devcloud_docker_boot.py [-n 10]

Turns devcloud's Docker mode on (`flotte devcloud up --docker`; back off at the end
unless it was on before),
boots N servers with floating IPs on formation-net as the demo user, and reports
as JSON, from the first create call: all ACTIVE in Nova, all containers running,
sshd answering at every floating IP, cloud-init's boot-finished in every server;
then the time to delete everything. This is the floor under the issue 6 target
(a 10-node Swarm Ready in <= 90 s), before any provisioning.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def _banner(address: str) -> bool:
    try:
        with socket.create_connection((address, 22), timeout=1) as sock:
            return sock.recv(8).startswith(b"SSH-")
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=10)
    args = parser.parse_args()
    import docker
    import openstack

    from flotte.devcloud.layout import default_dir

    root = default_dir()
    status = subprocess.run(
        [sys.executable, "-m", "flotte.cli.main", "devcloud", "status", "-f", "json"],
        check=True,
        capture_output=True,
        text=True,
    )
    was_on = bool(json.loads(status.stdout).get("docker_compute"))
    subprocess.run(
        [sys.executable, "-m", "flotte.cli.main", "devcloud", "up", "--docker"],
        check=True,
        capture_output=True,
    )
    os.environ["OS_CLIENT_CONFIG_FILE"] = str(root / "clouds.yaml")
    conn = openstack.connect(cloud="devcloud-demo")
    client = docker.from_env()
    net = conn.network.find_network("formation-net", ignore_missing=False)
    ext = conn.network.find_network("ext-net", ignore_missing=False)
    image = conn.image.find_image("debian-12", ignore_missing=False)
    prefix = f"bench-{uuid.uuid4().hex[:6]}"
    marks: dict[str, float] = {}
    t0 = time.monotonic()

    def boot(i: int) -> tuple[Any, str]:
        server = conn.compute.create_server(
            name=f"{prefix}-{i}", image_id=image.id, flavor_id="1", networks=[{"uuid": net.id}]
        )
        server = conn.compute.wait_for_server(server, wait=300)
        port = next(iter(conn.network.ports(device_id=server.id)))
        fip = conn.network.create_ip(floating_network_id=ext.id, port_id=port.id)
        return server, fip.floating_ip_address

    with ThreadPoolExecutor(max_workers=args.n) as pool:
        booted = list(pool.map(boot, range(args.n)))
    marks["all_active_with_fip_s"] = time.monotonic() - t0
    ids = {s.id for s, _ in booted}

    def containers() -> list[Any]:
        return [
            c
            for c in client.containers.list(
                ignore_removed=True, filters={"label": "flotte.devcloud.server"}
            )
            if c.labels.get("flotte.devcloud.server") in ids
        ]

    while len(containers()) < args.n:
        time.sleep(0.2)
    marks["all_containers_running_s"] = time.monotonic() - t0
    pending = {a for _, a in booted}
    while pending:
        pending = {a for a in pending if not _banner(a)}
        time.sleep(0.2)
    marks["all_ssh_answering_s"] = time.monotonic() - t0
    waiting = containers()
    while waiting:
        waiting = [
            c
            for c in waiting
            if c.exec_run(["test", "-e", "/var/lib/cloud/instance/boot-finished"]).exit_code
        ]
        time.sleep(0.5)
    marks["all_cloud_init_finished_s"] = time.monotonic() - t0
    t1 = time.monotonic()
    for ip in conn.network.ips():
        if ip.port_id and any(p.device_id in ids for p in conn.network.ports(id=ip.port_id)):
            conn.network.delete_ip(ip)
    with ThreadPoolExecutor(max_workers=args.n) as pool:
        list(pool.map(lambda s: conn.compute.delete_server(s[0]), booted))
        list(pool.map(lambda s: conn.compute.wait_for_delete(s[0], wait=300), booted))
    while containers():
        time.sleep(0.2)
    marks["teardown_s"] = time.monotonic() - t1
    print(json.dumps({"servers": args.n, **{k: round(v, 1) for k, v in marks.items()}}, indent=2))
    conn.close()
    client.close()
    if not was_on:
        subprocess.run(
            [sys.executable, "-m", "flotte.cli.main", "devcloud", "up", "--no-docker"],
            check=True,
            capture_output=True,
        )


if __name__ == "__main__":
    main()
