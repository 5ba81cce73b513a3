"""Each node's floating IP is asked beside its boot, not after every node's boot
(drivers/openstack/nodes.py).

A cluster's calls queue on the account's budget of calls at once. Started as a task
alone, each node's floating-IP request took its place behind every node's boot: at 100
nodes on devcloud the addresses came last and were the create's tail (bench/scale.py,
181 s against 146 s with the requests side by side). Here all of the account's slots but
one are held, so the create's calls go out one at a time, in the order they queued.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from os_helpers import Cloud, cluster_group, leaked, node_specs

from flotte.drivers.openstack import connection as openstack_conn

NODES = 4


async def test_each_nodes_floating_ip_goes_out_beside_its_boot(
    cloud: Cloud, make_driver: Any, installation: str
) -> None:
    before = cloud.inventory()
    driver = make_driver()
    group = cluster_group("fipboot", installation, NODES)
    await driver.check(group)
    shared = await driver.prepare(group)
    provider = await openstack_conn.provider(driver.ctx.options, pool=driver.ctx.clients)
    posted: list[str] = []

    def seen(response: Any, *args: Any, **kwargs: Any) -> None:
        path = response.request.path_url.split("?")[0]
        if response.request.method == "POST" and path.endswith(("/servers", "/floatingips")):
            posted.append(path.rsplit("/", 1)[1])

    hooks = provider.conn.session.session.hooks["response"]
    hooks.append(seen)
    release = threading.Event()
    held = [
        asyncio.create_task(provider.run(lambda: release.wait(300), "a held call"))
        for _ in range(provider.limit - 1)
    ]
    records: list[Any] = []
    try:
        await asyncio.sleep(0.2)  # they hold every slot but one
        records = await asyncio.gather(*(driver.create(s, shared) for s in node_specs(group)))
        still_held = sum(not t.done() for t in held)
    finally:
        release.set()
        await asyncio.gather(*held)
        hooks.remove(seen)
        await asyncio.gather(*(driver.remove(r) for r in records))
        await driver.release(group, shared)
    assert still_held == provider.limit - 1  # the create had one slot throughout
    assert sorted(posted) == ["floatingips"] * NODES + ["servers"] * NODES, posted
    # Alone on one slot, the requests alternate: no kind runs ahead of the other. Queued
    # behind the boots, the addresses came as four boots, then four addresses.
    ahead = [
        abs(posted[:i].count("servers") - posted[:i].count("floatingips"))
        for i in range(len(posted) + 1)
    ]
    assert max(ahead) <= 1, posted
    assert await driver.leftovers(group.owner) == []
    assert leaked(cloud, before) == {}
