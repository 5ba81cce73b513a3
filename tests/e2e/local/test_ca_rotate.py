"""``flotte ca rotate`` on real engines: re-signed, reachable throughout, old CA useless.

A lone machine and a 2-node cluster on the local engine; the docker CLI (an independent
client) talks to them through flotte's contexts before, during (a paused rotation) and
after; an engine's certificate is read with a raw TLS handshake.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
from pathlib import Path

import docker
import pytest
from cryptography import x509

from fixtures.local import Flotte

pytestmark = pytest.mark.docker


def engine_cert(url: str) -> x509.Certificate:
    host, port = url.removeprefix("tcp://").rsplit(":", 1)
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with (
        socket.create_connection((host, int(port)), timeout=5) as sock,
        ctx.wrap_socket(sock) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def docker_cli(flotte: Flotte, *args: str, cert_path: Path | None = None) -> str:
    env = dict(flotte.env)
    if cert_path is not None:
        env.update(DOCKER_CERT_PATH=str(cert_path), DOCKER_TLS_VERIFY="1")
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def url_of(flotte: Flotte, name: str) -> str:
    return flotte("machine", "url", name).stdout.strip()


def test_rotation_re_signs_every_engine(
    flotte: Flotte, docker_engine: docker.DockerClient, tmp_path: Path
) -> None:
    flotte("machine", "create", "-d", "local", "solo")
    flotte("cluster", "create", "duo", "--driver", "local", "--node-count", "1")
    nodes = ["solo", "duo-master-0", "duo-node-0"]
    before = {n: engine_cert(url_of(flotte, n)).issuer for n in nodes}
    old_client = shutil.copytree(flotte.home / "secrets" / "certs", tmp_path / "old-client")
    old_key = (flotte.home / "secrets" / "ca" / "ca-key.pem").read_bytes()

    out = flotte("ca", "rotate", "-y", timeout=600)
    assert "3 engines re-signed" in out.stdout, out.stdout + out.stderr

    show = flotte("ca", "show", "-f", "json").stdout
    assert '"rotation": "idle"' in show
    assert (flotte.home / "secrets" / "ca" / "ca-key.pem").read_bytes() != old_key
    for n in nodes:
        cert = engine_cert(url_of(flotte, n))
        assert cert.issuer != before[n], n
    # flotte's contexts and DOCKER_CERT_PATH both carry the new files
    assert "solo" in docker_cli(flotte, "--context", "flotte-solo", "info", "--format", "{{.Name}}")
    assert docker_cli(flotte, "--context", "flotte-duo", "node", "ls", "-q").count("\n") == 2
    host = url_of(flotte, "solo")
    docker_cli(flotte, "-H", host, "version", cert_path=flotte.home / "secrets" / "certs")
    # the old CA is no use any more: its client certificate is refused
    refused = subprocess.run(
        ["docker", "-H", host, "version"],
        capture_output=True,
        text=True,
        env={**flotte.env, "DOCKER_CERT_PATH": str(old_client), "DOCKER_TLS_VERIFY": "1"},
        timeout=60,
    )
    assert refused.returncode != 0
    flotte("machine", "rm", "-y", "solo")
    flotte("cluster", "delete", "duo", timeout=600)
