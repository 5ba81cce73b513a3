"""``/v1/clusters/{cluster}/nodegroups``: Magnum's node groups (API 1.9), with the
default groups ``default-master`` and ``default-worker`` that every cluster has."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Query, Request, Response

from flotte.api import versions
from flotte.api.context import Caller, Ctx, Jobs
from flotte.api.errors import ApiError
from flotte.api.magnum import views
from flotte.api.magnum.common import apply_patch, base_url
from flotte.api.magnum.desired import change_cluster
from flotte.api.magnum.lookup import one_cluster
from flotte.api.magnum.models import NodeGroupCreate, PatchOp
from flotte.errors import UsageError
from flotte.identity.principal import Principal
from flotte.service.resolve import build
from flotte.specs import MASTER_GROUP, WORKER_GROUP, ClusterSpec, NodeGroupSpec
from flotte.state.owned import ServeCluster
from flotte.state.records import NodeGroupRecord
from flotte.state.status import CREATE_IN_PROGRESS

router = APIRouter(tags=["nodegroups"])
BASE = "/v1/clusters/{cluster}/nodegroups"
WRITABLE = ("node_count", "min_node_count", "max_node_count")


def _cluster(ctx: Ctx, who: Principal, request: Request, cluster: str) -> ServeCluster:
    versions.require(request.state, (1, 9), "node groups")
    return one_cluster(ctx.serving.owned, who, cluster)


def _group(found: ServeCluster, ident: str) -> NodeGroupRecord:
    matches = [g for g in found.record.nodegroups if ident in (g.uuid, g.name)]
    if not matches:
        raise ApiError(404, f"NodeGroup {ident} could not be found in cluster {found.display_name}")
    return matches[0]


def _view(ctx: Ctx, request: Request, found: ServeCluster, name: str) -> dict[str, Any]:
    refreshed = one_cluster_by_uuid(ctx, found)
    nodes = ctx.svc.store.nodes(cluster=found.record.name)
    group = _group(refreshed, name)
    return views.nodegroup(refreshed, group, nodes, base_url(request, ctx.settings.public_url))


def one_cluster_by_uuid(ctx: Ctx, found: ServeCluster) -> ServeCluster:
    return ctx.serving.owned.find_clusters(found.record.uuid, None)[0]


@router.get(BASE)
@router.get(BASE + "/", include_in_schema=False)
async def listing(
    cluster: str,
    ctx: Ctx,
    who: Caller,
    request: Request,
    role: str | None = Query(None, max_length=16),
    limit: int | None = Query(None, ge=0, le=10_000),
    marker: str | None = Query(None, max_length=64),
) -> dict[str, Any]:
    found = _cluster(ctx, who, request, cluster)
    nodes = ctx.svc.store.nodes(cluster=found.record.name)
    base = base_url(request, ctx.settings.public_url)
    groups = [g for g in found.record.nodegroups if role is None or g.spec.role == role]
    return {"nodegroups": [views.nodegroup(found, g, nodes, base) for g in groups], "next": None}


@router.get(BASE + "/{ident}")
async def show(cluster: str, ident: str, ctx: Ctx, who: Caller, request: Request) -> dict[str, Any]:
    found = _cluster(ctx, who, request, cluster)
    nodes = ctx.svc.store.nodes(cluster=found.record.name)
    group = _group(found, ident)
    return views.nodegroup(found, group, nodes, base_url(request, ctx.settings.public_url))


@router.post(BASE, status_code=202)
@router.post(BASE + "/", status_code=202, include_in_schema=False)
async def create(
    cluster: str, body: NodeGroupCreate, ctx: Ctx, who: Caller, jobs: Jobs, request: Request
) -> dict[str, Any]:
    found = _cluster(ctx, who, request, cluster)
    if found.record.spec.has_group(body.name):
        raise ApiError(409, f"NodeGroup {body.name} already exists in cluster {found.display_name}")
    if body.role == "master":
        raise ApiError(
            400, "a cluster has one master node group (default-master): resize it instead"
        )
    group = build(
        NodeGroupSpec,
        {
            "name": body.name,
            "role": body.role,
            "node_count": body.node_count,
            "min_node_count": body.min_node_count or 0,
            "max_node_count": body.max_node_count,
            "flavor_id": body.flavor_id,
            "image_id": body.image_id,
            "docker_volume_size": body.docker_volume_size,
            "labels": dict(body.labels or {}),
        },
        f"node group {body.name}",
    )

    def edit(spec: ClusterSpec) -> ClusterSpec:
        if spec.has_group(group.name):
            raise ApiError(
                409, f"NodeGroup {group.name} already exists in cluster {found.display_name}"
            )
        return spec.with_group(group)

    recorded = await change_cluster(
        ctx,
        jobs,
        found,
        "nodegroup.create",
        edit,
        groups=[group.name],
        new_group_status=CREATE_IN_PROGRESS,
    )
    # the group as recorded, not re-read: a worker may already be converging it
    shown = replace(found, record=recorded)
    nodes = ctx.svc.store.nodes(cluster=recorded.name)
    base = base_url(request, ctx.settings.public_url)
    return views.nodegroup(shown, _group(shown, group.name), nodes, base)


@router.patch(BASE + "/{ident}", status_code=202)
async def update(
    cluster: str,
    ident: str,
    ops: list[PatchOp],
    ctx: Ctx,
    who: Caller,
    jobs: Jobs,
    request: Request,
) -> dict[str, Any]:
    found = _cluster(ctx, who, request, cluster)
    group = _group(found, ident)
    nodes = ctx.svc.store.nodes(cluster=found.record.name)
    current = views.nodegroup(found, group, nodes, base_url(request, ctx.settings.public_url))
    patched = apply_patch(current, ops, WRITABLE)
    data = group.spec.model_dump()
    for key in WRITABLE:
        data[key] = patched.get(key, 0 if key == "min_node_count" else None)
    if data["node_count"] is None:
        raise ApiError(400, "node_count cannot be removed")
    new = build(NodeGroupSpec, data, f"node group {group.name}")

    def edit(spec: ClusterSpec) -> ClusterSpec:
        return spec.with_group(new)

    await change_cluster(ctx, jobs, found, "nodegroup.update", edit, groups=[group.name])
    return _view(ctx, request, found, group.name)


@router.delete(BASE + "/{ident}", status_code=204)
async def delete(
    cluster: str, ident: str, ctx: Ctx, who: Caller, jobs: Jobs, request: Request
) -> Response:
    found = _cluster(ctx, who, request, cluster)
    group = _group(found, ident)
    if group.name in (MASTER_GROUP, WORKER_GROUP):
        raise UsageError(
            f"{group.name} is a default node group of cluster {found.display_name} and cannot "
            "be deleted: resize it instead"
        )

    def edit(spec: ClusterSpec) -> ClusterSpec:
        return spec.without_group(group.name)

    await change_cluster(ctx, jobs, found, "nodegroup.delete", edit, groups=[])
    return Response(status_code=204)
