"""Errors as Magnum writes them: ``{"errors": [{"request_id", "code", "status", "title",
"detail", "links"}]}``; the official client prints ``title``, so it says what is wrong and
what to do. A client's mistake is always a 4xx: validation errors, malformed JSON and
unknown routes included; a 500 only ever means a fault of the server (logged with its
trace and request id).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from flotte.errors import (
    AlreadyExists,
    Busy,
    DriverError,
    FlotteError,
    NotFound,
    Unreachable,
    UsageError,
)
from flotte.identity.principal import Forbidden, Unauthorized

log = logging.getLogger("flotte.api")


class ApiError(FlotteError):
    """An error with its HTTP status, raised by handlers."""

    def __init__(self, status: int, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


class Conflict(UsageError):
    """The object is in a state that does not allow this now (HTTP 409)."""


def status_of(err: FlotteError) -> int:
    if isinstance(err, ApiError):
        return err.status
    for kind, status in (
        (Unauthorized, 401),
        (Forbidden, 403),
        (NotFound, 404),
        (AlreadyExists, 409),
        (Conflict, 409),
        (Busy, 409),
        (UsageError, 400),
        (Unreachable, 503),
        (DriverError, 502),
    ):
        if isinstance(err, kind):
            return status
    return 500


def request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))


def error_body(status: int, title: str, detail: str = "", rid: str = "") -> dict[str, Any]:
    return {
        "errors": [
            {
                "request_id": rid,
                "code": "client" if status < 500 else "server",
                "status": status,
                "title": title,
                "detail": detail or title,
                "links": [],
            }
        ]
    }


def error_response(request: Request, status: int, title: str, detail: str = "") -> JSONResponse:
    headers = {"WWW-Authenticate": 'Keystone uri="/v3"'} if status == 401 else None
    return JSONResponse(
        error_body(status, title, detail, request_id(request)), status_code=status, headers=headers
    )


def validation_title(err: RequestValidationError) -> str:
    """The one-line title of a request the models refused (also the web forms')."""
    first = err.errors()[0] if err.errors() else {}
    kind = str(first.get("type", ""))
    if kind == "json_invalid":
        return "Malformed JSON in the request body: send a JSON object"
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body",)]
    if not loc and first.get("loc", ())[:1] == ("body",) and kind.endswith("_type"):
        return "The request body must be a JSON object (Content-Type: application/json)"
    where = ".".join(loc)
    msg = str(first.get("msg", "invalid input")).removeprefix("Value error, ")
    if kind == "missing":
        return f"Missing field {where!r}" if where else "The request body is missing"
    if kind == "extra_forbidden":
        return f"Unknown field {where!r}"
    return f"Invalid input for {where}: {msg}" if where else f"Invalid input: {msg}"


def install(app: FastAPI) -> None:
    """Route every error through Magnum's body."""

    @app.exception_handler(FlotteError)
    async def flotte_error(request: Request, err: FlotteError) -> JSONResponse:
        status = status_of(err)
        if status >= 500:
            log.error("request %s failed: %s", request_id(request), err, exc_info=err)
        return error_response(request, status, err.message, str(err))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        return error_response(request, 400, validation_title(err))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        title = {
            404: f"Not found: {request.url.path} is not a resource of this API",
            405: f"Method {request.method} is not allowed on {request.url.path}",
        }.get(err.status_code, str(err.detail))
        return error_response(request, err.status_code, title)
