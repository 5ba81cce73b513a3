"""Create something on OpenStack exactly once, although a response may be lost."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from flotte.drivers.openstack.connection import (
    RETRY_READ,
    Provider,
    backoff,
    is_transient,
    translate,
)

T = TypeVar("T")


async def create_once(
    p: Provider,
    what: str,
    create: Callable[[], T],
    find: Callable[[], Awaitable[T | None]],
    *,
    attempts: int = 5,
    servers: bool = False,
) -> T:
    """Create something exactly once although a response may be lost.

    A 500/503 can come *after* the cloud acted (a proxy, a gateway timeout), so a blind
    retry could make a second server. After each transient failure, look for what the
    lost request may have made (``find``, by name and owner marker) before trying again.
    """
    for attempt in range(attempts):
        try:
            return await p.run(create, what, retry=frozenset(), raw=True, servers=servers)
        except Exception as err:
            if attempt + 1 >= attempts or not is_transient(err, RETRY_READ):
                raise translate(err, what, p.spec) from err
            await asyncio.sleep(backoff(err, attempt))
            found = await find()
            if found is not None:
                return found
    raise AssertionError("unreachable")  # pragma: no cover
