"""Standalone identity: projects and users kept by flotte serve, and its own tokens.

Passwords are argon2 hashes. A token is a Fernet token (AES-CBC + HMAC, made with a key
derived from the serve key) carrying the user, the project and the expiry, so any serve
process of the installation validates it without a database write; each validation
still checks, at most every few seconds, that the user exists and what its role is now,
so deleting a user or taking its admin role away takes effect at once.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
import uuid
from collections import OrderedDict

from cryptography.fernet import InvalidToken

from flotte.errors import NotFound, UsageError
from flotte.identity.passwords import hash_password, verify_password
from flotte.identity.principal import ADMIN_ROLE, Principal, Unauthorized
from flotte.identity.vault import Vault
from flotte.state.tenancy import ProjectRecord, TenancyStore, UserRecord

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
RECHECK = 5.0  # seconds a validated token is trusted before its user is read again
CACHE_SIZE = 10_000


def check_identity_name(kind: str, name: str) -> str:
    if not _NAME.match(name or ""):
        raise UsageError(
            f"invalid {kind} name {name!r}: use 1-64 letters, digits, '_', '.', '@' or '-', "
            "starting with a letter or digit"
        )
    return name


def roles_of(user: UserRecord) -> tuple[str, ...]:
    return (ADMIN_ROLE, "member", "reader") if user.admin else ("member", "reader")


class Standalone:
    def __init__(self, tenancy: TenancyStore, vault: Vault, ttl: int = 3600) -> None:
        self.tenancy = tenancy
        self.ttl = ttl
        self._fernet = vault.fernet("tokens")
        self._cache: OrderedDict[str, tuple[float, Principal]] = OrderedDict()

    # -- projects and users -----------------------------------------------------------
    def create_project(self, name: str) -> ProjectRecord:
        check_identity_name("project", name)
        return self.tenancy.add_project(uuid.uuid4().hex, name)

    def create_user(
        self, name: str, project: str, password: str, *, admin: bool = False
    ) -> UserRecord:
        check_identity_name("user", name)
        proj = self.tenancy.project(project)
        self.tenancy.add_user(uuid.uuid4().hex, name, proj.id, hash_password(password), admin)
        found = self.tenancy.find_user(name)
        assert found is not None
        return found

    def delete_user(self, ident: str) -> UserRecord:
        user = self.tenancy.find_user(ident)
        if user is None:
            raise NotFound(f"user {ident!r} not found", hint="see 'flotte user list'")
        self.tenancy.delete_user(user.id)
        self._cache.clear()
        return user

    def delete_project(self, ident: str) -> ProjectRecord:
        project = self.tenancy.project(ident)
        self.tenancy.delete_project(project.id)
        self._cache.clear()
        return project

    # -- tokens ---------------------------------------------------------------------------
    def authenticate(
        self, user_name: str, password: str, project: str | None = None
    ) -> tuple[str, Principal]:
        """A token for ``user_name`` scoped to its project (``project``: its id or name)."""
        refused = Unauthorized("the user name, password or project is wrong")
        user = self.tenancy.find_user(user_name)
        if not verify_password(user.password_hash if user else None, password) or user is None:
            raise refused
        proj = self.tenancy.find_project(user.project)
        if proj is None or (project is not None and project not in (proj.id, proj.name)):
            raise refused
        now = int(time.time())
        expires = now + self.ttl
        body = {"u": user.id, "p": proj.id, "e": expires, "a": uuid.uuid4().hex[:22]}
        token = self._fernet.encrypt_at_time(json.dumps(body).encode(), now).decode()
        return token, self._principal(user, proj, expires)

    def validate(self, token: str) -> Principal:
        now = time.monotonic()
        hit = self._cache.get(token)
        if hit is not None and now - hit[0] < RECHECK:
            if hit[1].expires_at <= dt.datetime.now(dt.UTC):
                raise Unauthorized("the token has expired: authenticate again")
            return hit[1]
        try:
            body = json.loads(self._fernet.decrypt(token.encode()))
            user_id, project_id, expires = str(body["u"]), str(body["p"]), int(body["e"])
        except (InvalidToken, ValueError, KeyError, TypeError):
            raise Unauthorized("the token is not valid here: authenticate again") from None
        if expires <= time.time():
            raise Unauthorized("the token has expired: authenticate again")
        user = self.tenancy.find_user(user_id)
        project = self.tenancy.find_project(project_id)
        if user is None or project is None or user.project != project.id:
            raise Unauthorized("the token's user or project no longer exists")
        principal = self._principal(user, project, expires)
        self._cache[token] = (now, principal)
        self._cache.move_to_end(token)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return principal

    @staticmethod
    def _principal(user: UserRecord, project: ProjectRecord, expires: int) -> Principal:
        return Principal(
            user_id=user.id,
            user_name=user.name,
            project_id=project.id,
            project_name=project.name,
            roles=roles_of(user),
            expires_at=dt.datetime.fromtimestamp(expires, dt.UTC),
        )
