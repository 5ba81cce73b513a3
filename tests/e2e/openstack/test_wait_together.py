"""A server's ACTIVE wait runs on while servers of its own cluster come up, and only
those (drivers/openstack/wait.py, ``patience_end`` and ``awaited_with``); and neither
the watcher's polls nor Nova's server requests are queued behind the account's other
calls.

Real servers on devcloud, watched by the driver's own ServerWatcher; a check that
never passes stands for a server stuck in BUILD (Nova cannot be told to keep one there).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import pytest
from os_helpers import Cloud, cluster_group, leaked, node_specs

from flotte.drivers.openstack import connection as openstack_conn
from flotte.drivers.openstack.nodes import delete_server
from flotte.drivers.openstack.wait import ServerWatcher, awaited_with
from flotte.errors import TimeoutError_

T = TypeVar("T")

TIMEOUT = 8.0
SECOND_AFTER = 3.0  # when the cluster's second server is awaited (and comes through)


def _never(server: Any) -> bool:
    return False


def _active(server: Any) -> bool:
    return server is not None and server.status == "ACTIVE"


async def test_only_the_servers_own_cluster_keeps_its_wait_going(
    cloud: Cloud, make_driver: Any, installation: str
) -> None:
    before = cloud.inventory()
    driver = make_driver()
    groups = [cluster_group("wait-a", installation, 2), cluster_group("wait-b", installation, 1)]
    made: dict[str, tuple[Any, Any, list[Any]]] = {}
    try:
        for group in groups:
            await driver.check(group)
            shared = await driver.prepare(group)
            made[group.name] = (group, shared, [])
            made[group.name][2].extend(
                await asyncio.gather(*(driver.create(s, shared) for s in node_specs(group)))
            )
        (a, _, (a0, a1)), (b, _, (b0,)) = made["wait-a"], made["wait-b"]
        provider = await openstack_conn.provider(driver.ctx.options, pool=driver.ctx.clients)
        watcher = ServerWatcher.of(provider)
        loop = asyncio.get_running_loop()

        async def stuck(record: Any, owner: Any) -> tuple[float, str]:
            started = loop.time()
            with pytest.raises(TimeoutError_) as err:
                await watcher.wait(
                    record.provider_id,
                    record.name,
                    _never,
                    timeout=TIMEOUT,
                    what=f"server {record.name} to become ACTIVE",
                    together=awaited_with(owner),
                )
            return loop.time() - started, str(err.value)

        start = loop.time()
        stuck_a = asyncio.create_task(stuck(a0, a.owner))
        stuck_b = asyncio.create_task(stuck(b0, b.owner))
        await asyncio.sleep(SECOND_AFTER)
        came = loop.time() - start
        await watcher.wait(
            a1.provider_id,
            a1.name,
            _active,
            timeout=TIMEOUT,
            what="the second server",
            together=awaited_with(a.owner),
        )
        (waited_a, said_a), (waited_b, said_b) = await asyncio.gather(stuck_a, stuck_b)

        # The other cluster's server gave up on its own clock (its end is decided by a
        # poll after it, so how much later depends on the cloud's speed) ...
        assert waited_b >= TIMEOUT, (waited_b, said_b)
        assert "none awaited with it" not in said_b, said_b
        # ... this cluster's ran on from its sibling coming up, and says so.
        assert waited_a >= came + TIMEOUT, (waited_a, came)
        assert f"none awaited with it came up in the last {TIMEOUT:.0f} s" in said_a, said_a
        assert said_a.startswith(f"server {a0.name} to become ACTIVE: still waiting after")
    finally:
        for group, shared, records in made.values():
            await asyncio.gather(*(driver.remove(r) for r in records))
            await driver.release(group, shared)
    assert leaked(cloud, before) == {}


async def test_the_watchers_poll_is_not_queued_behind_the_accounts_calls(
    cloud: Cloud, make_driver: Any, installation: str
) -> None:
    """400 nodes created at once queue hundreds of writes on the account's budget of
    calls; the watcher's polls go beside them, or every ACTIVE wait runs out unseen."""
    driver = make_driver()
    async with _one_server(cloud, driver, "wait-lane", installation) as (group, records, provider):
        server = await _beside_held_calls(
            provider,
            lambda: ServerWatcher.of(provider).wait(
                records[0].provider_id,
                records[0].name,
                _active,
                timeout=60,
                what="the server",
                together=awaited_with(group.owner),
            ),
        )
        assert server.status == "ACTIVE"


