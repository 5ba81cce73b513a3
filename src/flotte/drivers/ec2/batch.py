"""Gather calls that arrive together into one batch call.

The service's executor creates (and removes) the nodes of a plan in parallel, one
driver call per node. On EC2 one RunInstances can launch them all and one
TerminateInstances can end them all, which matters for the per-account request buckets
(RunInstances: 5 requests, refilled at 2/s). A :class:`Batcher` holds each call for a
short window; calls that arrive meanwhile with the same key run as one batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class Batcher(Generic[Item, Result]):
    """``await batcher.submit(key, item)`` -> that item's result from ``run(key, items)``."""

    def __init__(
        self,
        run: Callable[[Hashable, list[Item]], Awaitable[list[Result]]],
        window: float = 0.05,
    ) -> None:
        self._run = run
        self.window = window
        self._pending: list[tuple[Hashable, Item, asyncio.Future[Result]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # strong references until done

    async def submit(self, key: Hashable, item: Item) -> Result:
        fut: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.append((key, item, fut))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush())
            self._tasks.add(self._flusher)
            self._flusher.add_done_callback(self._tasks.discard)
        return await fut

    async def _flush(self) -> None:
        await asyncio.sleep(self.window)
        batch, self._pending = self._pending, []
        self._flusher = None  # calls from now on start the next batch
        groups: dict[Hashable, list[tuple[Item, asyncio.Future[Result]]]] = {}
        for key, item, fut in batch:
            groups.setdefault(key, []).append((item, fut))
        await asyncio.gather(*(self._one(key, entries) for key, entries in groups.items()))

    async def _one(self, key: Hashable, entries: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            results = await self._run(key, [item for item, _ in entries])
        except Exception as err:
            for _, fut in entries:
                if not fut.done():
                    fut.set_exception(err)
            return
        for (_, fut), result in zip(entries, results, strict=True):
            if not fut.done():
                fut.set_result(result)


async def gather_all(*aws: Awaitable[Any]) -> list[Any]:
    """Run independent calls at once; raise the first error after all have finished
    (so no call is left running behind the error, as plain gather would)."""
    results = await asyncio.gather(*aws, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results
