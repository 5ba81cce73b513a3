"""How a cluster's desired spec and statuses are written inside one of ``Store``'s
transactions: the cluster row, its node groups' rows (added, updated, removed) and their
statuses. Kept apart so every write that records a change does all of it in the session
it is given, never in a transaction of its own."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from flotte.specs import ClusterSpec
from flotte.state.rows import cluster_json
from flotte.state.tables import Cluster, NodeGroup, utcnow


def write_desired(
    s: Session,
    row: Cluster,
    spec: ClusterSpec,
    status: str | None,
    reason: str,
    groups: Iterable[str] | None,
    group_reason: str,
    group_status: str | None = None,
) -> None:
    """``spec`` as the cluster's desired spec; with ``status``, the cluster's status and
    ``group_status`` (default ``status``) for its node groups (only ``groups`` if named)."""
    row.spec = cluster_json(spec)
    row.master_count, row.node_count = spec.master_count, spec.node_count
    write_groups(s, spec, None)
    if status is not None:
        s.flush()
        row.status, row.status_reason = status, reason
        groups_status(s, spec.name, group_status or status, group_reason, groups)


def write_groups(s: Session, spec: ClusterSpec, status: str | None) -> None:
    """The node group rows of ``spec``: new ones added (with ``status``, else ""), the
    others updated (their status only if ``status`` is given), those gone deleted."""
    have = {g.name: g for g in s.scalars(select(NodeGroup).where(NodeGroup.cluster == spec.name))}
    for position, group in enumerate(spec.nodegroups):
        row = have.pop(group.name, None)
        data = group.model_dump(mode="json")
        if row is None:
            s.add(
                NodeGroup(
                    uuid=str(uuid.uuid4()),
                    cluster=spec.name,
                    name=group.name,
                    position=position,
                    spec=data,
                    status=status or "",
                    status_reason="",
                )
            )
        else:
            row.spec, row.position = data, position
            if status is not None:
                row.status = status
    for row in have.values():
        s.delete(row)


def groups_status(
    s: Session, cluster: str, status: str, reason: str, groups: Iterable[str] | None
) -> None:
    """``status`` for the node groups of ``cluster`` (only ``groups`` if named; none if
    the list is empty)."""
    query = select(NodeGroup).where(NodeGroup.cluster == cluster)
    if groups is not None:
        names = list(groups)
        if not names:
            return
        query = query.where(NodeGroup.name.in_(names))
    for row in s.scalars(query):
        row.status, row.status_reason = status, reason


def claim_status(s: Session, name: str, allowed: Iterable[str], status: str) -> bool:
    """Move cluster ``name`` to ``status`` if its status is one of ``allowed`` (one
    conditional UPDATE: of two concurrent claims one wins); whether it did."""
    result = s.execute(
        update(Cluster)
        .where(Cluster.name == name, Cluster.status.in_(list(allowed)))
        .values(status=status, status_reason="", updated_at=utcnow())
    )
    return bool(getattr(result, "rowcount", 0))
