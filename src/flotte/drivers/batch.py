"""Answering many callers with one request.

The executor creates and removes a plan's nodes in parallel, one driver call per node;
``machine ls`` and the health prober ask every node's state at once. On EC2 one
RunInstances can launch them all and one DescribeInstances can describe 500 (the
per-account request buckets refill at a few per second: a thousand calls took most of
a minute); on OpenStack one server listing answers a thousand GETs.

- :class:`Batcher` gathers the calls that arrive together into one call of ``run``.
- :func:`answers` makes a ``run`` out of a lookup: each distinct key fetched once.
- :class:`SingleFlight` makes a value once for every caller that asks while it is
  being made (one login, one image lookup, however many nodes ask).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Any, Generic, TypeVar

G = TypeVar("G", bound=Hashable)
I = TypeVar("I")  # noqa: E741 - an item, beside G(roup) and R(esult)
R = TypeVar("R")
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

Run = Callable[[G, list[I]], Awaitable[list[R]]]


class Batcher(Generic[G, I, R]):
    """``await submit(group, item)``: that item's result from ``run(group, items)``.

    Items of a group submitted within ``window`` seconds of the first run together (the
    callers of one plan step or one listing ask within a few milliseconds).

    ``serial`` (lookups): while a group's run is in flight, what arrives for that group
    makes its next batch, so a thousand callers spread over a slow listing cost one more
    listing, not a hundred. Otherwise (creates, removes) what arrives later starts its
    own batch at once: a node must not wait for another batch's whole launch.

    ``limit`` (serial only): a run takes at most that many items, first come first;
    the rest make the next run, so the first callers have their answers while the
    later ones' run is made (a bulk create's first nodes go on to boot instead of
    waiting for the last ones' ports).
    """

    def __init__(
        self,
        run: Run[G, I, R],
        window: float = 0.005,
        *,
        serial: bool = True,
        limit: int | None = None,
    ) -> None:
        if limit is not None and (limit < 1 or not serial):
            raise ValueError("a limit on a run's items needs serial runs of at least one")
        self._run = run
        self.window = window
        self.serial = serial
        self.limit = limit
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: dict[G, list[tuple[I, asyncio.Future[R]]]] = {}
        self._flushers: dict[G, asyncio.Task[None]] = {}  # the task taking a group's items
        self._tasks: set[asyncio.Task[None]] = set()  # strong references until done

    async def submit(self, group: G, item: I) -> R:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new event loop (the CLI runs several): start over
            self._loop, self._pending, self._flushers = loop, {}, {}
        future: asyncio.Future[R] = loop.create_future()
        self._pending.setdefault(group, []).append((item, future))
        if group not in self._flushers:
            task = self._flushers[group] = loop.create_task(self._flush(group), name="batch")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _flush(self, group: G) -> None:
        # this loop's maps: a later event loop's reset gives the batcher new ones
        pending, flushers, me = self._pending, self._flushers, asyncio.current_task()
        try:
            while pending.get(group):
                await asyncio.sleep(self.window)
                batch = pending.pop(group)
                if self.limit is not None and len(batch) > self.limit:
                    batch, pending[group] = batch[: self.limit], batch[self.limit :]
                if not self.serial:
                    del flushers[group]  # what comes now starts its own batch
                    await self._one(group, batch)
                    return
                await self._one(group, batch)
        finally:
            # no await between the loop's last look and here: a later submit starts anew
            if flushers.get(group) is me:
                del flushers[group]
                for _, future in pending.pop(group, []):
                    future.cancel()  # left only if this task was cancelled: none may hang

    async def _one(self, group: G, batch: list[tuple[I, asyncio.Future[R]]]) -> None:
        try:
            results = await self._run(group, [item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"a batch of {len(batch)} got {len(results)} results")
        except Exception as err:  # each caller of this batch gets the error, none hangs
            for _, future in batch:
                if not future.done():
                    future.set_exception(err)
            return
        except BaseException:  # cancelled with the loop: so are the callers
            for _, future in batch:
                future.cancel()
            raise
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)


def answers(
    fetch: Callable[[G, list[K]], Awaitable[Mapping[K, V]]],
) -> Run[G, K, V | None]:
    """A :class:`Batcher` run for lookups: ``fetch`` gets each distinct key once and
    every caller its key's value (None: not found)."""

    async def run(group: G, keys: list[K]) -> list[V | None]:
        found = await fetch(group, list(dict.fromkeys(keys)))
        return [found.get(key) for key in keys]

    return run


class SingleFlight:
    """``await once(key, make)``: ``make()``'s answer, made once for every caller that
    asks while it is being made. A failure reaches those callers and is not kept."""

    def __init__(self) -> None:
        self._making: dict[Hashable, asyncio.Future[Any]] = {}

    async def once(self, key: Hashable, make: Callable[[], Awaitable[V]]) -> V:
        making = self._making.get(key)
        if making is None or making.get_loop() is not asyncio.get_running_loop():
            made = making = self._making[key] = asyncio.ensure_future(make())
            made.add_done_callback(
                lambda _: self._making.pop(key) if self._making.get(key) is made else None
            )
        # shielded: one caller cancelled does not cancel the others' answer
        value: V = await asyncio.shield(making)
        return value


async def gather_all(*aws: Awaitable[Any]) -> list[Any]:
    """Run independent calls at once; raise the first error after all have finished
    (so no call is left running behind the error, as plain gather would)."""
    results = await asyncio.gather(*aws, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results
