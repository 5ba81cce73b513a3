"""The embedded service's job queue: a table of requests in the state database.

Used when ``flotte serve`` runs on SQLite, with one process holding the API and its
worker. On PostgreSQL, where several processes share the queue, procrastinate's own
tables are the queue instead (``flotte.jobs.postgres``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, DateTime, Integer, String, Text, delete, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from flotte.state.store import Store
from flotte.state.tables import Base, utcnow

TODO, DOING, SUCCEEDED, FAILED = "todo", "doing", "succeeded", "failed"
FINISHED = (SUCCEEDED, FAILED)
KEEP = dt.timedelta(days=7)


class JobRow(Base):
    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    project: Mapped[str | None] = mapped_column(String(64), nullable=True)
    cluster: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    error: Mapped[str] = mapped_column(Text, default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


@dataclass(frozen=True)
class QueuedJob:
    id: int
    kind: str
    payload: dict[str, Any]
    project: str | None
    cluster: str | None
    status: str
    error: str
    attempts: int


def _job(row: JobRow) -> QueuedJob:
    return QueuedJob(
        row.id, row.kind, dict(row.payload), row.project, row.cluster, row.status, row.error,
        row.attempts,
    )  # fmt: skip


def add_job(
    s: Session, kind: str, payload: dict[str, Any], project: str | None, cluster: str | None
) -> int:
    """A waiting job, written in the caller's transaction: with the change it carries
    out, it is committed, or neither is."""
    row = JobRow(
        kind=kind, payload=payload, project=project, cluster=cluster, status=TODO,
        error="", attempts=0, created_at=utcnow(),
    )  # fmt: skip
    s.add(row)
    s.flush()
    return row.id


class JobQueue:
    """Add, claim and finish jobs; one process claims (the embedded service's)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def add(
        self, kind: str, payload: dict[str, Any], project: str | None, cluster: str | None
    ) -> int:
        with self.store.session() as s:
            return add_job(s, kind, payload, project, cluster)

    def get(self, job_id: int) -> QueuedJob | None:
        with self.store.session() as s:
            row = s.get(JobRow, job_id)
            return _job(row) if row is not None else None

    def requeue_unfinished(self) -> int:
        """At start: jobs a dead process was running go back to the queue (and jobs
        finished long ago are forgotten: the clusters keep what they did)."""
        with self.store.session() as s:
            old = utcnow() - KEEP
            s.execute(delete(JobRow).where(JobRow.status.in_(FINISHED), JobRow.finished_at < old))
            result = s.execute(update(JobRow).where(JobRow.status == DOING).values(status=TODO))
            return int(getattr(result, "rowcount", 0) or 0)

    def unfinished_clusters(self) -> set[str]:
        """The clusters with a job waiting or running."""
        with self.store.session() as s:
            found = s.scalars(
                select(JobRow.cluster).where(JobRow.status.in_((TODO, DOING))).distinct()
            )
            return {c for c in found if c}

    def claim(self, busy: set[str | None], limit: int) -> list[QueuedJob]:
        """Up to ``limit`` waiting jobs, oldest first, at most one per cluster and none
        for a cluster in ``busy`` (a cluster's jobs run one at a time, in order)."""
        claimed: list[QueuedJob] = []
        with self.store.session() as s:
            rows = s.scalars(select(JobRow).where(JobRow.status == TODO).order_by(JobRow.id))
            seen: set[str | None] = set()
            for row in rows:
                if len(claimed) >= limit:
                    break
                key = row.cluster
                if key is not None and (key in busy or key in seen):
                    seen.add(key)
                    continue
                seen.add(key)
                row.status, row.started_at, row.attempts = DOING, utcnow(), row.attempts + 1
                claimed.append(_job(row))
        return claimed

    def finish(self, job_id: int, status: str, error: str = "") -> None:
        with self.store.session() as s:
            row = s.get(JobRow, job_id)
            if row is not None:
                row.status, row.error, row.finished_at = status, error[:2000], utcnow()
