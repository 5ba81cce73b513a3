"""Helpers of the docker-machine e2e tests: a host docker-machine set up, fingerprints."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import docker

from fixtures.docker_machine import MachineTLS, configure_engine, make_tls

HOST_STATE = r"""
sha256sum /etc/docker/* /etc/default/docker 2>/dev/null
ls -la --time-style=+%s /etc/docker /etc/default/docker 2>/dev/null
ls /etc/docker/flotte /var/lib/flotte 2>&1 | head -2
cat /proc/$(pidof dockerd)/stat | cut -d' ' -f1,22
docker ps -aq --no-trunc | sort
"""


def tree(root: Path) -> dict[str, tuple[str, int, float]]:
    return {
        str(p.relative_to(root)): (
            hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir",
            p.stat().st_mode,
            p.stat().st_mtime,
        )
        for p in sorted(root.rglob("*"))
    }


def tls_client(host: str, tls_dir: Path, port: int = 2376) -> docker.DockerClient:
    tls = docker.tls.TLSConfig(
        client_cert=(str(tls_dir / "cert.pem"), str(tls_dir / "key.pem")),
        ca_cert=str(tls_dir / "ca.pem"),
        verify=True,
    )
    client = docker.DockerClient(
        base_url=f"https://{host}:{port}", tls=tls, timeout=30, version="1.41"
    )
    client.api.trust_env = False  # this machine sets REQUESTS_CA_BUNDLE
    return client


def wait_engine(host: str, tls_dir: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            tls_client(host, tls_dir).ping()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def machine_host(ssh_host, tmp_path: Path) -> tuple[Any, MachineTLS]:
    """A docker test host whose engine docker-machine's way serves TLS on 2376."""
    host = ssh_host("docker")
    tls = make_tls(host.ip)
    configure_engine(host, tls, labels=("provider=generic",))
    own = tmp_path / "dm-client"
    own.mkdir()
    for name, data in (
        ("ca.pem", tls.ca_pem),
        ("cert.pem", tls.cert_pem),
        ("key.pem", tls.key_pem),
    ):
        (own / name).write_bytes(data)
    wait_engine(host.ip, own)
    return host, tls
