"""Swarm readiness and removal with partial node records from a manager's engine.

A node that has just joined is listed before its ``Description`` (hostname) is filled
in; an engine may leave out other fields too. A real 2-node swarm is put behind a TLS
proxy (a server certificate of the installation's CA, client certificates checked)
that forwards every request to the real manager and strips fields from what
``GET /nodes`` answers, for a number of answers or for good.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import docker
import pytest

from fixtures.local import Flotte
from flotte.coe.swarm import Swarm
from flotte.errors import TimeoutError_
from flotte.models import Endpoint
from flotte.pki import CertificateAuthority

pytestmark = pytest.mark.docker

Mangle = Callable[[str, Any], Any]


class StrippingProxy:
    """TLS in, TLS out; ``mangle(path, json)`` rewrites JSON answers on the way back."""

    def __init__(self, ca: CertificateAuthority, target: Endpoint, tmp: Path) -> None:
        server = ca.server_cert("proxy", ["127.0.0.1"])
        (tmp / "p.pem").write_bytes(server.cert_pem)
        (tmp / "p-key.pem").write_bytes(server.key_pem)
        self.mangle: Mangle = lambda path, data: data
        self.requests: list[str] = []
        sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        sctx.load_cert_chain(tmp / "p.pem", tmp / "p-key.pem")
        sctx.load_verify_locations(ca.ca_path)
        sctx.verify_mode = ssl.CERT_REQUIRED
        cctx = ssl.create_default_context(cafile=str(ca.ca_path))
        cctx.load_cert_chain(ca.client.cert, ca.client.key)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                up = http.client.HTTPSConnection(
                    target.host, target.docker_port, context=cctx, timeout=30
                )
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                up.request(self.command, self.path, body=body, headers=headers)
                resp = up.getresponse()
                data = resp.read()
                proxy.requests.append(self.path)
                if "json" in (resp.getheader("Content-Type") or "") and data:
                    data = json.dumps(proxy.mangle(self.path, json.loads(data))).encode()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                up.close()

            do_GET = do_POST = do_DELETE = do_HEAD = _forward

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = sctx.wrap_socket(self.server.socket, server_side=True)
        self.endpoint = Endpoint("127.0.0.1", docker_port=self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _listed(path: str) -> bool:
    return path.split("?")[0].rstrip("/").endswith("/nodes")


@pytest.fixture
def swarm2(flotte: Flotte, tmp_path: Path) -> Iterator[tuple[CertificateAuthority, StrippingProxy]]:
    flotte("cluster", "create", "part", "--driver", "local", "--node-count", "1")
    ca = CertificateAuthority(flotte.home / "secrets" / "certs").ensure()
    url = flotte("machine", "url", "part-master-0").stdout.strip()
    host, port = url.removeprefix("tcp://").rsplit(":", 1)
    proxy = StrippingProxy(ca, Endpoint(host, docker_port=int(port)), tmp_path)
    try:
        yield ca, proxy
    finally:
        proxy.close()
        flotte("cluster", "delete", "part", timeout=600, check=False)


def test_readiness_waits_through_nodes_without_hostname(
    swarm2: tuple[CertificateAuthority, StrippingProxy],
) -> None:
    ca, proxy = swarm2
    left = {"n": 3}

    def just_joined(path: str, data: Any) -> Any:
        if _listed(path) and left["n"] > 0:
            left["n"] -= 1
            for node in data:
                node.pop("Description", None)  # listed before its Description is filled
                node["Status"] = {}
            data.append({"ID": "half", "Spec": None, "Status": "?", "ManagerStatus": []})
        return data

    proxy.mangle = just_joined
    listed = asyncio.run(Swarm(ca).wait_ready(proxy.endpoint, {"part-master-0", "part-node-0"}, 60))
    assert left["n"] == 0
    # the listing that ended the wait carries each Ready node's engine version
    ready = {v["hostname"]: v["engine_version"] for v in listed if v["state"] == "ready"}
    assert set(ready) == {"part-master-0", "part-node-0"}
    assert all(re.match(r"\d+\.\d+", v) for v in ready.values()), ready
    views = asyncio.run(Swarm(ca).nodes(proxy.endpoint))
    assert {v["hostname"] for v in views} == {"part-master-0", "part-node-0"}


def test_readiness_that_never_comes_is_a_timeout_not_a_crash(
    swarm2: tuple[CertificateAuthority, StrippingProxy],
) -> None:
    ca, proxy = swarm2
    proxy.mangle = lambda path, data: [{}] * 3 if _listed(path) else data
    with pytest.raises(TimeoutError_, match="part-node-0"):
        asyncio.run(Swarm(ca).wait_ready(proxy.endpoint, {"part-node-0"}, 2))


def test_removal_finds_a_node_listed_without_hostname(
    flotte: Flotte,
    swarm2: tuple[CertificateAuthority, StrippingProxy],
    docker_engine: docker.DockerClient,
) -> None:
    ca, proxy = swarm2

    def no_descriptions(path: str, data: Any) -> Any:
        if _listed(path):
            for node in data:
                node.pop("Description", None)
        return data

    proxy.mangle = no_descriptions
    url = flotte("machine", "url", "part-node-0").stdout.strip()
    host, port = url.removeprefix("tcp://").rsplit(":", 1)
    asyncio.run(
        Swarm(ca).remove(proxy.endpoint, Endpoint(host, docker_port=int(port)), "part-node-0")
    )
    listed = subprocess.run(
        ["docker", "--context", "flotte-part", "node", "ls", "--format", "{{.Hostname}}"],
        capture_output=True,
        text=True,
        env=flotte.env,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == ["part-master-0"]
