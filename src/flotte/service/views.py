"""What ``cluster show`` and ``cluster list`` print (and the API's detail views read):
a cluster's record with its nodes, node groups and, when asked, the swarm's health."""

from __future__ import annotations

from typing import Any

from flotte.coe.swarm import Swarm
from flotte.models import Role
from flotte.service.installation import Installation
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


def cluster_view(
    cluster: ClusterRecord,
    nodes: list[Node],
    health: str | None = None,
    swarm_nodes: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    masters = [n for n in nodes if n.role == Role.MANAGER]
    workers = [n for n in nodes if n.role != Role.MANAGER]
    api = next((m.url for m in masters if m.endpoint is not None), "")
    return {
        "name": cluster.name,
        "uuid": cluster.uuid,
        "driver": cluster.driver,
        "coe": cluster.spec.coe,
        "cluster_template": cluster.template,
        "status": cluster.status,
        "status_reason": cluster.status_reason,
        "health_status": health or cluster.health_status,
        "health_status_reason": cluster.health_status_reason,
        "master_count": cluster.master_count,
        "node_count": cluster.node_count,
        "api_address": api,
        "master_addresses": [m.address for m in masters],
        "node_addresses": [w.address for w in workers],
        "nodegroups": [
            {
                "name": g.name,
                "role": g.spec.role,
                "node_count": g.spec.node_count,
                "min_node_count": g.spec.min_node_count,
                "max_node_count": g.spec.max_node_count,
                "driver": cluster.spec.driver_of(g.spec),
                "status": g.status,
                "status_reason": g.status_reason,
            }
            for g in cluster.nodegroups
        ],
        "nodes": [
            {
                "name": n.name,
                "nodegroup": n.group,
                "driver": n.driver,
                "role": n.role.value,
                "address": n.address,
                "host": n.host,
                "status": n.status,
                # recorded at provisioning and join, refreshed by health checks; None:
                # no engine (--no-provision) or it never answered
                "engine_version": n.engine_version or None,
            }
            for n in nodes
        ],
        "overflow": cluster.spec.overflow.model_dump() if cluster.spec.overflow else None,
        "swarm_nodes": swarm_nodes or [],
        "labels": cluster.spec.labels,
        "create_timeout": cluster.spec.create_timeout,
        "created_at": cluster.created_at.isoformat() if cluster.created_at else None,
        "updated_at": cluster.updated_at.isoformat() if cluster.updated_at else None,
    }


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
