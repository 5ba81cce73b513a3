"""What keeps listing and creating flat as clusters grow (issue 17), on the fake driver."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from flotte.models import EngineOptions, NodeState
from flotte.service import Service


@pytest.fixture
def svc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Service]:
    monkeypatch.setenv("FLOTTE_FAKE_DIR", str(tmp_path / "cloud"))
    monkeypatch.delenv("FLOTTE_DATABASE_URL", raising=False)
    s = Service(tmp_path / "home")
    yield s
    s.close()


def test_states_of_many_nodes_match_one_by_one(svc: Service) -> None:
    spec, secrets = svc.resolve("c", driver="fake", node_count=5, no_provision=True)
    asyncio.run(svc.clusters.create(spec, secrets))
    spec, secrets = svc.machines.spec("m", "fake", {}, EngineOptions(), no_provision=True)
    asyncio.run(svc.machines.create(spec, secrets))
    asyncio.run(svc.machines.action("c-node-1", "stop"))
    asyncio.run(svc.machines.action("m", "stop"))
    nodes = svc.machines.all()

    together = asyncio.run(svc.machines.states(nodes))

    one_by_one = [asyncio.run(svc.machines.state(n)) for n in nodes]
    assert together == one_by_one
    by_name = dict(zip((n.name for n in nodes), together, strict=True))
    assert by_name["c-node-1"] == by_name["m"] == NodeState.STOPPED
    assert by_name["c-node-0"] == NodeState.RUNNING
