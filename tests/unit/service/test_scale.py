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


class _Concurrency:
    """A step's work that counts how many run at once."""

    def __init__(self) -> None:
        self.running = self.peak = 0

    async def work(self) -> None:
        self.running += 1
        self.peak = max(self.peak, self.running)
        await asyncio.sleep(0.01)
        self.running -= 1


async def test_unbounded_steps_all_reach_the_batch_together() -> None:
    """Ten creates that only finish once all ten wait together (as a batch does) run
    under parallelism 2; bounded steps beside them still respect it."""
    from flotte.engine.executor import Executor, Step

    arrived, together = 0, asyncio.Event()
    bounded = _Concurrency()

    async def batched() -> None:
        nonlocal arrived
        arrived += 1
        if arrived == 10:
            together.set()
        await together.wait()

    steps = [Step(f"c{i}", batched, unbounded=True) for i in range(10)]
    steps += [Step(f"p{i}", bounded.work) for i in range(6)]
    result = await asyncio.wait_for(Executor(parallelism=2).run(steps), timeout=10)
    assert result.ok and len(result.results) == 16
    assert bounded.peak <= 2


async def test_a_parallelism_the_user_gave_bounds_self_paced_steps_too() -> None:
    """`--parallelism N` makes the executor strict: unbounded steps wait their turn."""
    from flotte.engine.executor import Executor, Step

    paced = _Concurrency()
    steps = [Step(f"c{i}", paced.work, unbounded=True) for i in range(12)]
    result = await Executor(parallelism=3, strict=True).run(steps)
    assert result.ok and len(result.results) == 12
    assert paced.peak == 3
