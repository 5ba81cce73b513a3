"""A killed run's late creates, deleted once the re-run's copies are in use.

``create_once`` makes something the re-run looked for and did not find. A killed run's
request for the same thing can still be in the cloud's hands then (a loaded Neutron
answers in seconds) and land after that look: the re-run's copy and the late one then
share a name and an owner mark, and the late one would stay until the cluster is
deleted (CI, stop 29: a second security group). A group's first node to be ACTIVE
deletes, for each shared thing its run made, the other copies: by then any such request
has landed. Nothing uses a twin (the killed run never learned its ID; the nodes' ports
name the re-run's subnet), so deleting it changes nothing the cluster relies on. A
failure is logged, and the sweep of ``cluster delete`` removes the twin by its mark.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any

from flotte.drivers.openstack import resources
from flotte.drivers.openstack.connection import Provider
from flotte.errors import FlotteError
from flotte.models import Owner

log = logging.getLogger(__name__)

Lister = Callable[[Provider, Owner, str], Awaitable[list[Any]]]
Deleter = Callable[[Provider, str], Awaitable[None]]


def _neutron(collection: str) -> Lister:
    return partial(resources.owned, collection=collection)


async def _server_groups(p: Provider, owner: Owner, group: str) -> list[Any]:
    return await resources.server_groups_named(p, resources.server_group_name(owner, group))


async def _delete_subnet(p: Provider, subnet_id: str) -> None:
    net = p.conn.network
    await p.run(partial(net.delete_subnet, subnet_id, ignore_missing=True), "delete subnet")


# In this order: a router before the subnet it could be attached to, a subnet before its
# network.
KINDS: dict[str, tuple[Lister, Deleter]] = {
    "router": (_neutron("routers"), resources.delete_router),
    "subnet": (_neutron("subnets"), _delete_subnet),
    "network": (_neutron("networks"), resources.delete_network),
    "security group": (_neutron("security_groups"), resources.delete_security_group),
    "server group": (_server_groups, resources.delete_server_group),
}


async def drop_twins(p: Provider, owner: Owner, group: str, made: Mapping[str, str]) -> None:
    """Delete the group's copies, other than the one kept, of each kind in ``made``
    (kind: the ID this run made and keeps)."""
    for kind, (listed, delete) in KINDS.items():
        keep = made.get(kind)
        if keep is None:
            continue
        try:
            for twin in [t.id for t in await listed(p, owner, group) if t.id != keep]:
                await delete(p, twin)
        except FlotteError as err:
            log.warning(
                "%s: a twin %s may be left (%s); cluster delete removes it", group, kind, err
            )
