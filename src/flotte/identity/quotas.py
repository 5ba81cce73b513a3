"""Magnum's per-project quota (resource ``Cluster``), enforced atomically.

A cluster create runs ``admit`` inside the transaction that inserts the cluster: the
project's admission row is locked first, then its clusters are counted, so concurrent
creates of one project (in one process or many, SQLite or PostgreSQL) pass one at a time
and exactly ``hard_limit`` of them get in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy.orm import Session

from flotte.errors import UsageError
from flotte.identity.principal import Forbidden
from flotte.state.tenancy import QuotaRecord, TenancyStore

RESOURCES = ("Cluster",)


class OverQuota(Forbidden):
    """The project already has as many clusters as its quota allows (HTTP 403)."""


def check_resource(resource: str) -> str:
    if resource not in RESOURCES:
        raise UsageError(
            f"unknown quota resource {resource!r}: flotte counts {', '.join(RESOURCES)}"
        )
    return resource


def check_limit(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UsageError(f"hard_limit must be a whole number, 0 or more (got {value!r})")
    return value


class Quotas:
    def __init__(self, tenancy: TenancyStore, default_limit: int) -> None:
        self.tenancy = tenancy
        self.default_limit = default_limit

    def limit(self, projects: Sequence[str]) -> int:
        for project in projects:
            found = self.tenancy.quota(project, "Cluster")
            if found is not None:
                return found.hard_limit
        return self.default_limit

    def record(self, projects: Sequence[str]) -> QuotaRecord | None:
        for project in projects:
            found = self.tenancy.quota(project, "Cluster")
            if found is not None:
                return found
        return None

    def admit(self, project: str, projects: Sequence[str]) -> Callable[[Session], None]:
        """The hook of a cluster insert: refuse it when the project would pass its quota."""
        limit = self.limit(projects)
        self.tenancy.ensure_admission_row(project)

        def admit(s: Session) -> None:
            count = self.tenancy.count_after_lock(s, project)
            if count > limit:
                raise OverQuota(
                    f"Cluster quota exceeded: project {projects[-1]} may have {limit} "
                    f"cluster(s) and has {count - 1}",
                )

        return admit
