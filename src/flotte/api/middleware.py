"""One ASGI middleware for every request: a request id, Magnum's version headers, and a
structured access log line (JSON: method, path, status, milliseconds, request id).

Plain ASGI (no BaseHTTPMiddleware) because it runs on every request of a list that must
answer in milliseconds.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flotte.api import versions
from flotte.api.errors import ApiError, error_body

access = logging.getLogger("flotte.api.access")
log = logging.getLogger("flotte.api")


class RequestMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rid = "req-" + str(uuid.uuid4())
        state = scope.setdefault("state", {})
        state["request_id"] = rid
        raw = dict(scope.get("headers") or [])
        header = raw.get(versions.HEADER.encode()) or raw.get(versions.LEGACY.encode())
        status = [500]
        began = [False]
        extra = [(b"x-openstack-request-id", rid.encode())]
        try:
            version = versions.negotiate(header.decode("latin-1") if header else None)
        except ApiError as err:
            await _reply(send, err.status, err.message, rid, extra + versions.headers(versions.MIN))
            self._log(scope, err.status, started, rid)
            return
        state["api_version"] = version
        extra += versions.headers(version)

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                began[0] = True
                status[0] = message["status"]
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            log.exception("request %s failed", rid)
            status[0] = 500
            if not began[0]:
                title = f"Internal error (request {rid}): see the server's log"
                await _reply(send, 500, title, rid, extra)
        finally:
            self._log(scope, status[0], started, rid)

    @staticmethod
    def _log(scope: Scope, status: int, started: float, rid: str) -> None:
        if not access.isEnabledFor(logging.INFO):
            return
        client = scope.get("client")
        record: dict[str, Any] = {
            "request_id": rid,
            "method": scope.get("method"),
            "path": scope.get("path"),
            "status": status,
            "ms": round((time.perf_counter() - started) * 1000, 2),
            "client": client[0] if client else None,
        }
        project = scope.get("state", {}).get("project_id")
        if project:
            record["project_id"] = project
        access.info(json.dumps(record))


async def _reply(
    send: Send, status: int, title: str, rid: str, headers: list[tuple[bytes, bytes]]
) -> None:
    body = json.dumps(error_body(status, title, rid=rid)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
