"""One HTTPS request to a node's engine, or to a swarm manager, for health checks.

Health rounds ask every node of every watched cluster every few seconds. The docker
SDK costs a worker thread, a requests session and a new TLS context per call; these
are plain asyncio requests over one verified TLS context per client certificate, so a
round over 50 nodes is 50 concurrent requests and one swarm listing.

Answers are untrusted: every field is read with a fallback, never indexed blindly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flotte.models import Endpoint
from flotte.pki import CertificateAuthority

API = "/v1.41"  # Docker 20.10, the oldest engine Debian and Ubuntu LTS still ship
MAX_BODY = 16 * 1024 * 1024  # a 1,000-node listing is about 3 MB


class ProbeError(Exception):
    """The engine did not answer, or answered with an error; ``str()`` says which."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status  # the HTTP status, when the engine answered one


def tls_context(ca: CertificateAuthority, tls_dir: str | None = None) -> ssl.SSLContext:
    """A client context that verifies engines against flotte's CA (or ``tls_dir``'s)."""
    if tls_dir:
        d = Path(tls_dir)
        ctx = ssl.create_default_context(cafile=str(d / "ca.pem"))
        ctx.load_cert_chain(str(d / "cert.pem"), str(d / "key.pem"))
        return ctx
    ctx = ssl.create_default_context(cafile=str(ca.ca_path))
    ctx.load_cert_chain(str(ca.client.cert), str(ca.client.key))
    return ctx


def dig(data: Any, *keys: str) -> Any:
    """``data[k1][k2]...`` or None when any level is missing or not a mapping."""
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def text(data: Any, *keys: str) -> str:
    value = dig(data, *keys)
    return value if isinstance(value, str) else ""


def _reason(err: BaseException) -> str:
    if isinstance(err, TimeoutError):
        return "timed out"
    if isinstance(err, ssl.SSLCertVerificationError):
        return f"TLS: {err.verify_message}"
    if isinstance(err, ssl.SSLError):
        return f"TLS: {err.reason or err}"
    if isinstance(err, OSError) and err.errno:
        return os.strerror(err.errno).lower()  # asyncio's own text names the address
    if isinstance(err, OSError) and err.strerror:
        return err.strerror.lower()
    return str(err) or type(err).__name__


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", ""):
        body = bytearray()
        while True:
            size_line = await reader.readline()
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                return bytes(body)
            if len(body) + size > MAX_BODY:
                raise ProbeError("answer too large")
            body += await reader.readexactly(size)
            await reader.readline()  # the CRLF after each chunk
    length = headers.get("content-length")
    if length is not None and length.isdigit():
        if int(length) > MAX_BODY:
            raise ProbeError("answer too large")
        return await reader.readexactly(int(length))
    return await reader.read(MAX_BODY)


async def get(endpoint: Endpoint, ctx: ssl.SSLContext, path: str, timeout: float) -> Any:
    """``GET /v1.41<path>`` on the engine; the decoded JSON, or ProbeError saying why."""

    async def exchange() -> tuple[int, bytes]:
        reader, writer = await asyncio.open_connection(
            endpoint.host, endpoint.docker_port, ssl=ctx, server_hostname=endpoint.host
        )
        try:
            writer.write(
                f"GET {API}{path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n".encode()
            )
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            parts = lines[0].split(" ", 2)
            status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
            headers = {
                k.strip().lower(): v.strip()
                for k, _, v in (line.partition(":") for line in lines[1:] if line)
            }
            return status, await _read_body(reader, headers)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 0.5)

    try:
        status, body = await asyncio.wait_for(exchange(), timeout)
    except ProbeError:
        raise
    except (OSError, TimeoutError, ssl.SSLError) as err:
        raise ProbeError(_reason(err)) from err
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as err:
        raise ProbeError("the answer was cut short or is not HTTP") from err
    try:
        data = json.loads(body) if body else None
    except ValueError as err:
        raise ProbeError(f"HTTP {status}: not JSON") from err
    if status != 200:
        message = text(data, "message") or body[:200].decode(errors="replace")
        raise ProbeError(f"HTTP {status}: {message.strip()}", status)
    return data


@dataclass(frozen=True)
class EngineInfo:
    """What ``GET /info`` says about the engine and its place in a swarm."""

    version: str = ""
    swarm_state: str = ""  # inactive, pending, active, error, locked
    node_id: str = ""
    cluster_id: str = ""  # managers only
    manager: bool = False  # ControlAvailable
    error: str = ""  # the swarm's own error, if any
    mem_total: int = 0


async def engine_info(endpoint: Endpoint, ctx: ssl.SSLContext, timeout: float) -> EngineInfo:
    data = await get(endpoint, ctx, "/info", timeout)
    mem = dig(data, "MemTotal")
    return EngineInfo(
        version=text(data, "ServerVersion"),
        swarm_state=text(data, "Swarm", "LocalNodeState"),
        node_id=text(data, "Swarm", "NodeID"),
        cluster_id=text(data, "Swarm", "Cluster", "ID"),
        manager=dig(data, "Swarm", "ControlAvailable") is True,
        error=text(data, "Swarm", "Error"),
        mem_total=mem if isinstance(mem, int) else 0,
    )


@dataclass(frozen=True)
class Member:
    """One node as the swarm's managers see it."""

    id: str
    hostname: str
    role: str  # manager, worker
    availability: str  # active, pause, drain
    state: str  # ready, down, unknown, disconnected
    addr: str = ""
    message: str = ""
    leader: bool = False
    reachability: str = ""  # managers: reachable, unreachable, unknown


def member(attrs: Any) -> Member:
    return Member(
        id=text(attrs, "ID"),
        hostname=text(attrs, "Description", "Hostname"),
        role=text(attrs, "Spec", "Role"),
        availability=text(attrs, "Spec", "Availability"),
        state=text(attrs, "Status", "State"),
        addr=text(attrs, "Status", "Addr"),
        message=text(attrs, "Status", "Message"),
        leader=dig(attrs, "ManagerStatus", "Leader") is True,
        reachability=text(attrs, "ManagerStatus", "Reachability"),
    )


async def members(manager: Endpoint, ctx: ssl.SSLContext, timeout: float) -> list[Member]:
    """The swarm's node list, as one manager gives it (HTTP 503: no leader)."""
    listed = await get(manager, ctx, "/nodes", timeout)
    if not isinstance(listed, list):
        raise ProbeError("the node list is not a list")
    return [member(n) for n in listed]
