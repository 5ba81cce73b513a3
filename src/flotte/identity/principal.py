"""The caller of an API request, and the two ways identity refuses one."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from flotte.errors import UsageError

ADMIN_ROLE = "admin"


class Unauthorized(UsageError):
    """No token, or one that is invalid or expired (HTTP 401)."""


class Forbidden(UsageError):
    """A valid caller asking for what its roles do not allow (HTTP 403)."""


@dataclass(frozen=True)
class Principal:
    user_id: str
    user_name: str
    project_id: str
    project_name: str
    roles: tuple[str, ...]
    expires_at: dt.datetime
    domain: str = "default"

    @property
    def is_admin(self) -> bool:
        return ADMIN_ROLE in self.roles

    @property
    def sees(self) -> str | None:
        """The project whose objects this caller sees; None: every project (admin)."""
        return None if self.is_admin else self.project_id

    @property
    def projects(self) -> tuple[str, ...]:
        """Keys an account of this caller's project may be recorded under."""
        return (self.project_id, self.project_name)

    def require_admin(self, what: str) -> None:
        if not self.is_admin:
            raise Forbidden(f"{what} needs the admin role")
