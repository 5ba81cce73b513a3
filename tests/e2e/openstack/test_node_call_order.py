"""Each node's floating IP is asked beside its boot, not after every node's boot
(drivers/openstack/nodes.py, connection.py).

Started as a task alone, each node's floating-IP request once took its place behind
every node's boot: at 100 nodes on devcloud the addresses came last and were the
create's tail (bench/scale.py, 181 s against 146 s with the requests side by side).
Nova's server requests now have a budget of calls of their own: here every slot of it
is held, so no boot can go out, and the floating IPs must go out all the same.
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
        asyncio.create_task(provider.run(lambda: release.wait(300), "a held boot", servers=True))
        for _ in range(provider.limit)
    ]
    records: list[Any] = []
    creating = asyncio.gather(
        *(driver.create(s, shared) for s in node_specs(group)), return_exceptions=True
    )
    try:
        await asyncio.sleep(0.2)  # they hold every slot of Nova's budget
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while posted.count("floatingips") < NODES and loop.time() < deadline:
            await asyncio.sleep(0.1)
        while_held = list(posted)
    finally:
        release.set()
        await asyncio.gather(*held)
        made = await creating
        records = [r for r in made if not isinstance(r, BaseException)]
        hooks.remove(seen)
        await asyncio.gather(*(driver.remove(r) for r in records))
        await driver.release(group, shared)
    assert len(records) == NODES, made
    # Every address went out while no boot could; then the boots.
    assert while_held == ["floatingips"] * NODES, while_held
    assert sorted(posted) == ["floatingips"] * NODES + ["servers"] * NODES, posted
    assert await driver.leftovers(group.owner) == []
    assert leaked(cloud, before) == {}
