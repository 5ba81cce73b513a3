"""The embedded backend: jobs in the SQLite state database, run by the API's process.

``flotte serve`` out of the box is one process: the API submits a job (a row of the
``jobs`` table) and wakes a worker task in the same event loop, which runs it through
the use cases. Jobs a killed process was running are queued again at start, so a
restarted service finishes them (the use cases plan from what is recorded).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from contextlib import ExitStack
from typing import Any

from sqlalchemy.orm import Session

from flotte.errors import Busy
from flotte.jobs.base import (
    FAILED,
    SUCCEEDED,
    TODO,
    Jobs,
    JobState,
    NewJob,
    Retry,
    Runner,
    end_task,
    execute,
    fail_orphans,
    run_request,
)
from flotte.service import Service
from flotte.state.jobqueue import JobQueue, QueuedJob, add_job
from flotte.state.lock import locked

log = logging.getLogger("flotte.jobs")


class EmbeddedJobs(Jobs):
    """Jobs of one process on the state database (SQLite or any other)."""

    def __init__(
        self,
        svc: Service,
        *,
        runner: Runner = run_request,
        worker: bool = True,
        concurrency: int = 8,
        poll: float = 2.0,
        retry_after: float = 2.0,
        grace: float = 10.0,
    ) -> None:
        self.svc, self.runner, self.worker = svc, runner, worker
        self.concurrency, self.poll, self.retry_after, self.grace = (
            concurrency, poll, retry_after, grace,
        )  # fmt: skip
        self.queue = JobQueue(svc.store)
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._running: dict[asyncio.Task[None], str | None] = {}
        self._lock = ExitStack()

    async def start(self) -> None:
        if not self.worker or self._loop_task is not None:
            return
        # One embedded worker per installation: a second would take back the jobs the
        # first is running. Several workers need PostgreSQL.
        self._lock = ExitStack()
        try:
            self._lock.enter_context(locked(self.svc.paths.locks, "serve", "worker"))
        except Busy:
            raise Busy(
                "another flotte serve already runs the jobs of this installation "
                f"({self.svc.paths.data})",
                hint="stop it, or share a PostgreSQL database (--database-url) between "
                "several serve processes",
            ) from None
        again = self.queue.requeue_unfinished()
        if again:
            log.info("%d unfinished job(s) queued again", again)
        await asyncio.to_thread(fail_orphans, self.svc, self.queue.unfinished_clusters())
        self._loop_task = asyncio.create_task(self._loop(), name="flotte embedded worker")

    async def stop(self) -> None:
        if self._loop_task is not None:
            await end_task(self._loop_task, again=1.0)
            self._loop_task = None
        if self._running:
            # Unfinished jobs stay "doing" and are queued again at the next start.
            _, pending = await asyncio.wait(self._running, timeout=self.grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self._lock.close()

    async def submit(
        self, kind: str, payload: dict[str, Any], *, project: str | None, cluster: str | None
    ) -> str:
        job_id = await asyncio.to_thread(self.queue.add, kind, payload, project, cluster)
        self._wake.set()
        return str(job_id)

    def enqueue(self, s: Session, job: NewJob) -> str:
        return str(add_job(s, job.kind, job.payload, job.project, job.cluster))

    def queued(self, job_id: str) -> None:
        self._wake.set()

    async def get(self, job_id: str) -> JobState:
        job = await asyncio.to_thread(self.queue.get, int(job_id))
        if job is None:
            raise KeyError(f"no job {job_id}")
        return _state(job)

    # -- the worker --------------------------------------------------------------------
    async def _loop(self) -> None:
        while True:
            free = self.concurrency - len(self._running)
            if free > 0:
                busy = set(self._running.values())
                for job in self.queue.claim(busy, free):
                    task = asyncio.create_task(self._run(job), name=f"flotte job {job.id}")
                    self._running[task] = job.cluster
                    task.add_done_callback(self._done)
            self._wake.clear()
            # asyncio.timeout, not wait_for: Python 3.11's wait_for drops a cancel that
            # lands as the wait ends (a job finishing sets _wake just as stop() cancels
            # this loop), and the loop went on for ever (a test hung 30 min in CI).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll):
                    await self._wake.wait()

    def _done(self, task: asyncio.Task[None]) -> None:
        self._running.pop(task, None)
        self._wake.set()  # a slot and maybe a cluster are free

    async def _run(self, job: QueuedJob) -> None:
        try:
            error = await execute(self.svc, self.runner, job.kind, job.payload)
        except Retry as busy:
            log.info("job %s: %s; trying again in %.0f s", job.id, busy, self.retry_after)
            await asyncio.sleep(self.retry_after)
            self.queue.finish(job.id, TODO, "")
            return
        self.queue.finish(job.id, FAILED if error else SUCCEEDED, error)


def _state(job: QueuedJob) -> JobState:
    return JobState(
        id=str(job.id), kind=job.kind, status=job.status, cluster=job.cluster,
        project=job.project, error=job.error, attempts=job.attempts,
    )  # fmt: skip
