"""Keystone mode: a caller's token is validated by a real Keystone.

The token validates itself (``GET /v3/auth/tokens`` with the token as both the
``X-Auth-Token`` and the ``X-Subject-Token``: Keystone's policy lets a token's subject
validate it), so flotte serve needs no service account of its own to read tokens. The
project and roles come from the token; a valid answer is cached (by the token's SHA-256)
for at most five minutes and never past the token's expiry, like keystonemiddleware.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections import OrderedDict
from typing import Any

import httpx

from flotte.errors import Unreachable
from flotte.identity.principal import Forbidden, Principal, Unauthorized

CACHE_SECONDS = 300.0
CACHE_SIZE = 10_000


def _expiry(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def principal_from(token: dict[str, Any]) -> Principal:
    """A Principal from the ``token`` object of Keystone's answer."""
    project = token.get("project")
    if not project:
        raise Forbidden("the token is not scoped to a project: give --os-project-name")
    user = token.get("user") or {}
    return Principal(
        user_id=str(user.get("id", "")),
        user_name=str(user.get("name", "")),
        project_id=str(project["id"]),
        project_name=str(project.get("name", "")),
        roles=tuple(str(r.get("name", "")) for r in token.get("roles") or ()),
        expires_at=_expiry(str(token["expires_at"])),
        domain=str((project.get("domain") or {}).get("name", "Default")),
    )


class KeystoneValidator:
    def __init__(
        self, keystone_url: str, *, timeout: float = 10.0, verify: bool | str = True
    ) -> None:
        self.url = keystone_url.rstrip("/")
        if not self.url.endswith("/v3"):
            self.url += "/v3"
        self._timeout = timeout
        self._verify = verify
        self._client: httpx.AsyncClient | None = None
        self._cache: OrderedDict[str, tuple[float, Principal]] = OrderedDict()

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self._timeout, verify=self._verify, trust_env=False
            )
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def validate(self, token: str) -> Principal:
        key = hashlib.sha256(token.encode()).hexdigest()
        hit = self._cache.get(key)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            if hit[1].expires_at <= dt.datetime.now(dt.UTC):
                raise Unauthorized("the token has expired: authenticate again")
            return hit[1]
        try:
            resp = await self._http().get(
                f"{self.url}/auth/tokens",
                params={"nocatalog": "1"},
                headers={"X-Auth-Token": token, "X-Subject-Token": token},
            )
        except httpx.HTTPError as err:
            raise Unreachable(f"Keystone at {self.url} cannot be reached: {err}") from err
        if resp.status_code in (401, 403, 404):
            raise Unauthorized("Keystone refused the token (invalid, expired or revoked)")
        if resp.status_code != 200:
            raise Unreachable(f"Keystone answered {resp.status_code} when validating a token")
        try:
            principal = principal_from(resp.json()["token"])
        except (KeyError, ValueError, TypeError) as err:
            raise Unreachable(f"Keystone's token answer is not understood: {err}") from err
        remaining = (principal.expires_at - dt.datetime.now(dt.UTC)).total_seconds()
        if remaining <= 0:
            raise Unauthorized("the token has expired: authenticate again")
        self._cache[key] = (now + min(CACHE_SECONDS, remaining), principal)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return principal
