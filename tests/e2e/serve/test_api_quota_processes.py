"""Quotas hold across processes: 20 creates sent at once to two API processes sharing one
database, against a quota of 5, give exactly 5 clusters (SQLite; PostgreSQL when its
test fixture is there)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from fixtures.serve import ServeProcess, login, serve_env

ROOT = Path(__file__).resolve().parents[3]
PASSWORD = "quota-pass-1"


@pytest.fixture
def servers(serve_database: str | None, tmp_path: Path) -> Iterator[list[ServeProcess]]:
    """On SQLite, then on PostgreSQL (``fixtures.postgres``)."""
    env = serve_env(tmp_path, FLOTTE_FAKE_DIR=str(tmp_path / "fake-cloud"))
    if serve_database:
        env["FLOTTE_DATABASE_URL"] = serve_database
    started: list[ServeProcess] = []
    try:
        for roles in ([], ["--api"]):  # one embedded worker an installation on SQLite
            server = ServeProcess(tmp_path / "home", env)
            started.append(server.start("--default-driver", "fake", *roles))
        yield started
    finally:
        for server in started:
            server.stop()


def test_twenty_creates_on_two_processes_against_a_quota_of_five(
    servers: list[ServeProcess],
) -> None:
    first, second = servers
    first.user("alice", "lab", PASSWORD)
    first.user("root", "ops", PASSWORD, admin=True)
    alice = {"X-Auth-Token": login(first.url, "alice", PASSWORD)}
    root = {"X-Auth-Token": login(second.url, "root", PASSWORD)}
    r = httpx.post(
        f"{first.url}/v1/clustertemplates",
        json={"name": "t", "coe": "swarm", "image_id": "x", "labels": {"no_provision": "true"}},
        headers=alice,
    )
    assert r.status_code == 201, r.text
    project = r.json()["project_id"]
    r = httpx.post(
        f"{second.url}/v1/quotas",
        json={"project_id": project, "resource": "Cluster", "hard_limit": 5},
        headers=root,
    )
    assert r.status_code == 201, r.text

    def create(i: int) -> int:
        url = servers[i % 2].url
        body = {"name": f"c{i}", "cluster_template_id": "t", "node_count": 0}
        return httpx.post(f"{url}/v1/clusters", json=body, headers=alice, timeout=120).status_code

    with ThreadPoolExecutor(20) as pool:
        codes = sorted(pool.map(create, range(20)))
    assert codes == [202] * 5 + [403] * 15
    for server in servers:
        listed = httpx.get(f"{server.url}/v1/clusters", headers=alice, timeout=60).json()[
            "clusters"
        ]
        assert len(listed) == 5
