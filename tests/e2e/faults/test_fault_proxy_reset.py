"""The fault proxy's ``reset`` fault, over real sockets: the client's connection is reset
(ECONNRESET, no answer, no FIN), and with ``after=True`` the server did get the request."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from fixtures.fault_proxy import FaultProxy, reset


class _Upstream(ThreadingHTTPServer):
    """A loopback HTTP server that answers 200 and counts the requests it served."""

    def __init__(self) -> None:
        self.served: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server.served.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.daemon_threads = True


@pytest.fixture
def upstream() -> Iterator[_Upstream]:
    server = _Upstream()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _post(proxy: FaultProxy, path: str) -> int:
    host, port = proxy.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("POST", path, body=b"x=1")
        return conn.getresponse().status
    finally:
        conn.close()


@pytest.mark.parametrize("after", [False, True])
def test_reset_answers_nothing_and_resets(upstream: _Upstream, after: bool) -> None:
    host, port = upstream.server_address[:2]
    with FaultProxy(f"http://{host!s}:{port}", [reset(1.0, after=after, limit=1)]) as proxy:
        # A FIN would be RemoteDisconnected (an empty answer); a reset is ECONNRESET.
        with pytest.raises(ConnectionResetError):
            _post(proxy, "/first")
        assert upstream.served == (["/first"] if after else [])
        assert proxy.stats.injected["reset"] == 1
        assert _post(proxy, "/second") == 200  # the limit is spent: forwarded again
    assert upstream.served[-1] == "/second"
