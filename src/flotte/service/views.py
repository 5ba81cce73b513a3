"""What ``cluster show`` and ``cluster list`` print (and the API's detail views read):
a cluster's record with its nodes, node groups and, when asked, the swarm's health."""

from __future__ import annotations

from typing import Any

from flotte.coe.swarm import Swarm
from flotte.models import Role
from flotte.service.installation import Installation
from flotte.state.cluster_view import cluster_view
from flotte.state.records import ClusterRecord, Node
from flotte.state.status import HEALTHY, UNHEALTHY, UNKNOWN


async def swarm_health(inst: Installation, nodes: list[Node]) -> tuple[str, list[dict[str, Any]]]:
    """Magnum's health_status (HEALTHY / UNHEALTHY / UNKNOWN) and the swarm's nodes."""
    manager = next(
        (n.endpoint for n in nodes if n.role == Role.MANAGER and n.endpoint is not None), None
    )
    if manager is None:
        return UNKNOWN, []
    try:
        listed = await Swarm(inst.ca_of(nodes[0].cluster)).nodes(manager)
    except Exception:  # any failure to ask means we don't know
        return UNKNOWN, []
    healthy = all(n.get("state") == "ready" for n in listed)
    return (HEALTHY if healthy else UNHEALTHY), listed


async def checked(inst: Installation, name: str) -> list[dict[str, Any]]:
    """Check the cluster's health now (recorded on it); the swarm's nodes as listed."""
    from flotte.service.health import check

    health = await check(inst, name, pressure=False)
    return [
        {
            "id": m.id,
            "hostname": m.hostname,
            "role": m.role,
            "availability": m.availability,
            "state": m.state,
            "addr": m.addr,
            "leader": m.leader,
        }
        for m in health.members
    ]


async def show(inst: Installation, name: str, *, with_health: bool) -> dict[str, Any]:
    listed = await checked(inst, name) if with_health else []
    cluster = inst.store.cluster(name)  # with the health just recorded
    return cluster_view(cluster, inst.store.nodes(cluster=name), None, listed)


async def listing(inst: Installation, *, with_health: bool) -> list[dict[str, Any]]:
    import asyncio

    clusters = inst.store.clusters()
    nodes = inst.store.nodes()
    by_cluster: dict[str, list[Node]] = {}
    for n in nodes:
        if n.cluster:
            by_cluster.setdefault(n.cluster, []).append(n)

    async def one(c: ClusterRecord) -> dict[str, Any]:
        members = by_cluster.get(c.name, [])
        if with_health:
            await checked(inst, c.name)
            c = inst.store.find_cluster(c.name) or c
        return cluster_view(c, members)

    return list(await asyncio.gather(*(one(c) for c in clusters)))
