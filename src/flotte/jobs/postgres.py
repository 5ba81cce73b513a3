"""The PostgreSQL backend: jobs in procrastinate's queue, shared by every process.

Several ``flotte serve`` processes, on one machine or several, share the queue.
procrastinate (a maintained job queue on PostgreSQL) gives what a hand-written queue
would get wrong: jobs claimed atomically (``FOR UPDATE SKIP LOCKED``), woken by
LISTEN/NOTIFY, a ``lock`` per job so two jobs of one cluster never run at once and
run in submission order, retries on a schedule, and a heartbeat row per worker.

A worker killed with SIGKILL stops beating; its jobs stay "doing". Every worker
looks for such stalled jobs (``JobManager.get_stalled_jobs``: jobs of workers whose
heartbeat is older than ``stalled_after``) and puts them back in the queue
(``retry_job``), where the next free worker takes them and the use case resumes from
what is recorded. The cluster's advisory lock (``state.pglock``) is the second guard:
even a job wrongly thought dead cannot run beside itself.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from typing import Any

import procrastinate
from procrastinate import exceptions as pexc
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from flotte.jobs import base
from flotte.jobs.base import FAILED, Jobs, JobState, NewJob, Retry, Runner, execute
from flotte.service import Service

log = logging.getLogger("flotte.jobs")

QUEUE = "flotte"
KEEP_HOURS = 7 * 24  # finished jobs are kept this long (then only the clusters tell)
PRUNE_EVERY = 3600.0  # seconds between two clean-ups of finished jobs
TASK = "flotte.request"
_STATUS = {
    "todo": "todo",
    "doing": "doing",
    "succeeded": "succeeded",
    "failed": "failed",
    "cancelled": "failed",
    "aborted": "failed",
}


def libpq_url(url: str) -> str:
    """The libpq form of a SQLAlchemy URL (``postgresql+psycopg://`` -> ``postgresql://``)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class PostgresJobs(Jobs):
    """Jobs in procrastinate's tables; with the worker role, this process runs some."""

    def __init__(
        self,
        url: str,
        svc: Service | None = None,
        *,
        runner: Runner = base.run_request,
        worker: bool = True,
        concurrency: int = 8,
        heartbeat: float = 2.0,
        stalled_after: float = 10.0,
        retry_after: float = 2.0,
        grace: float = 5.0,
    ) -> None:
        if worker and svc is None:
            raise ValueError("a worker needs a Service to run jobs with")
        self.svc, self.runner, self.worker = svc, runner, worker
        self.concurrency, self.heartbeat, self.stalled_after, self.grace = (
            concurrency, heartbeat, stalled_after, grace,
        )  # fmt: skip
        self.app = procrastinate.App(
            connector=procrastinate.PsycopgConnector(
                conninfo=libpq_url(url), min_size=1, max_size=max(4, concurrency + 2)
            )
        )
        # Busy cluster: try again shortly. Cancelled by a shutdown (SIGTERM): back in the
        # queue at once, for another worker or this one's next start to resume.
        retry = procrastinate.RetryStrategy(
            max_attempts=1000,
            wait=int(retry_after),
            retry_exceptions={Retry, asyncio.CancelledError},  # type: ignore[arg-type]
        )

        @self.app.task(name=TASK, queue=QUEUE, retry=retry)
        async def run(**job: Any) -> None:
            assert self.svc is not None
            error = await execute(self.svc, self.runner, job["kind"], job["payload"])
            if error:
                # The cluster's status_reason already says why; procrastinate records
                # the failure when the task raises.
                raise JobFailed(error)

        self._task = run
        # Deferring on the caller's own connection (procrastinate's ``connection=``
        # option) needs a synchronous connector; this one is never opened: it only runs
        # the INSERT on the connection it is given.
        self._in_transaction = procrastinate.App(connector=procrastinate.SyncPsycopgConnector())
        # Each task, and how long it may take to end once cancelled (end_task's again).
        self._tasks: list[tuple[asyncio.Task[Any], float]] = []

    async def start(self) -> None:
        await self.app.open_async()
        await self._ensure_schema()
        if not self.worker:
            return
        if self.svc is not None:
            queued = await self._unfinished_clusters()
            await asyncio.to_thread(base.fail_orphans, self.svc, queued)
        name = f"{socket.gethostname()}:{os.getpid()}"
        self._tasks = [
            (asyncio.create_task(
                self.app.run_worker_async(
                    queues=[QUEUE], name=name, concurrency=self.concurrency,
                    install_signal_handlers=False, update_heartbeat_interval=self.heartbeat,
                    stalled_worker_timeout=max(60.0, self.stalled_after * 3),
                    fetch_job_polling_interval=1.0, shutdown_graceful_timeout=self.grace,
                    delete_jobs="never",
                ),
                name="flotte procrastinate worker",
            ), self.grace + 10.0),  # its grace period, to let running jobs end
            (asyncio.create_task(self._recover(), name="flotte stalled jobs"), 1.0),
        ]  # fmt: skip

    async def stop(self) -> None:
        await asyncio.gather(*(base.end_task(task, again=again) for task, again in self._tasks))
        self._tasks = []
        await self.app.close_async()

    async def _ensure_schema(self) -> None:
        """procrastinate's tables, made once: the first process takes a lock to make them."""
        async with self.app.connector.pool.connection() as conn:  # type: ignore[attr-defined]
            await conn.execute("SELECT pg_advisory_lock(hashtextextended('flotte:jobs-schema', 0))")
            try:
                cur = await conn.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")
                row = await cur.fetchone()
                if not (row and row[0]):
                    await self.app.schema_manager.apply_schema_async()
            finally:
                await conn.execute(
                    "SELECT pg_advisory_unlock(hashtextextended('flotte:jobs-schema', 0))"
                )

    async def _recover(self) -> None:
        """Put the jobs of workers that stopped beating back in the queue; now and then,
        forget jobs finished long ago (the queue would otherwise only grow)."""
        manager = self.app.job_manager
        pruned = 0.0
        while True:
            await asyncio.sleep(self.heartbeat)
            try:
                if time.monotonic() - pruned > PRUNE_EVERY:
                    pruned = time.monotonic()
                    await manager.delete_old_jobs(
                        nb_hours=KEEP_HOURS, queue=QUEUE, include_failed=True,
                        include_cancelled=True, include_aborted=True,
                    )  # fmt: skip
                stalled = await manager.get_stalled_jobs(
                    queue=QUEUE, seconds_since_heartbeat=self.stalled_after
                )
                for job in stalled:
                    try:
                        await manager.retry_job(job)
                        log.warning("job %s of a worker that stopped beating: queued again", job.id)
                    except pexc.ConnectorException:
                        pass  # another process took it back first
            except pexc.ConnectorException as err:
                log.warning("looking for stalled jobs failed: %s", err)

    async def submit(
        self, kind: str, payload: dict[str, Any], *, project: str | None, cluster: str | None
    ) -> str:
        deferrer = self._task.configure(lock=f"cluster:{cluster}" if cluster else None)
        job_id = await deferrer.defer_async(
            kind=kind, payload=payload, project=project, cluster=cluster
        )
        return str(job_id)

    async def _unfinished_clusters(self) -> set[str]:
        """The clusters with a job waiting or running, in any process (the job's lock
        names its cluster)."""
        async with self.app.connector.pool.connection() as conn:  # type: ignore[attr-defined]
            cur = await conn.execute(
                "SELECT DISTINCT lock FROM procrastinate_jobs "
                "WHERE queue_name = %s AND status IN ('todo', 'doing') AND lock LIKE 'cluster:%%'",
                (QUEUE,),
            )
            return {str(row[0]).removeprefix("cluster:") for row in await cur.fetchall()}

    def enqueue(self, s: Session, job: NewJob) -> str:
        """procrastinate's job row, written on ``s``'s own PostgreSQL connection (the
        state database holds procrastinate's tables): committed with the change, or not
        at all; workers hear of it (NOTIFY) at the commit."""
        conn = s.connection().connection.driver_connection
        lock = f"cluster:{job.cluster}" if job.cluster else None
        deferrer = self._in_transaction.configure_task(
            TASK, queue=QUEUE, lock=lock, connection=conn
        )
        job_id = deferrer.defer(
            kind=job.kind, payload=job.payload, project=job.project, cluster=job.cluster
        )
        return str(job_id)

    def queued(self, job_id: str) -> None:
        pass  # workers hear of it from PostgreSQL (procrastinate's NOTIFY at the commit)

    async def get(self, job_id: str) -> JobState:
        jobs = list(await self.app.job_manager.list_jobs_async(id=int(job_id)))
        if not jobs:
            raise KeyError(f"no job {job_id}")
        job = jobs[0]
        args = job.task_kwargs
        raw = str(getattr(job.status, "value", job.status))
        status = _STATUS.get(raw, raw)
        return JobState(
            id=job_id, kind=str(args.get("kind", "")), status=status,
            cluster=_text(args.get("cluster")), project=_text(args.get("project")),
            error="failed: see the cluster's status_reason" if status == FAILED else "",
            attempts=int(job.attempts or 0),
        )  # fmt: skip


class JobFailed(Exception):
    """A job's request failed (already recorded on its cluster)."""


def _text(value: object) -> str | None:
    return None if value is None else str(value)
