"""What every job backend shares: the ``Jobs`` interface and how one job is run.

A job is one request of the service's catalogue (``flotte.service.requests``): a kind
such as ``cluster.create`` and a JSON-safe payload, never a secret. Running it again
after a crash converges, since the use cases plan from what is recorded; so a backend
only has to make sure a job is run to the end once, and that two jobs of one cluster
never run at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from flotte import metrics
from flotte.errors import Busy, FlotteError
from flotte.service import Service, requests
from flotte.state.jobqueue import DOING, FAILED, FINISHED, SUCCEEDED, TODO

log = logging.getLogger("flotte.jobs")

__all__ = [
    "DOING", "FAILED", "SUCCEEDED", "TODO", "JobState", "Jobs", "NewJob", "Runner", "end_task",
    "execute", "fail_orphans",
]  # fmt: skip

Runner = Callable[[Service, str, dict[str, Any]], Awaitable[None]]


async def run_request(svc: Service, kind: str, payload: dict[str, Any]) -> None:
    """The service's own catalogue of requests (``flotte.service.requests``)."""
    await requests.run(svc, kind, payload)


@dataclass(frozen=True)
class NewJob:
    """A request to queue: its kind, JSON-safe payload (never a secret), project, cluster."""

    kind: str
    payload: dict[str, Any]
    project: str | None
    cluster: str | None


@dataclass(frozen=True)
class JobState:
    id: str
    kind: str
    status: str  # todo, doing, succeeded, failed
    cluster: str | None = None
    project: str | None = None
    error: str = ""
    attempts: int = 0

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


class Jobs(ABC):
    """Submit requests; with the worker role, run them."""

    @abstractmethod
    async def start(self) -> None:
        """Connect; with the worker role, begin taking jobs (unfinished ones first)."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop taking jobs, let running ones finish for a short while, disconnect."""

    @abstractmethod
    async def submit(
        self, kind: str, payload: dict[str, Any], *, project: str | None, cluster: str | None
    ) -> str:
        """Queue a request in a transaction of its own; returns its job id at once."""

    @abstractmethod
    def enqueue(self, s: Session, job: NewJob) -> str:
        """Queue a request inside ``s``, an open transaction on the state database; the
        job exists if and only if that transaction commits. The API records a change
        and the job that carries it out so: a process killed between two transactions
        left a cluster ``*_IN_PROGRESS`` with no job to finish it, for ever. Call
        ``queued`` once the transaction committed."""

    @abstractmethod
    def queued(self, job_id: str) -> None:
        """The transaction that enqueued ``job_id`` committed (a worker may take it now)."""

    @abstractmethod
    async def get(self, job_id: str) -> JobState:
        """What is known of a job now."""

    async def wait(self, job_id: str, timeout: float) -> JobState:
        """Wait until the job finished (tests, benchmarks); TimeoutError after ``timeout``."""
        deadline = time.monotonic() + timeout
        pause = 0.02
        while True:
            state = await self.get(job_id)
            if state.finished:
                return state
            if time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} is still {state.status} after {timeout:.0f} s")
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.5)

    async def __aenter__(self) -> Jobs:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def end_task(task: asyncio.Task[Any], *, again: float) -> None:
    """Cancel ``task`` and wait until it has ended, cancelling it again every ``again`` s.

    One cancel can be lost: Python 3.11's ``asyncio.wait_for`` returns the result of a
    wait that ended just as the cancel landed, and the task goes on as if never asked to
    stop. psycopg_pool waits for a free connection so; a loop that was waiting there
    when ``flotte serve`` stopped ran on for ever (a test hung 20 min in CI). ``again``
    must outlast whatever the task does when cancelled (a worker's grace period).
    """
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=again)
    if not task.cancelled() and task.exception() is not None:
        log.warning("%s ended with %r while stopping", task.get_name(), task.exception())


class Retry(Exception):
    """The job could not start (its cluster is busy elsewhere): run it again later."""


async def execute(svc: Service, runner: Runner, kind: str, payload: dict[str, Any]) -> str:
    """Run one job; returns the error line of a failure ("" when it succeeded).

    A failure of the request itself (FlotteError: the cluster's status_reason records
    it) ends the job as failed; so does an unexpected error, logged with its trace.
    A busy cluster (a CLI command or another process holds its lock) raises Retry.
    """
    started = time.monotonic()
    outcome = "interrupted"  # unless it ends below: cancelled by a shutdown
    error = ""
    log.info("job %s %s: started", kind, _target(payload))
    try:
        await runner(svc, kind, payload)
        outcome = SUCCEEDED
        log.info("job %s %s: done in %.1f s", kind, _target(payload), time.monotonic() - started)
    except Busy as err:
        outcome = "busy"
        raise Retry(str(err)) from err
    except FlotteError as err:
        outcome, error = FAILED, str(err)
        log.warning("job %s %s failed: %s", kind, _target(payload), err)
    except Exception as err:
        outcome, error = FAILED, f"internal error: {type(err).__name__}: {err}"
        log.exception("job %s %s failed unexpectedly", kind, _target(payload))
    finally:
        metrics.observe_job(kind, outcome, time.monotonic() - started)
    return error


ORPHAN_REASON = (
    "interrupted: the flotte serve that recorded this change stopped before it queued "
    "the job that carries it out (an older flotte could); run the change again or "
    "delete the cluster"
)


def fail_orphans(svc: Service, queued: set[str]) -> list[str]:
    """At a worker's start: clusters of the service (with a project) left ``*_IN_PROGRESS``
    with no job queued or running (``queued``) that would ever finish them are marked
    ``*_FAILED`` with the reason, so their users can act (Magnum's way); nothing of
    their infrastructure is touched. Since the job is written in the transaction that
    records the change, only an older flotte can have left such a cluster."""
    failed = []
    for cluster in svc.store.clusters():
        if cluster.project is None or cluster.name in queued:
            continue  # a CLI cluster's command resumes it; a queued job finishes it
        status = requests.FAILED.get(cluster.status)
        if status is None:
            continue
        svc.store.set_status(
            cluster.name, status=status, status_reason=ORPHAN_REASON, group_reason=ORPHAN_REASON
        )
        log.warning("cluster %s was %s with no job to finish it: now %s", cluster.name,
                    cluster.status, status)  # fmt: skip
        failed.append(cluster.name)
    return failed


def _target(payload: dict[str, Any]) -> str:
    return str(payload.get("cluster") or payload.get("name") or "")
