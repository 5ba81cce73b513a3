"""Self-healing of real local Swarm clusters: faults made out of band with ``docker kill``.

A ``flotte watch`` process runs beside the test at the default interval; the test only
kills containers (as a crash or an OOM killer would) and reads what flotte recorded in
its database, what the swarm says, and what is left on the Docker engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import docker
import pytest

from fixtures.local import Flotte, docker_cli, labelled
from flotte.models import CLUSTER_KEY, NODE_KEY

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def recorded(flotte: Flotte, cluster: str) -> tuple[str, dict[str, str]]:
    """The health the watch recorded (read from the database, not checked again)."""
    with contextlib.closing(sqlite3.connect(flotte.home / "flotte.db", timeout=10)) as conn:
        row = conn.execute(
            "SELECT health_status, health_status_reason FROM clusters WHERE name = ?", (cluster,)
        ).fetchone()
    return (str(row[0]), json.loads(row[1] or "{}")) if row else ("", {})


def swarm_nodes(flotte: Flotte, cluster: str) -> list[dict[str, str]]:
    out = docker_cli(flotte, cluster, "node", "ls", "--format", "{{json .}}")
    return [json.loads(line) for line in out.splitlines()]


def running_replicas(flotte: Flotte, cluster: str, service: str) -> int:
    out = docker_cli(
        flotte, cluster, "service", "ps", service, "--filter", "desired-state=running",
        "--format", "{{.CurrentState}}",
    )  # fmt: skip
    return sum(1 for line in out.splitlines() if line.startswith("Running"))


def until(what: str, ok: Any, timeout: float, every: float = 0.25) -> float:
    """Seconds until ``ok()`` is true; fails with ``what`` after ``timeout``."""
    started = time.monotonic()
    while True:
        try:
            if ok():
                return time.monotonic() - started
        except subprocess.CalledProcessError:
            pass  # the swarm may refuse a question while it changes
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(every)


@contextlib.contextmanager
def watching(flotte: Flotte, *names: str) -> Iterator[subprocess.Popen[str]]:
    proc = flotte.spawn("watch", *names)
    try:
        yield proc
    finally:
        proc.terminate()  # the watch finishes its round first
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(60)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_dead_worker_replaced_and_service_back(
    flotte: Flotte, docker_engine: docker.DockerClient, hello_image: str
) -> None:
    name = f"hlw{uuid.uuid4().hex[:4]}"
    flotte(
        "cluster", "create", name, "--driver", "local", "--master-count", "1",
        "--node-count", "2", "--labels", "auto_healing_enabled=true",
    )  # fmt: skip
    try:
        # Healthy: 100 watch rounds change nothing (no node, no container, no heal).
        from flotte.service import Service, health

        containers = {c.name: c.id for c in docker_engine.containers.list(
            ignore_removed=True, filters={"label": f"{CLUSTER_KEY}={name}"})}  # fmt: skip
        journal = flotte.journal(f"cluster:{name}")
        svc = Service(flotte.home)
        try:

            async def hundred() -> list[dict[str, Any]]:
                return [
                    item for _ in range(100) for item in await health.watch_round(svc, names=[name])
                ]

            out = asyncio.run(hundred())
        finally:
            svc.close()
        assert {o.get("health_status") for o in out} == {"HEALTHY"}
        assert not any("decision" in o or "error" in o for o in out)
        after = {c.name: c.id for c in docker_engine.containers.list(
            ignore_removed=True, filters={"label": f"{CLUSTER_KEY}={name}"})}  # fmt: skip
        assert after == containers
        new = flotte.journal(f"cluster:{name}")[len(journal) :]
        assert new == [("health:HEALTHY", "done")]  # the first check; no heal

        # A service of 3 replicas on the nodes that hold its image (no registry here).
        flotte("cluster", "load-image", name, hello_image)
        for node in (f"{name}-master-0", f"{name}-node-0", f"{name}-node-1"):
            docker_cli(flotte, name, "node", "update", "--label-add", "hello=1", node)
        docker_cli(
            flotte, name, "service", "create", "--detach", "--name", "hello", "--replicas", "3",
            "--endpoint-mode", "dnsrr", "--no-resolve-image",
            "--constraint", "node.labels.hello==1", hello_image,
        )  # fmt: skip
        until("3 replicas running", lambda: running_replicas(flotte, name, "hello") == 3, 60)

        with watching(flotte, name) as watch:
            time.sleep(2)  # the watch's first round has seen the cluster healthy
            victim = node_container(docker_engine, f"{name}-node-1")
            volume = f"{victim.name}-docker"
            victim.kill()
            killed = time.monotonic()
            detected = until(
                "UNHEALTHY recorded", lambda: recorded(flotte, name)[0] == "UNHEALTHY", 15
            )
            reason = recorded(flotte, name)[1]
            assert "container stopped" in reason[f"{name}-node-1"]

            def replaced() -> bool:
                nodes = swarm_nodes(flotte, name)
                names = {n["Hostname"] for n in nodes}
                return (
                    f"{name}-node-1" not in names
                    and len(nodes) == 3
                    and all(n["Status"] == "Ready" for n in nodes)
                )

            until("a new worker Ready", replaced, 60 - (time.monotonic() - killed))
            until(
                "3 replicas running again",
                lambda: running_replicas(flotte, name, "hello") == 3,
                60 - (time.monotonic() - killed),
            )
            healed = time.monotonic() - killed
            until("HEALTHY recorded", lambda: recorded(flotte, name)[0] == "HEALTHY", 30)
            watch.terminate()
            out_text = watch.communicate(timeout=60)[0]
        assert f"cluster {name}: HEALTHY -> UNHEALTHY" in out_text
        assert f"healed: replaced {name}-node-1 by" in out_text
        names = [c.name for c in docker_engine.containers.list(ignore_removed=True, all=True)]
        assert victim.name not in names
        assert volume not in [v.name for v in docker_engine.volumes.list()]
        assert recorded(flotte, name)[0] == "HEALTHY"
        print(f"worker: detected in {detected:.1f} s, healthy again in {healed:.1f} s")
    finally:
        flotte("cluster", "delete", name, check=False)
    assert labelled(docker_engine, {CLUSTER_KEY: name}) == []


def node_container(engine: docker.DockerClient, node: str) -> Any:
    """The container of a node (its name carries the installation's id)."""
    (found,) = engine.containers.list(ignore_removed=True, filters={"label": f"{NODE_KEY}={node}"})
    return found


def test_dead_manager_replaced_and_the_leader_never_lost(
    flotte: Flotte, docker_engine: docker.DockerClient
) -> None:
    name = f"hlm{uuid.uuid4().hex[:4]}"
    flotte(
        "cluster", "create", name, "--driver", "local", "--master-count", "3",
        "--node-count", "0", "--labels", "auto_healing_enabled=true",
    )  # fmt: skip
    leaderless: list[str] = []
    stop = threading.Event()

    def leader_watch() -> None:
        # asked of master-0, the leader since swarm init (the test kills master-2)
        while not stop.is_set():
            res = subprocess.run(
                ["docker", "--context", f"flotte-{name}", "node", "ls", "--format",
                 "{{.ManagerStatus}}"],
                capture_output=True, text=True, env=flotte.env, timeout=30,
            )  # fmt: skip
            if res.returncode != 0 or "Leader" not in res.stdout.split():
                leaderless.append(res.stderr.strip() or res.stdout.strip())
            time.sleep(0.3)

    try:
        poller = threading.Thread(target=leader_watch, daemon=True)
        poller.start()
        with watching(flotte, name):
            time.sleep(2)
            victim = node_container(docker_engine, f"{name}-master-2")
            victim.kill()
            killed = time.monotonic()
            until("UNHEALTHY recorded", lambda: recorded(flotte, name)[0] == "UNHEALTHY", 15)

            def quorum_back() -> bool:
                nodes = swarm_nodes(flotte, name)
                managers = [n for n in nodes if n["ManagerStatus"]]
                return (
                    f"{name}-master-2" not in {n["Hostname"] for n in nodes}
                    and len(managers) == 3
                    and all(n["ManagerStatus"] in ("Leader", "Reachable") for n in managers)
                    and all(n["Status"] == "Ready" for n in nodes)
                )

            until("3 reachable managers", quorum_back, 90)
            healed = time.monotonic() - killed
            until("HEALTHY recorded", lambda: recorded(flotte, name)[0] == "HEALTHY", 30)
        stop.set()
        poller.join(30)
        assert leaderless == []
        check = json.loads(flotte("cluster", "check", name, "-f", "json").stdout)
        assert check["quorum"]["managers"] == 3 and check["quorum"]["reachable"] == 3
        assert check["quorum"]["can_lose"] == 1
        names = [c.name for c in docker_engine.containers.list(ignore_removed=True, all=True)]
        assert victim.name not in names
        print(f"manager: quorum of 3 back in {healed:.1f} s")
    finally:
        stop.set()
        flotte("cluster", "delete", name, check=False)
    assert labelled(docker_engine, {CLUSTER_KEY: name}) == []
