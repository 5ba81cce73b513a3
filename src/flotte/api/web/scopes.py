"""Keystone mode: the password login, the projects a user may switch to, and the switch.

The page's session holds a project-scoped Keystone token, exactly what the API takes.
Which projects the user has a role in is Keystone's answer to ``GET /v3/auth/projects``
with that token; switching asks Keystone for a token scoped to the other project from
the current one (method ``token``, Keystone's re-scoping), so no password is kept and
the new token expires when the old one does. Keystone decides every time: a project
the user lost its role in is refused there, whatever the page listed.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import httpx

from flotte.api.context import ApiContext
from flotte.identity.principal import Unauthorized

LIST_SECONDS = 60.0  # a new role shows in the header within a minute
LIST_CACHE = 10_000
TIMEOUT = 10.0
_PROJECT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class Choice:
    """A project the signed-in user has a role in."""

    id: str
    name: str


_lists: OrderedDict[str, tuple[float, tuple[Choice, ...]]] = OrderedDict()


def _url(ctx: ApiContext) -> str:
    assert ctx.keystone is not None
    return ctx.keystone.url  # normalised to end in /v3


def _client() -> httpx.AsyncClient:
    # Like the token validator: no proxy from the environment between us and Keystone.
    return httpx.AsyncClient(timeout=TIMEOUT, trust_env=False)


async def _issue(ctx: ApiContext, body: dict[str, Any]) -> httpx.Response:
    try:
        async with _client() as client:
            return await client.post(f"{_url(ctx)}/auth/tokens", json=body)
    except httpx.HTTPError as err:
        raise Unauthorized(f"Keystone at {_url(ctx)} did not answer: {err}") from None


def _token_of(answer: httpx.Response) -> str | None:
    token = answer.headers.get("X-Subject-Token")
    return token if answer.status_code == 201 and token else None


async def password_token(ctx: ApiContext, user: str, password: str, project: str) -> str:
    """A token for ``user`` scoped to ``project`` (a name in the default domain)."""
    default = {"id": "default"}
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {"name": user, "domain": default, "password": password}},
            },
            "scope": {"project": {"name": project, "domain": default}},
        }
    }
    token = _token_of(await _issue(ctx, body))
    if token is None:
        raise Unauthorized("the user name, password or project is wrong")
    return token


async def rescoped(ctx: ApiContext, token: str, project_id: str) -> str:
    """A token of the same user scoped to ``project_id``, from ``token``."""
    if not _PROJECT_ID.match(project_id):
        raise Unauthorized("choose a project from the list")
    body = {
        "auth": {
            "identity": {"methods": ["token"], "token": {"id": token}},
            "scope": {"project": {"id": project_id}},
        }
    }
    new = _token_of(await _issue(ctx, body))
    if new is None:
        raise Unauthorized("Keystone refused that project: you have no role in it now")
    return new


async def choices(ctx: ApiContext, token: str) -> tuple[Choice, ...]:
    """The enabled projects the token's user has a role in, by name; () when Keystone
    does not say (the page then shows no switch rather than failing)."""
    key = hashlib.sha256(token.encode()).hexdigest()
    now = time.monotonic()
    hit = _lists.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    try:
        async with _client() as client:
            answer = await client.get(f"{_url(ctx)}/auth/projects", headers={"X-Auth-Token": token})
        if answer.status_code != 200:
            return ()
        found = [p for p in answer.json()["projects"] if p.get("enabled", True)]
        listed = tuple(
            sorted(
                (Choice(str(p["id"]), str(p.get("name") or p["id"])) for p in found),
                key=lambda c: (c.name.lower(), c.id),
            )
        )
    except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError):
        return ()
    _lists[key] = (now + LIST_SECONDS, listed)
    while len(_lists) > LIST_CACHE:
        _lists.popitem(last=False)
    return listed
