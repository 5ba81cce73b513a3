"""The service's jobs: the API submits requests, workers run them.

``open_jobs`` picks the backend from the database the service uses:

- SQLite (the embedded default): ``EmbeddedJobs``, a worker task in the API's own
  process, jobs kept in the state database and resumed at start;
- PostgreSQL (at scale): ``PostgresJobs``, procrastinate's queue shared by every
  ``flotte serve`` process, with worker heartbeats and stalled jobs put back in the
  queue, so a killed worker's job is finished by another.

Either way a job is ``flotte.service.requests.run(svc, kind, payload)``.
"""

from __future__ import annotations

from flotte.jobs.base import Jobs, JobState, Runner, run_request
from flotte.jobs.embedded import EmbeddedJobs
from flotte.service import Service

__all__ = ["EmbeddedJobs", "JobState", "Jobs", "Runner", "embedded", "open_jobs"]


def is_postgres(url: str | None) -> bool:
    return bool(url) and str(url).split(":", 1)[0].split("+", 1)[0] in ("postgresql", "postgres")


def open_jobs(
    svc: Service,
    *,
    worker: bool = True,
    concurrency: int = 8,
    runner: Runner = run_request,
) -> Jobs:
    """The jobs of ``svc``'s database (not started: ``await jobs.start()``)."""
    if is_postgres(svc.store.url):
        from flotte.jobs.postgres import PostgresJobs  # procrastinate only where needed

        return PostgresJobs(
            svc.store.url, svc, runner=runner, worker=worker, concurrency=concurrency
        )
    return EmbeddedJobs(svc, runner=runner, worker=worker, concurrency=concurrency)


def embedded(svc: Service, *, runner: Runner = run_request) -> EmbeddedJobs:
    """The in-process backend (API tests use it on any database)."""
    return EmbeddedJobs(svc, runner=runner)
