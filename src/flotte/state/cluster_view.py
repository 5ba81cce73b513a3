"""What ``cluster show`` and ``cluster list`` print of a cluster's record and nodes.

Pure (records in, a dict out) and below the service, so ``cluster list`` can render
records read without the ORM (``reader.py``) without importing the use cases.
"""

from __future__ import annotations

from typing import Any

from flotte.models import Role
from flotte.state.records import ClusterRecord, Node


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


def cluster_views(clusters: list[ClusterRecord], nodes: list[Node]) -> list[dict[str, Any]]:
    """``cluster list``: each cluster's view with its own nodes (``nodes``: all of them)."""
    by_cluster: dict[str, list[Node]] = {}
    for n in nodes:
        if n.cluster:
            by_cluster.setdefault(n.cluster, []).append(n)
    return [cluster_view(c, by_cluster.get(c.name, [])) for c in clusters]
