"""The executor: parallel, keeps going past failures, skips dependants, rolls back."""

from __future__ import annotations

import asyncio
import time

import pytest

from flotte.engine.executor import Executor, Step
from flotte.engine.graph import CycleError


class Recorder:
    def __init__(self) -> None:
        self.log: list[str] = []

    async def intent(self, step: str) -> None:
        self.log.append(f"intent {step}")

    async def outcome(self, step: str, *, ok: bool, detail: str = "") -> None:
        self.log.append(f"{'done' if ok else 'failed'} {step}")


def sleeper(log: list[str], name: str, seconds: float = 0.05, fail: bool = False):  # type: ignore[no-untyped-def]
    async def run() -> str:
        await asyncio.sleep(seconds)
        if fail:
            raise RuntimeError(f"{name} broke")
        log.append(name)
        return name

    return run


async def test_independent_steps_run_in_parallel() -> None:
    log: list[str] = []
    steps = [Step(f"n{i}", sleeper(log, f"n{i}", 0.2)) for i in range(10)]
    started = time.monotonic()
    result = await Executor(parallelism=10).run(steps)
    assert result.ok and len(result.results) == 10
    assert time.monotonic() - started < 1.0  # ten 0.2 s steps at once, not 2 s in a row


async def test_parallelism_bounds_concurrency() -> None:
    running = 0
    peak = 0

    async def work() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02)
        running -= 1

    await Executor(parallelism=3).run([Step(f"s{i}", work) for i in range(12)])
    assert peak == 3


async def test_failure_skips_dependants_but_not_other_branches() -> None:
    log: list[str] = []
    steps = [
        Step("net", sleeper(log, "net")),
        Step("a", sleeper(log, "a", fail=True), ("net",)),
        Step("a-join", sleeper(log, "a-join"), ("a",)),
        Step("ready", sleeper(log, "ready"), ("a-join", "b")),
        Step("b", sleeper(log, "b", 0.2), ("net",)),
        Step("c", sleeper(log, "c", fail=True)),
    ]
    journal = Recorder()
    result = await Executor(journal=journal).run(steps)
    assert set(result.errors) == {"a", "c"}  # every error, not just the first
    assert result.skipped == {"a-join", "ready"}
    assert "b" in result.results  # the independent branch finished
    assert "intent a" in journal.log and "failed a" in journal.log
    assert not any(entry.endswith("ready") for entry in journal.log)


async def test_rollback_undoes_in_reverse_dependency_order() -> None:
    undone: list[str] = []

    def undo(name: str):  # type: ignore[no-untyped-def]
        async def run() -> None:
            undone.append(name)

        return run

    log: list[str] = []
    steps = [
        Step("net", sleeper(log, "net"), undo=undo("net")),
        Step("n1", sleeper(log, "n1"), ("net",), undo=undo("n1")),
        Step("n2", sleeper(log, "n2", 0.1), ("net",), undo=undo("n2")),
        Step("swarm", sleeper(log, "swarm", fail=True), ("n1", "n2")),
    ]
    ex = Executor()
    result = await ex.run(steps)
    assert not result.ok
    await ex.rollback(steps, result)
    assert undone[-1] == "net" and set(undone) == {"net", "n1", "n2"}
    assert sorted(result.undone) == ["n1", "n2", "net"]


async def test_cycles_and_unknown_requirements_are_refused_before_running() -> None:
    log: list[str] = []
    with pytest.raises(CycleError):
        await Executor().run(
            [Step("a", sleeper(log, "a"), ("b",)), Step("b", sleeper(log, "b"), ("a",))]
        )
    with pytest.raises(ValueError, match="unknown"):
        await Executor().run([Step("a", sleeper(log, "a"), ("ghost",))])
    assert log == []


async def test_cancellation_stops_running_steps() -> None:
    log: list[str] = []
    task = asyncio.create_task(Executor().run([Step("slow", sleeper(log, "slow", 5))]))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert log == []
