"""Run a graph of steps in parallel, keep going past failures, roll back on request.

A step starts as soon as everything it requires has succeeded. When a step fails,
every step below it is skipped, but independent branches keep running, and the run
returns every error rather than the first. Rollback then undoes what succeeded, in
reverse dependency order: a step is undone only after everything that depended on it.

Before each step the journal records the intent, and after it the outcome, so that a
process killed mid-run leaves a record of which infrastructure calls may have happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from flotte.engine.graph import Graph
from flotte.errors import FlotteError

log = logging.getLogger(__name__)


@dataclass
class Step:
    """One unit of work; ``undo`` reverses it during rollback."""

    name: str
    run: Callable[[], Awaitable[Any]]
    requires: tuple[str, ...] = ()
    undo: Callable[[], Awaitable[None]] | None = None
    label: str = ""  # what progress displays show, e.g. "node-1 create"
    # Not counted against ``parallelism`` (unless the executor is strict): a step that
    # hands its work to a driver that bounds its own calls and gathers many into one
    # (EC2's RunInstances, Neutron's bulk ports). Bounding these too launched 1,000 EC2
    # nodes in waves of 16 and held 400 OpenStack creates to 16 in flight (bench/scale.py).
    unbounded: bool = False


class Journal(Protocol):
    """Returns once the event is recorded: a step's call starts after its intent is."""

    async def intent(self, step: str) -> None: ...

    async def outcome(self, step: str, *, ok: bool, detail: str = "") -> None: ...


class Events(Protocol):
    def __call__(self, step: Step, phase: str, detail: str = "") -> None: ...


def _no_events(step: Step, phase: str, detail: str = "") -> None:
    return None


@dataclass
class RunResult:
    results: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, BaseException] = field(default_factory=dict)
    skipped: set[str] = field(default_factory=set)
    undone: list[str] = field(default_factory=list)
    undo_errors: dict[str, BaseException] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.errors and not self.skipped


class Executor:
    """Walk steps with at most ``parallelism`` running at once."""

    def __init__(
        self,
        parallelism: int = 16,
        journal: Journal | None = None,
        events: Events = _no_events,
        *,
        strict: bool = False,
    ) -> None:
        if parallelism < 1:
            raise ValueError("parallelism must be at least 1")
        self.parallelism = parallelism
        # Strict: ``parallelism`` bounds unbounded steps too (the user asked for it).
        self.strict = strict
        self.journal = journal
        self.events = events

    @staticmethod
    def graph(steps: Iterable[Step]) -> Graph[str]:
        graph: Graph[str] = Graph()
        names = set()
        for step in steps:
            names.add(step.name)
            graph.add(step.name, step.requires)
        unknown = set(graph) - names
        if unknown:
            raise ValueError(f"steps require unknown steps: {sorted(unknown)}")
        graph.toposort()  # raises CycleError before anything runs
        return graph

    async def run(self, steps: list[Step]) -> RunResult:
        by_name = {s.name: s for s in steps}
        graph = self.graph(steps)
        result = RunResult()
        started = time.monotonic()
        await self._walk(graph, by_name, result, forward=True)
        result.seconds = time.monotonic() - started
        return result

    async def rollback(self, steps: list[Step], result: RunResult) -> None:
        """Undo every step that succeeded in ``result``, dependants first."""
        done = [s for s in steps if s.name in result.results and s.undo is not None]
        if not done:
            return
        graph = self.graph(steps).subgraph(s.name for s in done).reversed()
        by_name = {s.name: s for s in done}
        undo = RunResult()
        await self._walk(graph, by_name, undo, forward=False)
        result.undone = list(undo.results)
        result.undo_errors = undo.errors

    async def _walk(
        self,
        graph: Graph[str],
        steps: dict[str, Step],
        result: RunResult,
        *,
        forward: bool,
    ) -> None:
        waiting = {name: set(graph.requires(name)) for name in graph}
        running: dict[asyncio.Task[Any], str] = {}
        sem = asyncio.Semaphore(self.parallelism)
        finished: set[str] = set()

        async def one(name: str) -> Any:
            step = steps[name]
            action = step.run if forward else step.undo
            assert action is not None
            phase = "" if forward else "undo:"
            free = step.unbounded and forward and not self.strict
            async with contextlib.nullcontext() if free else sem:
                if self.journal:
                    await self.journal.intent(phase + name)
                self.events(step, phase + "start")
                try:
                    value = await action()
                except BaseException as err:
                    if self.journal:
                        await self.journal.outcome(phase + name, ok=False, detail=str(err))
                    raise
                if self.journal:
                    await self.journal.outcome(phase + name, ok=True)
                return value

        def launch_ready() -> None:
            for name in list(waiting):
                if not waiting[name]:
                    del waiting[name]
                    running[asyncio.create_task(one(name), name=name)] = name

        def skip_below(name: str) -> None:
            for dep in graph.dependants(name):
                if dep in waiting:
                    del waiting[dep]
                    result.skipped.add(dep)
                    self.events(steps[dep], "skipped", f"needs {name}")

        launch_ready()
        try:
            while running:
                done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    name = running.pop(task)
                    step = steps[name]
                    err = task.exception()
                    if err is None:
                        result.results[name] = task.result()
                        self.events(step, "done" if forward else "undone")
                        finished.add(name)
                        for other in waiting.values():
                            other.discard(name)
                    else:
                        log.debug("step %s failed", name, exc_info=err)
                        result.errors[name] = err
                        self.events(step, "failed" if forward else "undo-failed", str(err))
                        skip_below(name)
                launch_ready()
        except BaseException:
            # Cancelled (Ctrl-C) or crashed: stop what is in flight, then re-raise.
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            raise


def errors_line(result: RunResult) -> str:
    """The first error of a run, for a status_reason."""
    first = next(iter(result.errors.items()), None)
    if first is None:
        return ""
    step, err = first
    text = str(err) if isinstance(err, FlotteError) else f"{type(err).__name__}: {err}"
    return f"{step}: {text}"
