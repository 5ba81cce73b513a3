"""Nodes' ports asked for together, made by one Neutron bulk request.

A cluster's nodes each need a port before their server, and the executor asks for
them all within a few milliseconds. Neutron makes a list of ports in one ``POST
/ports`` (its bulk create, all or nothing): one request instead of one per node. In
flotte a request costs about 2 ms of CPU (keystoneauth and requests), a third of a
node's create; in Neutron the ports share one transaction.

When the bulk request fails, each port is made on its own, so each node gets its own
answer: a quota or a subnet that runs out fails only the nodes past it, as before.
Its answer may have been lost after Neutron made the ports (a transient error), so
each node first looks for its port, by name and owner mark.
"""

from __future__ import annotations

import asyncio
from typing import Any

from flotte.drivers.batch import Batcher
from flotte.drivers.openstack import rest
from flotte.drivers.openstack.connection import Provider
from flotte.drivers.openstack.create_once import create_once
from flotte.drivers.openstack.inventory import find_port
from flotte.models import Owner

# Ports per request: one transaction in Neutron holds them all, and a request must end
# well within the client's timeout. A cluster's requests go one after another, never
# side by side: Neutron makes ports at its own pace (about ten a second on devcloud)
# however they are split, so two requests side by side answer together at the end,
# while one after the other the first fifty nodes take their addresses and boot while
# Neutron makes the next ports (200 nodes: first boot at 7 s instead of 23 s, the whole
# create 300-311 s instead of 390-405 s; docs/perf/README.md).
CHUNK = 50

# (node name, owner, the port's attributes): one node's port request.
_Ask = tuple[str, Owner, dict[str, Any]]


async def create_port(p: Provider, name: str, owner: Owner, attrs: dict[str, Any]) -> Any:
    """Node ``name``'s new port, made with the others asked for at the same time."""
    made = await _PORTS.submit(p, (name, owner, attrs))
    if isinstance(made, Exception):
        raise made
    return made


async def _make(p: Provider, asks: list[_Ask]) -> list[Any]:
    """Each ask's port, or the error that stopped it (one node's error is its own)."""
    if len(asks) > 1:
        net = p.conn.network
        bodies = [attrs for _, _, attrs in asks]
        try:
            ports = await p.run(
                lambda: rest.post_many(net, "/ports", "ports", bodies),
                f"create {len(asks)} ports",
                retry=frozenset(),
                raw=True,
            )
        except Exception:
            # Refused whole, as Neutron's bulk create is meant to be, or its answer lost:
            # either way a port may exist, so each node looks before making its own.
            lost = True
        else:
            # Matched by name and owner mark, which a request's ports never share.
            by_key = {(port.name, port.description): port for port in ports}
            found = [by_key.get((attrs["name"], attrs["description"])) for _, _, attrs in asks]
            if all(port is not None for port in found):
                return found
            lost = True  # an answer that does not say which port is whose: look
    else:
        lost = False
    done = await asyncio.gather(*(_one(p, ask, look=lost) for ask in asks), return_exceptions=True)
    for result in done:
        if isinstance(result, BaseException) and not isinstance(result, Exception):
            raise result  # cancelled: so is the whole create
    return done


async def _one(p: Provider, ask: _Ask, *, look: bool) -> Any:
    name, owner, attrs = ask
    if look:
        found = await find_port(p, name, owner)
        if found is not None:
            return found
    net = p.conn.network
    return await create_once(
        p,
        f"create port for {name}",
        lambda: rest.post(net, "/ports", "port", attrs),
        lambda: find_port(p, name, owner),
    )


# Serial, up to CHUNK asks a run: asks that arrive while a bulk request is in flight
# (or past the first CHUNK) make the next one, sent when the first is answered.
_PORTS: Batcher[Provider, _Ask, Any] = Batcher(_make, serial=True, limit=CHUNK)
