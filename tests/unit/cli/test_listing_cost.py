"""What keeps the listing commands quick (issue 17), checked without timing them.

``machine ls``, ``cluster list`` and ``cluster show`` load neither SQLAlchemy nor the service when the
state database is current (they read it with sqlite3), nor rich (piped tables are padded by
``cli/plain_table``), nor the docker SDK, SSH, cloud SDKs, nor the use cases that change
clusters (``flotte.service`` loads them on first use). The fake driver parses its cloud
file once for a listing's N states, and still sees what another process wrote.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flotte.models import EngineOptions, NodeState
from flotte.service import Service

NOT_LOADED = [
    "rich",
    "docker",
    "asyncssh",
    "openstack",
    "boto3",
    "yaml",
    "alembic",
    "flotte.service.clusters",
    "flotte.service.overflow",
    "flotte.service.nodegroups",
    "flotte.service.resolve",
    "flotte.service.health",
]
# Read with sqlite3 (state/reader.py) when the database is current: no ORM, no use case.
READ_WITHOUT_ORM = ["sqlalchemy", "flotte.service", "flotte.state.store"]

PROBE = """
import json, sys
from flotte.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit as exit:
    assert not exit.code, exit.code
specs = sys.modules.get("flotte.specs")
built = [m for m in ("TemplateSpec", "ClusterSpec") if specs and getattr(specs, m).__pydantic_complete__]
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
print(json.dumps(built), file=sys.stderr)
"""


def loaded_by(argv: list[str], home: Path, fake_dir: Path) -> set[str]:
    env = {**os.environ, "FLOTTE_HOME": str(home), "FLOTTE_FAKE_DIR": str(fake_dir)}
    env.pop("FLOTTE_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], env=env, capture_output=True, text=True, check=True
    )
    lines = done.stderr.strip().splitlines()
    return set(json.loads(lines[-2])) | {f"built:{m}" for m in json.loads(lines[-1])}


@pytest.fixture
def recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A home with a lone machine and a two-node cluster on the fake driver."""
    home, fake_dir = tmp_path / "home", tmp_path / "cloud"
    monkeypatch.setenv("FLOTTE_FAKE_DIR", str(fake_dir))
    monkeypatch.delenv("FLOTTE_DATABASE_URL", raising=False)
    svc = Service(home)
    spec, secrets = svc.machines.spec("m", "fake", {}, EngineOptions(), no_provision=True)
    asyncio.run(svc.machines.create(spec, secrets))
    spec, secrets = svc.resolve("c", driver="fake", node_count=1, no_provision=True)
    asyncio.run(svc.clusters.create(spec, secrets))
    svc.close()
    return home, fake_dir


@pytest.mark.parametrize(
    "argv",
    [
        ["machine", "ls"],
        ["machine", "ls", "-f", "json"],
        ["cluster", "list"],
        ["cluster", "show", "c"],
        ["cluster", "show", "c", "-f", "json"],
    ],
)
def test_listings_leave_heavy_modules_unloaded(
    argv: list[str], recorded: tuple[Path, Path]
) -> None:
    loaded = loaded_by(argv, *recorded)
    # ls asks states; cluster show reads the recorded health and asks no driver
    assert ("flotte.drivers.fake" in loaded) == (argv[0] == "machine")
    assert sorted(loaded & set(NOT_LOADED)) == []
    assert sorted(loaded & set(READ_WITHOUT_ORM)) == []
    if argv[0] == "cluster":  # nothing to run: no event loop (asyncio loads ssl), no planner
        assert sorted(loaded & {"asyncio", "ssl", "flotte.planner", "flotte.engine.executor"}) == []
    # pydantic models are built on first validation: records hold ClusterSpecs, and no
    # listing validates a TemplateSpec
    assert "built:TemplateSpec" not in loaded
    assert "built:ClusterSpec" in loaded


def test_fake_states_parse_the_cloud_once_and_see_later_writes(
    recorded: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from flotte.drivers import fake

    home, fake_dir = recorded
    cloud = fake_dir / "cloud.json"
    settled = time.time() - 10  # older than a kernel tick: cacheable
    os.utime(cloud, (settled, settled))
    parsed: list[str] = []

    class CountingJson:  # the fake driver's own json, counting what it parses
        dumps = staticmethod(json.dumps)

        @staticmethod
        def loads(text: str) -> object:
            parsed.append(text)
            return json.loads(text)

    monkeypatch.setattr(fake, "json", CountingJson)
    svc = Service(home)
    try:
        nodes = svc.machines.all()
        assert asyncio.run(svc.machines.states(nodes)) == [NodeState.RUNNING] * len(nodes)
        assert len(parsed) == 1

        data = json.loads(cloud.read_text())  # another process stops machine m
        for res in data["resources"].values():
            if res.get("name") == "m":
                res["state"] = "stopped"
        cloud.with_suffix(".new").write_text(json.dumps(data))
        os.replace(cloud.with_suffix(".new"), cloud)
        found = asyncio.run(svc.machines.states(nodes))
        states = dict(zip([n.name for n in nodes], found, strict=True))
        assert states["m"] == NodeState.STOPPED
        assert states["c-node-0"] == NodeState.RUNNING
    finally:
        svc.close()
