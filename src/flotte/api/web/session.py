"""Who is looking at the page: the session cookie, and the CSRF token of its forms.

The cookie holds the same token the API takes in ``X-Auth-Token`` (a standalone token,
or a Keystone one in Keystone mode), so the page and the API share one identity and
one expiry. It is HttpOnly (no script reads it), SameSite=Strict, Secure over HTTPS,
and scoped to ``/ui``. Every state-changing form carries a CSRF token derived from the
session token (a hash, so it reveals nothing of the token); a request whose form token
does not match its cookie is refused, whatever its origin.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response

from flotte.api.context import ApiContext, context
from flotte.api.web.scopes import Choice, choices
from flotte.identity.principal import Principal, Unauthorized

COOKIE = "flotte_ui"
PREFIX = "/ui"
MAX_TOKEN = 8192


class LoginRequired(Exception):
    """No valid session: the page sends the browser to the login form."""

    def __init__(self, next_url: str, reason: str = "") -> None:
        super().__init__(reason)
        self.next_url = next_url
        self.reason = reason


def login_redirect(err: LoginRequired) -> RedirectResponse:
    url = f"{PREFIX}/login?next={quote(err.next_url, safe='')}"
    if err.reason:
        url += f"&reason={quote(err.reason, safe='')}"
    return RedirectResponse(url, status_code=303)


def csrf_of(token: str) -> str:
    return hashlib.sha256(b"flotte-ui-csrf\0" + token.encode()).hexdigest()[:40]


@dataclass(frozen=True)
class Viewer:
    """The signed-in user of a page: the API's principal, its token and form token."""

    who: Principal
    token: str
    ctx: ApiContext
    # Keystone mode: the projects the user may switch to (the header's control, shown
    # when there is a choice); standalone users have one project each, so none.
    choices: tuple[Choice, ...] = ()

    @property
    def csrf(self) -> str:
        return csrf_of(self.token)

    def check_csrf(self, sent: str | None) -> None:
        if not sent or not hmac.compare_digest(sent, self.csrf):
            raise CsrfRefused()


class CsrfRefused(Exception):
    """A state-changing form without this session's CSRF token."""


async def viewer(request: Request) -> Viewer:
    ctx = context(request)
    token = request.cookies.get(COOKIE, "")
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if not token or len(token) > MAX_TOKEN:
        raise LoginRequired(here)
    try:
        who = await ctx.principal(token)
    except Unauthorized as err:
        raise LoginRequired(here, err.message) from None
    request.scope.setdefault("state", {})["project_id"] = who.project_id
    listed = await choices(ctx, token) if ctx.keystone is not None else ()
    return Viewer(who, token, ctx, listed if len(listed) > 1 else ())


Seen = Annotated[Viewer, Depends(viewer)]


def start_session(response: Response, request: Request, token: str, ttl: int) -> None:
    response.set_cookie(
        COOKIE,
        token,
        max_age=ttl,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def end_session(response: Response) -> None:
    response.delete_cookie(COOKIE, path=PREFIX, httponly=True, samesite="strict")


def same_origin(request: Request) -> None:
    """Refuse a form posted from another site (browsers send Origin with every POST)."""
    origin = request.headers.get("origin")
    if origin and origin != "null":
        host = request.headers.get("host", "")
        if origin.split("://", 1)[-1] != host:
            raise CsrfRefused()


def safe_next(url: str | None) -> str:
    """Where to go after logging in: a page of ours, never another site."""
    if url and url.startswith(PREFIX + "/") and not url.startswith("//") and "\\" not in url:
        return url
    return f"{PREFIX}/clusters"
