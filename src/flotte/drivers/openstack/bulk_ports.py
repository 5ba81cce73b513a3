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
from flotte.drivers.openstack.connection import Provider, create_once
from flotte.drivers.openstack.inventory import find_port
from flotte.models import Owner

# Ports per request: one transaction in Neutron holds them all, and a request must end
# well within the client's timeout; a hundred ports at once go as two requests, side
# by side.
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
    chunks = [asks[i : i + CHUNK] for i in range(0, len(asks), CHUNK)]
    made = await asyncio.gather(*(_make_chunk(p, chunk) for chunk in chunks))
    return [port for chunk in made for port in chunk]


async def _make_chunk(p: Provider, asks: list[_Ask]) -> list[Any]:
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


# Creates are not serial: asks that arrive while a bulk request is in flight make the
# next one at once instead of waiting for it.
_PORTS: Batcher[Provider, _Ask, Any] = Batcher(_make, serial=False)
