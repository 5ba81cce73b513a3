"""Answering many callers of one lookup with one request.

``machine ls`` and the health prober ask every node's state at once, one driver call
per node. A thousand EC2 machines were a thousand DescribeInstances (paced by the
driver's rate limiter: most of a minute), a thousand OpenStack servers a thousand GETs.
A :class:`Batcher` collects the keys asked in the same moment (callers whose tasks
started together ask within a few milliseconds) and answers them all with one call of
``fetch``, which splits the keys itself when its API takes a bounded number.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

Fetch = Callable[[list[K]], Awaitable[Mapping[K, V]]]


class Batcher(Generic[K, V]):
    """``await get(key)``: the value ``fetch`` found for ``key`` (None if absent), asked
    together with every key asked within ``window`` seconds of the first."""

    def __init__(self, fetch: Fetch[K, V], window: float = 0.005) -> None:
        self._fetch = fetch
        self._window = window
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: dict[K, list[asyncio.Future[V | None]]] = {}
        self._task: asyncio.Task[None] | None = None

    async def get(self, key: K) -> V | None:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new event loop (the CLI runs several): start over
            self._loop, self._pending, self._task = loop, {}, None
        future: asyncio.Future[V | None] = loop.create_future()
        self._pending.setdefault(key, []).append(future)
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._flush(), name="batch-lookup")
        return await future

    async def _flush(self) -> None:
        while self._pending:  # keys asked while a fetch was in flight make the next batch
            await asyncio.sleep(self._window)
            batch, self._pending = self._pending, {}
            try:
                found = await self._fetch(list(batch))
            except Exception as err:  # each caller of this batch gets the error, none hangs
                for futures in batch.values():
                    for f in futures:
                        if not f.done():
                            f.set_exception(err)
                continue
            except BaseException:  # cancelled with the loop: so are the callers
                for futures in batch.values():
                    for f in futures:
                        f.cancel()
                raise
            for key, futures in batch.items():
                for f in futures:
                    if not f.done():
                        f.set_result(found.get(key))
