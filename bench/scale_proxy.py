"""A counting, delaying HTTP proxy on loopback: the peer-side call counter of bench/scale.py.

It sits between flotte (or the bare SDK floor) and a real test server (moto, devcloud's
OpenStack services), forwards every request, optionally sleeps ``latency`` seconds
before forwarding (a cloud API's round trip), and counts requests by operation: EC2's
``Action=`` for the query API, ``METHOD /path`` (IDs folded to ``{id}``) otherwise. The
count is taken where the cloud would see it, so nothing in flotte is patched or hooked.
"""

from __future__ import annotations

import http.client
import re
import threading
import time
import urllib.parse
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# Hop-by-hop headers belong to one connection (RFC 9110 7.6.1).
_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer"}
# UUIDs, hex IDs and numbers in a path become {id}, so /servers/<uuid> is one operation.
_ID = re.compile(r"/(?:[0-9a-f]{8}-[0-9a-f-]{27}|[0-9a-f]{32}|[0-9]+|i-[0-9a-f]+)(?=/|$)")


def operation(method: str, path: str, body: bytes) -> str:
    """The operation a request stands for: ``RunInstances`` or ``POST /v2.1/servers``."""
    if b"Action=" in body:
        action = urllib.parse.parse_qs(body.decode("latin-1")).get("Action")
        if action:
            return action[0]
    return f"{method} {_ID.sub('/{id}', urllib.parse.urlsplit(path).path)}"


class CountingProxy:
    """``with CountingProxy(target, latency) as proxy:`` then point clients at proxy.url."""

    def __init__(self, target: str, latency: float = 0.0) -> None:
        parsed = urllib.parse.urlsplit(target)
        self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self.latency = latency
        self.counts: Counter[str] = Counter()
        # (operation, received, answered) in time.monotonic(): where a run's wall goes
        self.timeline: list[tuple[str, float, float]] = []
        self._lock = threading.Lock()
        self._local = threading.local()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                received, op = time.monotonic(), operation(self.command, self.path, body)
                with proxy._lock:
                    proxy.counts[op] += 1
                if proxy.latency:
                    time.sleep(proxy.latency)
                status, headers, data = proxy._send(self.command, self.path, self.headers, body)
                self.send_response(status)
                for key, value in headers:
                    if key.lower() not in _HOP and key.lower() != "content-length":
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                with proxy._lock:
                    proxy.timeline.append((op, received, time.monotonic()))

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _forward

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.request_queue_size = 1024
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _send(
        self, method: str, path: str, headers: Any, body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        # One upstream connection per proxy thread, kept alive between requests.
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        for attempt in (0, 1):
            if conn is None:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=600)
                self._local.conn = conn
            try:
                forwarded = {k: v for k, v in headers.items() if k.lower() not in _HOP}
                forwarded["Host"] = f"{self.host}:{self.port}"
                conn.request(method, path, body=body or None, headers=forwarded)
                response = conn.getresponse()
                return response.status, response.getheaders(), response.read()
            except (http.client.HTTPException, OSError):
                conn.close()
                conn = None
                self._local.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self.counts)

    def __enter__(self) -> CountingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def delta(after: Counter[str], before: Counter[str]) -> dict[str, int]:
    """Requests made between two snapshots, by operation."""
    return {k: after[k] - before[k] for k in sorted(after) if after[k] - before[k]}


def phases(proxies: dict[str, CountingProxy], start: float, end: float) -> dict[str, Any]:
    """Where a run's wall went, by operation: how many, and the seconds after ``start``
    of the first request received and the last answered (between ``start`` and ``end``,
    time.monotonic()), in the order the operations began."""
    spans: dict[str, list[float]] = {}
    for service, proxy in proxies.items():
        with proxy._lock:
            rows = list(proxy.timeline)
        for op, received, answered in rows:
            if start <= received <= end:
                span = spans.setdefault(f"{service}: {op}", [0, received, answered])
                span[0] += 1
                span[1], span[2] = min(span[1], received), max(span[2], answered)
    ordered = sorted(spans.items(), key=lambda item: item[1][1])
    return {
        op: {"n": int(n), "first_s": round(a - start, 1), "last_s": round(b - start, 1)}
        for op, (n, a, b) in ordered
    }
