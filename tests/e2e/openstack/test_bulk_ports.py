"""Nodes' ports made together in one Neutron bulk request (drivers/openstack/bulk_ports).

Ten nodes created at once ask Neutron once for their ten ports. When Neutron refuses
the bulk request (all or nothing), each port is asked for on its own, so only the
nodes past the limit fail, each with its own error. Past CHUNK ports the requests go
one after another, each one's nodes answered before the next is sent.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from os_helpers import Cloud, cluster_group, leaked, node_specs

from flotte.drivers.openstack import connection as openstack_conn
from flotte.drivers.openstack.bulk_ports import CHUNK, create_port
from flotte.drivers.openstack.resources import neutron_attrs
from flotte.errors import FlotteError
from flotte.models import Owner

PORTS = "POST /v2.0/ports"


async def test_ten_nodes_ports_are_one_request(
    cloud: Cloud, make_driver: Any, installation: str
) -> None:
    before = cloud.inventory()
    driver = make_driver()
    group = cluster_group("bulk", installation, 10)
    await driver.check(group)
    shared = await driver.prepare(group)
    provider = await openstack_conn.provider(driver.ctx.options, pool=driver.ctx.clients)
    asked = provider.calls[PORTS]
    records = await asyncio.gather(*(driver.create(s, shared) for s in node_specs(group)))
    try:
        # One bulk request; a second when a node's ask came after the first had left.
        assert provider.calls[PORTS] - asked <= 2, provider.calls
        ports = {p.id: p for p in cloud.connection().network.ports()}
        mine = [ports[r.data["port_id"]] for r in records]
        assert [p.name for p in mine] == [s.name for s in node_specs(group)]
        assert len({r.data["port_id"] for r in records}) == 10
        assert len({r.address for r in records}) == 10
    finally:
        await asyncio.gather(*(driver.remove(r) for r in records))
        await driver.release(group, shared)
    assert await driver.leftovers(group.owner) == []
    assert leaked(cloud, before) == {}


async def test_a_refused_bulk_request_fails_only_the_ports_past_the_limit(
    cloud: Cloud, make_driver: Any, installation: str
) -> None:
    conn = cloud.connection()
    suffix = uuid.uuid4().hex[:6]
    network = conn.network.create_network(name=f"bulk-small-{suffix}")
    made: list[Any] = []
    try:
        # A /29 without DHCP: five addresses for ports (.2 to .6; .1 is the gateway).
        conn.network.create_subnet(
            network_id=network.id, ip_version=4, cidr="10.199.7.0/29", is_dhcp_enabled=False
        )
        driver = make_driver()
        provider = await openstack_conn.provider(driver.ctx.options, pool=driver.ctx.clients)
        owner = Owner(cluster="bulk-small", installation=installation)
        asked = provider.calls[PORTS]

        async def ask(i: int) -> Any:
            attrs = await neutron_attrs(
                provider, owner, name=f"bulk-small-{i}", network_id=network.id
            )
            return await create_port(provider, f"bulk-small-{i}", owner, attrs)

        results = await asyncio.gather(*(ask(i) for i in range(7)), return_exceptions=True)
        made = [r for r in results if not isinstance(r, BaseException)]
        failed = [r for r in results if isinstance(r, BaseException)]
        assert len(made) == 5 and len(failed) == 2, results
        assert all(isinstance(err, FlotteError) for err in failed), failed
        assert all("port for bulk-small-" in str(err) for err in failed), failed
        assert all("No more IP addresses" in str(err) for err in failed), failed
        # The bulk request, refused whole, then each port on its own (a refused one is
        # asked again a few times: an address may be freed meanwhile).
        assert provider.calls[PORTS] - asked >= 1 + 7, provider.calls
        names = {p.name for p in conn.network.ports(network_id=network.id)}
        assert names == {str(p.name) for p in made}
    finally:
        for port in made:
            conn.network.delete_port(port.id)
        conn.network.delete_network(network)


async def test_past_a_chunk_the_requests_go_in_turn_each_answered_before_the_next(
    cloud: Cloud, make_driver: Any, installation: str
) -> None:
    conn = cloud.connection()
    network = conn.network.create_network(name=f"bulk-turn-{uuid.uuid4().hex[:6]}")
    driver = make_driver()
    provider = await openstack_conn.provider(driver.ctx.options, pool=driver.ctx.clients)
    owner = Owner(cluster="bulk-turn", installation=installation)
    wanted = CHUNK + 10
    events: list[tuple[str, int]] = []  # ("request", ports) at its answer; ("port", i)

    def seen(response: Any, *args: Any, **kwargs: Any) -> None:
        request = response.request
        if request.method == "POST" and request.path_url.endswith("/ports"):
            body = json.loads(request.body or b"{}")
            events.append(("request", len(body.get("ports", [body.get("port")]))))

    async def ask(i: int) -> Any:
        attrs = await neutron_attrs(provider, owner, name=f"bulk-turn-{i}", network_id=network.id)
        port = await create_port(provider, f"bulk-turn-{i}", owner, attrs)
        events.append(("port", i))
        return port

    hooks = provider.conn.session.session.hooks["response"]
    hooks.append(seen)
    made: list[Any] = []
    try:
        conn.network.create_subnet(
            network_id=network.id, ip_version=4, cidr="10.199.8.0/24", is_dhcp_enabled=False
        )
        results = await asyncio.gather(*(ask(i) for i in range(wanted)), return_exceptions=True)
        made = [r for r in results if not isinstance(r, BaseException)]
        assert len(made) == wanted, results
    finally:
        hooks.remove(seen)
        for port in conn.network.ports(network_id=network.id):
            conn.network.delete_port(port.id)
        conn.network.delete_network(network)
    sizes = [n for kind, n in events if kind == "request"]
    assert len(sizes) >= 2 and max(sizes) <= CHUNK and sum(sizes) == wanted, events
    # Each request's nodes have their ports before the next request is answered (side
    # by side, both answers came before any node's port).
    at = 0
    for size in sizes:
        assert events[at][0] == "request", events
        assert all(kind == "port" for kind, _ in events[at + 1 : at + 1 + size]), events
        at += 1 + size
    assert at == len(events)
