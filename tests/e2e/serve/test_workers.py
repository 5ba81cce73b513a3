"""Two ``flotte serve --worker`` processes on one PostgreSQL: creates are spread over
both, a worker killed with SIGKILL mid-create has its jobs finished by the other within
30 s, and the fake cloud (a file both processes share) holds exactly what the clusters
should have: nothing duplicated, nothing leaked.

The clusters are recorded and their jobs submitted by this test through the store and
``flotte.jobs`` (what the API does for ``POST /v1/clusters``); the workers are real
processes, killed with a real SIGKILL.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flotte.jobs.postgres import PostgresJobs
from flotte.service import Service
from flotte.state.status import CREATE_COMPLETE, CREATE_IN_PROGRESS

CLUSTERS = [f"w{i}" for i in range(6)]
WORKERS_PER_CLUSTER = 2  # plus one master: three nodes and a network each


class Worker:
    def __init__(self, name: str, env: dict[str, str], log: Path) -> None:
        self.name, self.log = name, log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "flotte.cli.main", "serve", "--worker", "--name", name,
             "--concurrency", "2"],
            env=env, stdout=subprocess.DEVNULL, stderr=log.open("wb"),
        )  # fmt: skip

    def ran(self, event: str) -> set[str]:
        """Clusters whose create job this worker logged as ``event`` (started/done)."""
        found = set()
        for line in self.log.read_text(errors="replace").splitlines():
            if "job cluster.create " in line and f": {event}" in line:
                found.add(line.split("job cluster.create ", 1)[1].split(":", 1)[0])
        return found

    def wait_ready(self, timeout: float = 120) -> None:
        """Until the worker says it serves: its start (database, the job queue's schema
        under its advisory lock) is over, so stopping it now freezes no start-up lock."""
        deadline = time.monotonic() + timeout
        while "flotte serve: worker" not in self.log.read_text(errors="replace"):
            assert self.proc.poll() is None, f"{self.name} exited: {self.tail()}"
            assert time.monotonic() < deadline, f"{self.name} did not start: {self.tail()}"
            time.sleep(0.2)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-1500:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def env(pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {
        "FLOTTE_HOME": str(tmp_path / "home"),  # one installation: its CA and secret key
        "FLOTTE_DATABASE_URL": pg_url,
        "FLOTTE_FAKE_DIR": str(tmp_path / "cloud"),
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return {**os.environ, **values}


@pytest.fixture
def workers(env: dict[str, str], tmp_path: Path) -> Iterator[list[Worker]]:
    started = [Worker(n, env, tmp_path / f"{n}.log") for n in ("worker-a", "worker-b")]
    # Both started before a test sends a signal: a worker stopped (SIGSTOP) in the middle
    # of its start would hold what the other's start waits for.
    for w in started:
        w.wait_ready()
    yield started
    for w in started:
        w.stop()


def cloud_nodes(svc: Service) -> list[str]:
    """Every node the fake cloud holds for this installation (its own listing)."""
    driver = svc.driver("fake", {"fake_dir": os.environ["FLOTTE_FAKE_DIR"]})
    found: list[str] = []
    for name in CLUSTERS:
        found += [x for x in asyncio.run(driver.leftovers(svc.owner(cluster=name))) if "node" in x]
    return sorted(found)


def test_two_workers_share_creates_and_finish_a_killed_ones_jobs(
    env: dict[str, str], workers: list[Worker]
) -> None:
    svc = Service(env["FLOTTE_HOME"])
    for name in CLUSTERS:
        # Each call of the fake cloud takes 1 s: a create takes about 5 s, long enough
        # to kill a worker in the middle of it.
        spec, _ = svc.resolve(
            name, driver="fake", node_count=WORKERS_PER_CLUSTER, no_provision=True,
            flags={"fake_latency": 1.0},
        )  # fmt: skip
        svc.store.add_cluster(spec, CREATE_IN_PROGRESS)

    async def submit() -> list[str]:
        jobs = PostgresJobs(env["FLOTTE_DATABASE_URL"], worker=False)
        async with jobs:
            return [
                await jobs.submit("cluster.create", {"cluster": n}, project=None, cluster=n)
                for n in CLUSTERS
            ]

    ids = asyncio.run(submit())
    a, b = workers
    deadline = time.monotonic() + 60
    while not (a.ran("started") and b.ran("started")):  # both took work
        assert time.monotonic() < deadline, (
            f"the two workers did not both start jobs: {a.tail()} / {b.tail()}"
        )
        time.sleep(0.2)
    time.sleep(1.5)  # a's creates are now half made in the cloud
    killed_during = a.ran("started") - a.ran("done")
    assert killed_during, "worker-a had no create in progress to kill"
    a.proc.send_signal(signal.SIGKILL)
    a.proc.wait()
    killed_at = time.monotonic()

    async def wait_all() -> list[str]:
        jobs = PostgresJobs(env["FLOTTE_DATABASE_URL"], worker=False)
        async with jobs:
            return [(await jobs.wait(i, 60)).status for i in ids]

    assert asyncio.run(wait_all()) == ["succeeded"] * len(CLUSTERS)
    took = time.monotonic() - killed_at
    assert took < 30, f"the killed worker's jobs took {took:.0f} s to finish"
    assert killed_during <= b.ran("done")  # worker-b finished what worker-a was doing
    for name in CLUSTERS:
        assert svc.clusters.get(name).status == CREATE_COMPLETE
    expected = sorted(
        f"node {n}-{kind}-{i}"
        for n in CLUSTERS
        for kind, count in (("master", 1), ("node", WORKERS_PER_CLUSTER))
        for i in range(count)
    )
    assert cloud_nodes(svc) == expected  # each node once: none duplicated, none leaked
    svc.close()


def test_a_worker_stopped_with_sigterm_hands_its_jobs_back_at_once(
    env: dict[str, str], workers: list[Worker]
) -> None:
    """A clean stop does not wait for the stall delay: its jobs go back to the queue."""
    svc = Service(env["FLOTTE_HOME"])
    a, b = workers
    b.proc.send_signal(signal.SIGSTOP)  # worker-b takes nothing until worker-a is gone
    try:
        spec, _ = svc.resolve(
            "t0", driver="fake", node_count=4, no_provision=True, flags={"fake_latency": 4.0}
        )
        svc.store.add_cluster(spec, CREATE_IN_PROGRESS)

        async def submit() -> str:
            async with PostgresJobs(env["FLOTTE_DATABASE_URL"], worker=False) as jobs:
                return await jobs.submit(
                    "cluster.create", {"cluster": "t0"}, project=None, cluster="t0"
                )

        job = asyncio.run(submit())
        deadline = time.monotonic() + 60
        while "t0" not in a.ran("started"):
            assert time.monotonic() < deadline, f"worker-a did not start the create: {a.tail()}"
            time.sleep(0.2)
        time.sleep(1)  # mid-create (about 16 s long: longer than the grace)
        a.stop()  # SIGTERM: 5 s of grace, then the job is put back in the queue
        assert a.proc.returncode == 0
    finally:
        b.proc.send_signal(signal.SIGCONT)
    stopped_at = time.monotonic()

    async def wait() -> str:
        async with PostgresJobs(env["FLOTTE_DATABASE_URL"], worker=False) as jobs:
            return (await jobs.wait(job, 60)).status

    assert asyncio.run(wait()) == "succeeded"
    assert "t0" in b.ran("done") and "t0" not in a.ran("done")
    assert time.monotonic() - stopped_at < 25
    assert svc.clusters.get("t0").status == CREATE_COMPLETE
    driver = svc.driver("fake", {"fake_dir": os.environ["FLOTTE_FAKE_DIR"]})
    nodes = [x for x in asyncio.run(driver.leftovers(svc.owner(cluster="t0"))) if "node" in x]
    assert sorted(nodes) == ["node t0-master-0", *(f"node t0-node-{i}" for i in range(4))]
    svc.close()
