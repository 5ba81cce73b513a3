"""``flotte serve`` killed once a request is recorded, before it answers: the restarted
service finishes the request.

The API recorded a change (a new cluster, a new desired spec, the move to
DELETE_IN_PROGRESS) in one transaction and queued the job that carries it out in
another: a process killed between the two left the cluster ``*_IN_PROGRESS`` with no
job, for ever (nothing else would ever touch it; the user could not even delete it).
Now the job is written in the transaction that records the change, on SQLite (the
embedded queue's table) and on PostgreSQL (procrastinate's tables, same database).

A real ``flotte serve`` process SIGKILLs itself right after committing the first
transaction that writes a ``*_IN_PROGRESS`` status into ``clusters``
(``kill_at_record/sitecustomize.py``, armed by a file the test creates just before the
request), for a create, a resize, a PATCH of node_count, a node group create, update and
delete, and a cluster delete. Each time a new ``flotte serve`` must bring the cluster to
a settled status with the fake cloud holding exactly the nodes recorded, and the delete
must leave no node in the cloud and no row.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from fixtures.serve import ServeProcess, login, serve_env

HOOK = Path(__file__).parent / "kill_at_record"
PASSWORD = "killed-pass-1"
LATEST = {"OpenStack-API-Version": "container-infra latest"}


class Scene:
    """One installation (SQLite or PostgreSQL) on the fake cloud, served by one
    ``flotte serve`` at a time, each able to kill itself at the record."""

    def __init__(self, tmp: Path, database: str | None) -> None:
        self.tmp, self.arm, self.cloud = tmp, tmp / "arm", tmp / "fake-cloud"
        self.env = serve_env(tmp, FLOTTE_FAKE_DIR=str(self.cloud))
        self.env["PYTHONPATH"] = f"{HOOK}{os.pathsep}{self.env['PYTHONPATH']}"
        self.env["FLOTTE_TEST_KILL_ARM"] = str(self.arm)
        if database:
            self.env["FLOTTE_DATABASE_URL"] = database
        self.url = database or f"sqlite:///{tmp / 'home' / 'flotte.db'}"
        self.server: ServeProcess | None = None
        self.headers: dict[str, str] = {}
        self.cluster = ""  # its uuid

    def start(self) -> ServeProcess:
        self.server = ServeProcess(self.tmp / "home", self.env).start("--default-driver", "fake")
        return self.server

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()

    def call(self, method: str, path: str, body: Any = None) -> httpx.Response:
        assert self.server is not None
        return httpx.request(
            method, f"{self.server.url}{path}", json=body, headers=self.headers, timeout=120
        )

    def killed_during(self, method: str, path: str, body: Any = None) -> None:
        """The request, sent with the kill armed: the server must die at its record."""
        assert self.server is not None and self.server.proc is not None
        self.arm.touch()
        try:
            r = self.call(method, path, body)
            raise AssertionError(f"{method} {path} answered {r.status_code}: {r.text}")
        except httpx.HTTPError:
            pass  # the connection died with the server
        assert self.server.proc.wait(30) == -9, self.server.log_tail()
        assert not self.arm.exists()

    def rows(self) -> tuple[dict[str, str], dict[str, str], list[str]]:
        """Read from the database itself: {cluster display name: status}, {node group:
        status}, the nodes recorded."""
        engine = create_engine(self.url)
        try:
            with engine.connect() as conn:
                clusters = conn.execute(text("SELECT display_name, status FROM clusters"))
                found = {str(name): str(status) for name, status in clusters}
                groups = conn.execute(text("SELECT name, status FROM nodegroups"))
                statuses = {str(name): str(status) for name, status in groups}
                nodes = sorted(r[0] for r in conn.execute(text("SELECT name FROM machines")))
        finally:
            engine.dispose()
        return found, statuses, nodes

    def cloud_nodes(self) -> list[str]:
        path = self.cloud / "cloud.json"
        if not path.exists():
            return []
        data = json.loads(path.read_text())
        return sorted(r["name"] for r in data["resources"].values() if r["kind"] == "node")

    def settled(self, done: Callable[[dict[str, str]], bool], timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:
            clusters, groups, _ = self.rows()
            if done(clusters) and not [s for s in groups.values() if "_IN_PROGRESS" in s]:
                return
            if time.monotonic() > deadline:
                log = self.server.log_tail() if self.server else ""
                raise AssertionError(f"not settled in {timeout:.0f} s: {clusters} {groups}\n{log}")
            time.sleep(0.5)


@pytest.fixture
def scene(serve_database: str | None, tmp_path: Path) -> Iterator[Scene]:
    made = Scene(tmp_path, serve_database)
    try:
        yield made
    finally:
        made.stop()


# Each change of cluster "web" (from 1 worker, then as the one before left it): the
# request, the worker count it leads to per node group.
Change = tuple[str, str, Any, dict[str, int]]
CHANGES: list[tuple[str, Callable[[str], Change]]] = [
    (
        "resize",
        lambda c: (
            "POST", f"/v1/clusters/{c}/actions/resize", {"node_count": 2}, {"node": 2}
        ),
    ),
    (
        "patch node_count",
        lambda c: (
            "PATCH", f"/v1/clusters/{c}",
            [{"op": "replace", "path": "/node_count", "value": 1}], {"node": 1},
        ),
    ),
    (
        "nodegroup create",
        lambda c: (
            "POST", f"/v1/clusters/{c}/nodegroups", {"name": "extra", "node_count": 1},
            {"node": 1, "extra": 1},
        ),
    ),
    (
        "nodegroup update",
        lambda c: (
            "PATCH", f"/v1/clusters/{c}/nodegroups/extra",
            [{"op": "replace", "path": "/node_count", "value": 2}], {"node": 1, "extra": 2},
        ),
    ),
    (
        "nodegroup delete",
        lambda c: ("DELETE", f"/v1/clusters/{c}/nodegroups/extra", None, {"node": 1}),
    ),
]  # fmt: skip


def _expected(internal: str, workers: dict[str, int]) -> list[str]:
    names = [f"{internal}-master-0"]
    for group, count in workers.items():
        names += [f"{internal}-{group}-{i}" for i in range(count)]
    return sorted(names)


def test_serve_killed_between_record_and_job_finishes_every_request_on_restart(
    scene: Scene,
) -> None:
    server = scene.start()
    server.user("alice", "lab", PASSWORD)
    scene.headers = {"X-Auth-Token": login(server.url, "alice", PASSWORD), **LATEST}
    body = {"name": "t", "coe": "swarm-mode", "image_id": "x", "labels": {"no_provision": "true"}}
    assert scene.call("POST", "/v1/clustertemplates", body).status_code == 201

    create = {"name": "web", "cluster_template_id": "t", "node_count": 1}
    scene.killed_during("POST", "/v1/clusters", create)
    clusters, _, _ = scene.rows()
    assert clusters == {"web": "CREATE_IN_PROGRESS"}  # the kill landed at the record
    scene.start()
    scene.settled(lambda c: c.get("web") == "CREATE_COMPLETE")
    listed = scene.call("GET", "/v1/clusters").json()["clusters"]
    scene.cluster = listed[0]["uuid"]
    internal = scene.rows()[2][0].rsplit("-master-0", 1)[0]
    assert scene.rows()[2] == scene.cloud_nodes() == _expected(internal, {"node": 1})

    for what, change in CHANGES:
        method, path, body, workers = change(scene.cluster)
        scene.killed_during(method, path, body)
        assert scene.rows()[0]["web"] == "UPDATE_IN_PROGRESS", what
        scene.start()
        scene.settled(lambda c: c.get("web") == "UPDATE_COMPLETE")
        nodes = _expected(internal, workers)
        assert scene.rows()[2] == nodes, what
        assert scene.cloud_nodes() == nodes, what

    scene.killed_during("DELETE", f"/v1/clusters/{scene.cluster}")
    assert scene.rows()[0] == {"web": "DELETE_IN_PROGRESS"}
    scene.start()
    scene.settled(lambda c: not c)
    assert scene.rows() == ({}, {}, [])
    assert scene.cloud_nodes() == []
