"""A fuzz run of the API from its own OpenAPI document (schemathesis from PyPI): every
operation gets generated valid and invalid input, as an admin, on random names and on
names that exist; not one response may be a 5xx."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fixtures.serve import ServeProcess, login, serve_env

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.slow
PASSWORD = "root-pass-12"


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[ServeProcess]:
    env = serve_env(tmp_path, FLOTTE_FAKE_DIR=str(tmp_path / "fake-cloud"))
    server = ServeProcess(tmp_path / "home", env).start("--default-driver", "fake")
    try:
        yield server
    finally:
        server.stop()


def statuses(log: Path) -> Counter[int]:
    """Status of every request the API answered, from its JSON access log."""
    found: Counter[int] = Counter()
    for line in log.read_text().splitlines():
        # "<date> <time> INFO flotte.api.access {json}"
        _, marker, record = line.partition(" flotte.api.access ")
        if marker:
            found[json.loads(record)["status"]] += 1
    return found


def test_fuzz_from_the_openapi_document(serve: ServeProcess, tmp_path: Path) -> None:
    serve.user("root", "ops", PASSWORD, admin=True)
    auth = login(serve.url, "root", PASSWORD)
    headers = {"X-Auth-Token": auth}
    r = httpx.post(
        f"{serve.url}/v1/clustertemplates",
        json={
            "name": "web",
            "coe": "swarm",
            "image_id": "x",
            "public": True,
            "labels": {"no_provision": "true"},
        },
        headers=headers,
    )
    assert r.status_code == 201, r.text
    r = httpx.post(
        f"{serve.url}/v1/clusters",
        json={"name": "web", "cluster_template_id": "web", "node_count": 1},
        headers=headers,
    )
    assert r.status_code == 202, r.text
    project = (
        r.json() and httpx.get(f"{serve.url}/v1/clusters/web", headers=headers).json()["project_id"]
    )
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        "[parameters]\n"
        '"path.ident" = "web"\n'
        '"path.cluster" = "web"\n'
        f'"path.project" = "{project}"\n'
        '"path.resource" = "Cluster"\n'
    )
    exe = str(Path(sys.executable).with_name("schemathesis"))
    common = [
        "run", f"{serve.url}/openapi.json",
        "-H", f"X-Auth-Token: {auth}",
        "-H", "OpenStack-API-Version: container-infra latest",
        "--checks", "not_a_server_error",
        "--max-examples", "25",
        "--workers", "1",  # schemathesis 4.32's coverage phase trips over itself with more
        "--seed", "20261130",
    ]  # fmt: skip
    for run in ([exe, *common], [exe, "--config-file", str(config), *common]):
        res = subprocess.run(
            run, capture_output=True, text=True, timeout=1200, check=False, cwd=tmp_path
        )
        assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    seen = statuses(serve.log)
    print("responses by status:", dict(sorted(seen.items())))
    assert sum(seen.values()) > 2000
    assert sum(n for status, n in seen.items() if status >= 500) == 0
