"""Talking to a node's Docker engine over TLS with the installation's client certificate
(or the engine's own client material, ``Endpoint.tls_dir``, for imported machines)."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from flotte.client_tls import engine_files, engine_ssl_context
from flotte.errors import ProvisionError, TimeoutError_
from flotte.models import Endpoint
from flotte.pki import CertificateAuthority

__all__ = [
    "Endpoint",
    "client",
    "connected",
    "engine_version",
    "get",
    "ping",
    "ssl_context",
    "wait_engine",
    "wait_version",
]

if TYPE_CHECKING:
    import docker

API_VERSION = "1.41"  # Docker 20.10, the oldest engine Debian and Ubuntu LTS still ship


def client(endpoint: Endpoint, ca: CertificateAuthority, timeout: int = 60) -> docker.DockerClient:
    """A docker SDK client for ``endpoint`` that verifies the engine against flotte's CA."""
    import docker
    from docker.tls import TLSConfig

    ca_file, cert, key = engine_files(endpoint.tls_dir, ca)
    tls = TLSConfig(client_cert=(str(cert), str(key)), ca_cert=str(ca_file), verify=True)
    cli = docker.DockerClient(
        base_url=f"https://{endpoint.host}:{endpoint.docker_port}",
        tls=tls,
        timeout=timeout,
        version=API_VERSION,  # "auto" would make a request before trust_env is turned off
    )
    # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE replace flotte's CA, and sends
    # node traffic through HTTP(S)_PROXY: neither is right for a node's engine.
    cli.api.trust_env = False
    return cli


@contextmanager
def connected(
    endpoint: Endpoint, ca: CertificateAuthority, timeout: int = 60
) -> Iterator[docker.DockerClient]:
    """``client`` as a context manager that closes its connections afterwards."""
    cli = client(endpoint, ca, timeout)
    try:
        yield cli
    finally:
        cli.close()


def ssl_context(ca: CertificateAuthority, tls_dir: str | None = None) -> ssl.SSLContext:
    return engine_ssl_context(tls_dir, ca)


async def get(
    host: str,
    port: int,
    ctx: ssl.SSLContext,
    path: str = "/_ping",
    timeout: float = 3.0,
    *,
    body: bool = True,
) -> bytes | None:
    """The body of ``GET path`` over TLS verified against flotte's CA, or None when it
    does not answer 200. ``body=False`` stops at the status line (b"" when 200)."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=ctx, server_hostname=host), timeout
        )
    except (OSError, TimeoutError, ssl.SSLError):
        return None
    try:
        # HTTP/1.0: the engine closes after one plain (never chunked) answer
        request = f"GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n"
        writer.write(request.encode())
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), timeout)
        if status.split(b" ", 2)[1:2] != [b"200"]:
            return None
        if not body:
            return b""
        data = await asyncio.wait_for(reader.read(), timeout)
    except (OSError, TimeoutError, ssl.SSLError):
        return None
    finally:
        writer.close()
    return data.partition(b"\r\n\r\n")[2]


async def ping(endpoint: Endpoint, ctx: ssl.SSLContext, timeout: float = 2.0) -> bool:
    """True when the engine answers ``GET /_ping`` over verified TLS."""
    found = await get(endpoint.host, endpoint.docker_port, ctx, "/_ping", timeout, body=False)
    return found is not None


async def wait_version(
    host: str, ca: CertificateAuthority, timeout: float, port: int = 2376
) -> str:
    """Wait until the engine at ``host`` answers over TLS from here; returns its version."""
    ctx = ssl_context(ca)
    deadline = time.monotonic() + timeout
    while (body := await get(host, port, ctx, "/version")) is None:
        if time.monotonic() > deadline:
            raise ProvisionError(
                f"the Docker API at {host}:{port} does not answer over TLS",
                hint=f"check that a firewall lets TCP {port} in from this machine",
            )
        await asyncio.sleep(0.1)
    return _version(body)


async def engine_version(endpoint: Endpoint, ca: CertificateAuthority, timeout: float = 3.0) -> str:
    """What the engine says it is (``GET /version``), or "" when it does not answer."""
    ctx = ssl_context(ca, endpoint.tls_dir)
    body = await get(endpoint.host, endpoint.docker_port, ctx, "/version", timeout)
    return _version(body) if body is not None else ""


def _version(body: bytes) -> str:
    try:
        found = json.loads(body)
    except ValueError:
        return ""
    version = found.get("Version") if isinstance(found, dict) else None
    return version if isinstance(version, str) else ""


async def wait_engine(
    endpoint: Endpoint,
    ca: CertificateAuthority,
    timeout: float = 60.0,
    what: str = "",
    alive: Callable[[], Awaitable[None]] | None = None,
) -> float:
    """Wait until the engine answers over TLS; return the seconds waited.

    ``alive`` is called between attempts and raises when waiting is pointless (the
    node died), so a broken engine fails in a second instead of at the timeout.
    """
    ctx = ssl_context(ca, endpoint.tls_dir)
    start = time.monotonic()
    delay = 0.05
    while True:
        attempt = time.monotonic()
        if await ping(endpoint, ctx, timeout=1.0):
            return time.monotonic() - start
        # A slow refusal means nothing answers at that address any more: ask at once.
        if alive is not None and (delay >= 0.2 or time.monotonic() - attempt > 0.5):
            await alive()
        if time.monotonic() - start > timeout:
            raise TimeoutError_(
                f"the Docker engine of {what or endpoint.host} did not answer on "
                f"{endpoint.docker_url} within {timeout:.0f} s"
            )
        await asyncio.sleep(delay)
        delay = min(delay * 1.5, 1.0)
