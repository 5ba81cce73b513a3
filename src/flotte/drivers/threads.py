"""Blocking SDK calls on threads of the driver's own, as many as it allows at once.

``asyncio.to_thread`` runs every call of the process on the loop's default pool, which
has ``cpu + 4`` threads: 6 on a 2-core machine. A driver bounded at 16 calls at once was
then bounded at 6, shared with every other driver of the process (every cluster under
``flotte serve``); measured on OpenStack at 400 nodes (2026-12-04).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def own_pool(size: int, name: str) -> ThreadPoolExecutor:
    """A pool of ``size`` threads (made as calls need them; idle ones end with it)."""
    return ThreadPoolExecutor(max(1, size), thread_name_prefix=name)


async def in_thread(pool: ThreadPoolExecutor, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
    """``fn(*args, **kw)`` on ``pool``, with the caller's context, as ``to_thread`` does."""
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kw)
    return await asyncio.get_running_loop().run_in_executor(pool, call)
