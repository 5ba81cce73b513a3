"""Log in and out. Standalone mode checks the user's password with the service's own
identity; Keystone mode asks the Keystone the service validates tokens against, so the
session holds exactly the token the API would take."""

from __future__ import annotations

import time
from typing import Any

import httpx
from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from flotte.api.context import ApiContext, context
from flotte.api.web import forms
from flotte.api.web.render import html
from flotte.api.web.session import (
    PREFIX,
    Seen,
    end_session,
    safe_next,
    same_origin,
    start_session,
)
from flotte.identity.principal import Unauthorized

router = APIRouter(prefix=PREFIX, include_in_schema=False)


async def _keystone_token(ctx: ApiContext, user: str, password: str, project: str) -> str:
    url = f"{ctx.settings.keystone_url}/auth/tokens"
    scope: dict[str, Any] = {"project": {"name": project, "domain": {"id": "default"}}}
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {"name": user, "domain": {"id": "default"}, "password": password}
                },
            },
            "scope": scope,
        }
    }
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            answer = await client.post(url, json=body)
    except httpx.HTTPError as err:
        raise Unauthorized(
            f"Keystone at {ctx.settings.keystone_url} did not answer: {err}"
        ) from None
    if answer.status_code != 201 or "X-Subject-Token" not in answer.headers:
        raise Unauthorized("the user name, password or project is wrong")
    return answer.headers["X-Subject-Token"]


@router.get("/login")
async def login_form(
    request: Request,
    next: str = Query("", max_length=2000),
    reason: str = Query("", max_length=300),
) -> Response:
    ctx = context(request)
    return html(
        request,
        "login.html",
        None,
        next=safe_next(next),
        error=reason,
        keystone=ctx.keystone is not None,
        values={},
    )


@router.post("/login")
async def login(request: Request) -> Response:
    ctx = context(request)
    same_origin(request)  # no session yet, so no CSRF token: a foreign form is refused
    data = await forms.form(request)
    user = data.get("user", "").strip()
    project = data.get("project", "").strip()
    password = data.get("password", "")
    target = safe_next(data.get("next"))
    try:
        if not user or not password:
            raise Unauthorized("give your user name and password")
        if ctx.standalone is not None:
            token, who = ctx.standalone.authenticate(user, password, project or None)
        else:
            if not project:
                raise Unauthorized("give the Keystone project to work in")
            token = await _keystone_token(ctx, user, password, project)
            who = await ctx.principal(token)
    except Unauthorized as err:
        return html(
            request,
            "login.html",
            None,
            status=401,
            next=target,
            error=err.message,
            keystone=ctx.keystone is not None,
            values={"user": user, "project": project},
        )
    response = RedirectResponse(target, status_code=303)
    ttl = max(60, int(who.expires_at.timestamp() - time.time()))
    start_session(response, request, token, ttl)
    return response


@router.post("/logout")
async def logout(request: Request, seen: Seen) -> Response:
    data = await forms.form(request)
    seen.check_csrf(data.get("csrf"))
    response = RedirectResponse(f"{PREFIX}/login", status_code=303)
    end_session(response)
    return response
