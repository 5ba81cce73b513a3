"""Log in, switch project, log out. Standalone mode checks the user's password with the
service's own identity; Keystone mode asks the Keystone the service validates tokens
against, so the session holds exactly the token the API would take. In Keystone mode a
user with roles in several projects switches between them from the page's header: the
session's token is re-scoped by Keystone and replaces the old one."""

from __future__ import annotations

import time

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from flotte.api.context import context
from flotte.api.web import forms, scopes
from flotte.api.web.render import html
from flotte.api.web.session import (
    PREFIX,
    Seen,
    end_session,
    safe_next,
    same_origin,
    start_session,
)
from flotte.errors import UsageError
from flotte.identity.principal import Unauthorized

router = APIRouter(prefix=PREFIX, include_in_schema=False)


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
            token = await scopes.password_token(ctx, user, password, project)
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


@router.post("/project")
async def switch_project(request: Request, seen: Seen) -> Response:
    data = await forms.form(request)
    seen.check_csrf(data.get("csrf"))
    ctx = seen.ctx
    if ctx.keystone is None:
        # Standalone users belong to one project each: there is nothing to switch to.
        raise UsageError("switching project needs Keystone mode: log in as another user")
    wanted = data.get("project", "").strip()
    if wanted not in {c.id for c in seen.choices}:
        message = "choose one of the projects listed in the header; nothing was changed"
        return html(request, "error.html", seen, status=400, message=message)
    try:
        token = await scopes.rescoped(ctx, seen.token, wanted)
        who = await ctx.principal(token)
    except Unauthorized as err:  # a role taken away since the list was read
        return html(request, "error.html", seen, status=403, message=err.message)
    # The page now shown may be a cluster of the old project: start from the list.
    response = RedirectResponse(f"{PREFIX}/clusters", status_code=303)
    ttl = max(60, int(who.expires_at.timestamp() - time.time()))
    start_session(response, request, token, ttl)
    return response
