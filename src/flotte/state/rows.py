"""Rows to typed records and back: the only place that knows the JSON shapes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flotte.models import Endpoint, EngineOptions, NodeRecord, Role
from flotte.specs import ClusterSpec, NodeGroupSpec, TemplateSpec, node_name
from flotte.state.records import ClusterRecord, Node, NodeGroupRecord, TemplateRecord

if TYPE_CHECKING:  # rows may also come from sqlite3 (reader.py): no ORM import here
    from flotte.state.tables import Cluster, Machine, NodeGroup, Template


def node_names(spec: ClusterSpec, group: NodeGroupSpec) -> list[str]:
    return [node_name(spec.name, group.name, i) for i in range(group.node_count)]


def cluster_json(spec: ClusterSpec, *, with_groups: bool = False) -> dict[str, Any]:
    data = spec.model_dump(mode="json")
    if not with_groups:
        data.pop("nodegroups", None)
    return data


def template_record(row: Template) -> TemplateRecord:
    return TemplateRecord(
        name=row.name,
        uuid=row.uuid,
        spec=TemplateSpec.model_validate(row.spec),
        project=row.project,
        created_at=row.created_at,
    )


def group_record(row: NodeGroup) -> NodeGroupRecord:
    return NodeGroupRecord(
        cluster=row.cluster,
        name=row.name,
        uuid=row.uuid,
        spec=NodeGroupSpec.model_validate(row.spec),
        status=row.status,
        status_reason=row.status_reason,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def cluster_record(row: Cluster, groups: list[NodeGroup]) -> ClusterRecord:
    records = tuple(group_record(g) for g in groups)
    spec = ClusterSpec.model_validate({**row.spec, "nodegroups": [g.spec for g in records]})
    return ClusterRecord(
        name=row.name,
        uuid=row.uuid,
        spec=spec,
        status=row.status,
        status_reason=row.status_reason,
        shared=dict(row.shared or {}),
        coe_data=dict(row.coe_data or {}),
        health_status=row.health_status or "UNKNOWN",
        health_status_reason=dict(row.health_status_reason or {}),
        project=row.project,
        nodegroups=records,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def node_record(row: Machine) -> Node:
    spec = row.spec or {}
    return Node(
        name=row.name,
        driver=row.driver,
        cluster=row.cluster,
        group=row.group,
        role=Role(row.role),
        index=row.index or 0,
        host=row.host,
        status=row.status,
        status_reason=row.status_reason or "",
        engine=EngineOptions.from_dict(spec.get("engine")),
        record=NodeRecord(**row.record) if row.record else None,
        endpoint=Endpoint(**row.endpoint) if row.endpoint else None,
        engine_version=row.engine_version or "",
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
