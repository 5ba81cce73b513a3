"""Both job backends against their real databases (SQLite; PostgreSQL on loopback),
running the service's requests (``flotte.service.requests``) through the real use cases
on the fake cloud. As the API does, each cluster is recorded before its job is queued."""

from __future__ import annotations

import asyncio
import os

import pytest

from flotte.jobs import EmbeddedJobs, Jobs, open_jobs
from flotte.service import Service
from flotte.state.jobqueue import JobQueue
from flotte.state.status import CREATE_COMPLETE, CREATE_FAILED, CREATE_IN_PROGRESS


def jobs_of(svc: Service) -> Jobs:
    return open_jobs(svc, concurrency=4)


def record(svc: Service, name: str, **flags: object) -> None:
    """What POST /v1/clusters records before it queues the create."""
    spec, _ = svc.resolve(name, driver="fake", node_count=1, no_provision=True, flags=flags)
    svc.store.add_cluster(spec, CREATE_IN_PROGRESS)


def leftovers(svc: Service, cluster: str) -> list[str]:
    driver = svc.driver("fake", {"fake_dir": os.environ["FLOTTE_FAKE_DIR"]})
    return asyncio.run(driver.leftovers(svc.owner(cluster=cluster)))


def test_creates_run_in_parallel_and_a_clusters_jobs_in_order(svc: Service) -> None:
    for i in range(4):
        record(svc, f"c{i}", fake_latency=0.2)

    async def scenario() -> list[str]:
        async with jobs_of(svc) as jobs:
            ids = [
                await jobs.submit("cluster.create", {"cluster": f"c{i}"}, project="p",
                                  cluster=f"c{i}")
                for i in range(4)
            ]  # fmt: skip
            # Submitted at once: the delete of c0 waits for its create, never overtakes it.
            ids.append(await jobs.submit("cluster.delete", {"cluster": "c0"}, project="p",
                                         cluster="c0"))  # fmt: skip
            states = [await jobs.wait(i, 60) for i in ids]
        return [s.status for s in states]

    assert asyncio.run(scenario()) == ["succeeded"] * 5
    assert svc.store.find_cluster("c0") is None and leftovers(svc, "c0") == []
    for i in (1, 2, 3):
        assert svc.clusters.get(f"c{i}").status == CREATE_COMPLETE
        assert len(leftovers(svc, f"c{i}")) == 3  # a network, a master, a worker


def test_a_failed_request_fails_its_job_only(svc: Service) -> None:
    record(svc, "f", fake_fail="f-node-0")
    record(svc, "g")

    async def scenario() -> tuple[str, str]:
        async with jobs_of(svc) as jobs:
            bad = await jobs.submit("cluster.create", {"cluster": "f"}, project=None, cluster="f")
            good = await jobs.submit("cluster.create", {"cluster": "g"}, project=None, cluster="g")
            return (await jobs.wait(bad, 60)).status, (await jobs.wait(good, 60)).status

    assert asyncio.run(scenario()) == ("failed", "succeeded")
    failed = svc.clusters.get("f")  # as in Magnum: kept, with why, until it is deleted
    assert failed.status == CREATE_FAILED and "f-node-0" in failed.status_reason


def test_a_busy_cluster_waits_for_its_lock(svc: Service) -> None:
    """A CLI command (or another process) holds the cluster's lock: the job runs after."""
    record(svc, "b")

    async def scenario() -> str:
        async with jobs_of(svc) as jobs:
            with svc.lock("cluster", "b"):
                job = await jobs.submit("cluster.create", {"cluster": "b"}, project=None,
                                        cluster="b")  # fmt: skip
                await asyncio.sleep(1.5)
                assert not (await jobs.get(job)).finished
            return (await jobs.wait(job, 60)).status

    assert asyncio.run(scenario()) == "succeeded"
    assert svc.clusters.get("b").status == CREATE_COMPLETE


def test_embedded_jobs_a_dead_process_was_running_resume_at_start(svc: Service) -> None:
    record(svc, "r")
    queue = JobQueue(svc.store)
    job = queue.add("cluster.create", {"cluster": "r"}, None, "r")
    assert [j.id for j in queue.claim(set(), 5)] == [job]  # "doing" when the process died

    async def scenario() -> str:
        async with EmbeddedJobs(svc) as jobs:
            return (await jobs.wait(str(job), 60)).status

    assert asyncio.run(scenario()) == "succeeded"
    assert svc.clusters.get("r").status == CREATE_COMPLETE


@pytest.mark.timeout(60)  # before the fix, it hung (asyncio.run could not end the loop)
def test_stop_ends_the_worker_even_as_a_job_wakes_it(svc: Service) -> None:
    """A job finishing wakes the worker loop just as a shutdown cancels it. Python 3.11's
    ``asyncio.wait_for`` dropped a cancel that landed as its wait ended, and the loop ran
    on: ``stop()`` (a test, ``flotte serve``'s shutdown) hung. Each interleaving in turn."""

    async def scenario() -> int:
        ended = 0
        for i in range(24):
            jobs = EmbeddedJobs(svc, poll=2.0)
            await jobs.start()
            for _ in range(i % 4):
                await asyncio.sleep(0)
            jobs._wake.set()  # what a finished job's callback does
            for _ in range(i % 3):
                await asyncio.sleep(0)
            await asyncio.wait_for(jobs.stop(), 5)
            ended += 1
        return ended

    assert asyncio.run(scenario()) == 24


def test_a_cluster_an_older_serve_left_in_progress_fails_at_start(svc: Service) -> None:
    """An older flotte serve recorded a change and stopped before it queued its job: the
    cluster stayed CREATE_IN_PROGRESS for ever. A worker's start marks such a cluster
    failed, with why; one with its job queued runs it; a CLI cluster is not touched."""
    for name in ("orphan", "queued"):
        spec, _ = svc.resolve(name, driver="fake", node_count=1, no_provision=True, flags={})
        svc.store.add_cluster(spec, CREATE_IN_PROGRESS, project="p")
    record(svc, "cli")  # a CLI command in progress (no project): its own re-run resumes it
    queued = JobQueue(svc.store).add("cluster.create", {"cluster": "queued"}, "p", "queued")

    async def scenario() -> str:
        async with jobs_of(svc) as jobs:
            return (await jobs.wait(str(queued), 60)).status

    if svc.store.url.startswith("postgresql"):
        # procrastinate's queue, not the embedded table, carries PostgreSQL's jobs
        async def submit() -> str:
            async with jobs_of(svc) as jobs:
                job = await jobs.submit(
                    "cluster.create", {"cluster": "queued"}, project="p", cluster="queued"
                )
                return (await jobs.wait(job, 60)).status

        assert asyncio.run(submit()) == "succeeded"
    else:
        assert asyncio.run(scenario()) == "succeeded"
    orphan = svc.clusters.get("orphan")
    assert orphan.status == CREATE_FAILED
    assert "stopped before it queued the job" in orphan.status_reason
    assert {g.status for g in orphan.nodegroups} == {CREATE_FAILED}
    assert svc.clusters.get("queued").status == CREATE_COMPLETE
    assert svc.clusters.get("cli").status == CREATE_IN_PROGRESS
    assert leftovers(svc, "orphan") == []  # nothing was made for it, nothing is touched
