"""Helpers of the SSH tests: snapshots of a host, containers on it, TLS clients."""

from __future__ import annotations

import socket
import ssl

import docker

import fixtures.sshd_hosts as _sshd
from flotte.pki import CertificateAuthority

SNAPSHOT = r"""
echo "== etc-docker"; ls -la --time-style=+ /etc/docker 2>/dev/null | awk '{print $1, $NF}'
echo "== defaults"; cat /etc/default/docker 2>/dev/null
echo "== daemon.json"; cat /etc/docker/daemon.json 2>/dev/null
echo "== dropins"; ls /etc/systemd/system/docker.service.d 2>/dev/null
echo "== flotte"; ls /etc/docker/flotte /var/lib/flotte 2>/dev/null
echo "== packages"; dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' | awk '/^ii/ {print $2}'
echo "== group"; getent group docker | cut -d: -f1
echo "== containers"
command -v docker >/dev/null && docker ps -q --no-trunc | sort | while read c; do
  docker inspect -f '{{.Name}} {{.State.StartedAt}} {{.State.Pid}}' "$c"; done
echo "== listen"; (ss -ltn 2>/dev/null || true) | awk '{print $4}' | grep ':2376$' || true
"""


def snapshot(host: _sshd.TestHost) -> str:
    """What a flotte run must leave as it was on a host (rm) or must not touch (errors)."""
    return host.sh(SNAPSHOT)


def without_containers(snap: str) -> str:
    head, _, tail = snap.partition("== containers")
    return head + tail[tail.index("== listen") :]


TINY = (
    "set -e; docker image inspect tiny >/dev/null 2>&1 || { d=$(mktemp -d); "
    "cp /bin/busybox $d/; tar -C $d -c . | docker import - tiny >/dev/null; rm -rf $d; }"
)


def run_tiny(host: _sshd.TestHost, name: str) -> str:
    """Start a long-running container on the host's own engine; returns StartedAt+pid."""
    host.sh(
        f"{TINY}; docker run -d --stop-timeout 1 --name {name} tiny /busybox sleep 100000 >/dev/null"
    )
    return started(host, name)


def started(host: _sshd.TestHost, name: str) -> str:
    return host.sh(
        f"docker inspect -f '{{{{.State.StartedAt}}}} {{{{.State.Pid}}}}' {name}"
    ).strip()


def tls_client(ip: str, ca: CertificateAuthority) -> docker.DockerClient:
    tls = docker.tls.TLSConfig(
        client_cert=(str(ca.client.cert), str(ca.client.key)), ca_cert=str(ca.ca_path), verify=True
    )
    # A fixed API version skips the probe in the constructor, so that trust_env can be
    # switched off first: requests lets REQUESTS_CA_BUNDLE (set on this machine) win over
    # the session's own CA, and the engine's certificate is signed by flotte's CA.
    client = docker.DockerClient(base_url=f"https://{ip}:2376", tls=tls, timeout=30, version="1.41")
    client.api.trust_env = False
    return client


def refused_without_cert(ip: str, ca: CertificateAuthority) -> bool:
    """True when the engine refuses a TLS client that has no certificate."""
    ctx = ssl.create_default_context(cafile=str(ca.ca_path))
    try:
        with (
            socket.create_connection((ip, 2376), timeout=5) as sock,
            ctx.wrap_socket(sock, server_hostname=ip) as tls,
        ):
            tls.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = tls.recv(100)
        return not data.startswith(b"HTTP/1.1 200")
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        return True