async def test_a_servers_requests_are_not_queued_behind_the_accounts_other_calls(
    cloud: Cloud, make_driver: Any, installation: str
) -> None:
    """Nova's server requests (boot, delete, power) have a budget of their own: at 200
    nodes the floating IPs' calls held the account's slots and the last boot went out
    40 s after the floor's. With every slot held, a server is still deleted at once."""
    driver = make_driver()
    async with _one_server(cloud, driver, "wait-nova", installation) as (group, records, provider):
        record = records[0]
        await _beside_held_calls(
            provider,
            lambda: delete_server(
                provider, record.provider_id, record.name, group.owner, timeout=60
            ),
        )
        assert record.provider_id not in {s.id for s in cloud.servers()}


async def test_a_wait_runs_out_only_once_a_poll_sent_after_its_end_saw_the_server(
    cloud: Cloud, make_driver: Any, installation: str, proxied: Any
) -> None:
    """A busy cloud answered a 400-server listing in 20-56 s (stop 34): a wait must not
    fail a server that is up because the poll showing it came back after the wait's end.
    Only a poll sent after the end decides; one that does not come back within another
    timeout is not awaited."""
    name, nova, _ = proxied
    driver = make_driver(openstack_cloud=name)
    async with _one_server(cloud, driver, "wait-slowpoll", installation) as (
        group,
        records,
        provider,
    ):
        timeout, listing = 4.0, 6.0  # every look takes longer than a wait's timeout
        # One server awaited is asked by its own GET, several by a listing: slow both.
        nova.slow = [(lambda req: req.method == "GET" and "/servers/" in req.path, listing)]
        watcher = ServerWatcher(provider)  # a fresh one: nothing known before the slow polls
        loop = asyncio.get_running_loop()

        async def timed(check: Any, together: str) -> tuple[float, Any]:
            started = loop.time()
            try:
                result = await watcher.wait(
                    records[0].provider_id,
                    records[0].name,
                    check,
                    timeout=timeout,
                    what="the server",
                    together=together,
                )
            except TimeoutError_ as err:
                result = err
            return loop.time() - started, result

        try:
            (up_after, up), (stuck_after, stuck) = await asyncio.gather(
                timed(_active, awaited_with(group.owner)), timed(_never, "a server never up")
            )
        finally:
            nova.slow = []  # the removal's own looks at full speed
        # The server was ACTIVE all along: its wait ended with the slow poll, past its end.
        assert not isinstance(up, TimeoutError_), up
        assert up.status == "ACTIVE"
        assert timeout < listing - 0.5 <= up_after < 2 * timeout, up_after
        # One that never comes up ran out once no poll sent after its end came back
        # within another timeout (the second poll, sent at about ``listing``, was slower).
        assert isinstance(stuck, TimeoutError_), stuck
        assert 2 * timeout - 0.5 <= stuck_after < 2 * timeout + 2, stuck_after
        assert str(stuck).startswith("the server: still waiting after")


async def _beside_held_calls(provider: Any, step: Callable[[], Awaitable[T]]) -> T:
    """Run ``step`` while calls hold every slot of the account's budget for 6 s (a slow
    cloud's writes), twice as many as it allows at once; queued behind them, it would
    take two rounds of 6 s. It must be done before the first round is."""
    held = 6.0
    busy = [
        asyncio.create_task(provider.run(lambda: time.sleep(held), "a slow call"))
        for _ in range(2 * provider.limit)
    ]
    await asyncio.sleep(0.2)  # they hold every slot
    loop = asyncio.get_running_loop()
    start = loop.time()
    result = await step()
    took = loop.time() - start
    still_busy = sum(not t.done() for t in busy)
    await asyncio.gather(*busy)
    assert took < held - 1, took
    assert still_busy == len(busy), still_busy  # the account's slots were all held
    return result


@contextlib.asynccontextmanager
async def _one_server(
    cloud: Cloud, driver: Any, name: str, installation: str
) -> AsyncIterator[tuple[Any, list[Any], Any]]:
    """A one-node cluster on ``driver``: its group, its records and the account's
    provider; removed after the test, whatever happened, and nothing left behind."""
    before = cloud.inventory()
    group = cluster_group(name, installation, 1)
    await driver.check(group)
    shared = await driver.prepare(group)
    records: list[Any] = []
    try:
        records = list(await asyncio.gather(*(driver.create(s, shared) for s in node_specs(group))))
        provider = await openstack_conn.provider(driver.ctx.options, pool=driver.ctx.clients)
        yield group, records, provider
    finally:
        await asyncio.gather(*(driver.remove(r) for r in records))
        await driver.release(group, shared)
    assert leaked(cloud, before) == {}
