"""``/v1/clusters``: create (202), list, show, PATCH ``/node_count``, delete (204),
``actions/resize`` and ``actions/upgrade``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request, Response

from flotte.api import versions
from flotte.api.context import Caller, Ctx, Jobs
from flotte.api.errors import ApiError
from flotte.api.magnum import views
from flotte.api.magnum.common import Page, apply_patch, base_url, next_link, page
from flotte.api.magnum.desired import (
    change_cluster,
    create_cluster,
    delete_cluster,
    node_names,
    resized,
)
from flotte.api.magnum.lookup import one_cluster
from flotte.api.magnum.models import MAX_NODES, ClusterCreate, PatchOp, Resize, Upgrade
from flotte.specs import MASTER_GROUP, WORKER_GROUP, ClusterSpec

router = APIRouter(tags=["clusters"])


@router.post("/v1/clusters", status_code=202)
async def create(body: ClusterCreate, ctx: Ctx, who: Caller, jobs: Jobs) -> dict[str, str]:
    record = await create_cluster(ctx, jobs, who, body)
    return {"uuid": record.uuid}


@router.get("/v1/clusters", responses=views.LIST_RESPONSE)
@router.get("/v1/clusters/detail", responses=views.LIST_RESPONSE)
async def listing(ctx: Ctx, who: Caller, request: Request, paged: Page) -> Response:
    """The clusters the caller sees; an answer is rendered again only when one of them
    changed since (``list_cache``): clients poll this list."""
    owned = ctx.serving.owned
    base = base_url(request, ctx.settings.public_url)
    key = (who.sees, base, request.url.path, paged.limit, paged.marker)
    revision = owned.cluster_revision(who.sees)  # first: a write after it only re-renders
    body = ctx.lists.get(key, revision)
    if body is None:
        found = owned.cluster_briefs(who.sees)
        chunk, after = page(found, lambda c: c.uuid, paged.limit, paged.marker)
        body = views.encode(
            {
                "clusters": [views.brief(c, base) for c in chunk],
                "next": next_link(request, base, after, paged.limit),
            }
        )
        ctx.lists.put(key, revision, body)
    return Response(body, media_type="application/json")


@router.get("/v1/clusters/{ident}")
async def show(ident: str, ctx: Ctx, who: Caller, request: Request) -> dict[str, Any]:
    found = one_cluster(ctx.serving.owned, who, ident)
    nodes = ctx.svc.store.nodes(cluster=found.record.name)
    return views.cluster(found, nodes, base_url(request, ctx.settings.public_url))


@router.patch("/v1/clusters/{ident}", status_code=202)
async def update(
    ident: str,
    ops: list[PatchOp],
    ctx: Ctx,
    who: Caller,
    jobs: Jobs,
    request: Request,
    rollback: bool = Query(False),
) -> dict[str, str]:
    """JSON patch of ``/node_count``, ``/master_count`` (a resize of the default groups)
    and ``/name``; anything else is refused, nothing changed."""
    found = one_cluster(ctx.serving.owned, who, ident)
    nodes = ctx.svc.store.nodes(cluster=found.record.name)
    current = views.cluster(found, nodes, base_url(request, ctx.settings.public_url))
    if any(op.path.startswith("/labels") for op in ops):
        raise ApiError(400, "the labels of a cluster cannot change once it exists")
    patched = apply_patch(current, ops, ("node_count", "master_count", "name"))
    name = patched.get("name") or current["name"]
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise ApiError(400, "name must be a non-empty string of at most 255 characters")
    edits = []
    for field, group in (("node_count", WORKER_GROUP), ("master_count", MASTER_GROUP)):
        count = patched.get(field, current[field])
        low = 1 if field == "master_count" else 0
        if not isinstance(count, int) or isinstance(count, bool) or not low <= count <= MAX_NODES:
            raise ApiError(
                400, f"{field} must be a whole number from {low} to {MAX_NODES} (got {count!r})"
            )
        if count != current[field]:
            if not found.record.spec.has_group(group):
                raise ApiError(400, f"Cluster {found.display_name} has no {group} node group")
            edits.append((group, count))
    if name != current["name"]:
        ctx.serving.owned.rename_cluster(found.record.name, name)
    if edits:

        def edit(spec: ClusterSpec) -> ClusterSpec:
            for group, count in edits:
                spec = resized(group, count)(spec)
            return spec

        groups = [g for g, _ in edits]
        await change_cluster(ctx, jobs, found, "cluster.update", edit, groups=groups)
    return {"uuid": found.record.uuid}


@router.post("/v1/clusters/{ident}/actions/resize", status_code=202)
async def resize(
    ident: str, body: Resize, ctx: Ctx, who: Caller, jobs: Jobs, request: Request
) -> dict[str, str]:
    versions.require(request.state, (1, 7), "resize")
    found = one_cluster(ctx.serving.owned, who, ident)
    group = body.nodegroup or WORKER_GROUP
    spec = found.record.spec
    named = next((g.name for g in found.record.nodegroups if group in (g.name, g.uuid)), None)
    if named is None or not spec.has_group(named):
        raise ApiError(404, f"NodeGroup {group} could not be found in cluster {found.display_name}")
    nodes = ctx.svc.store.nodes(cluster=found.record.name)
    remove = node_names(found, nodes, named, list(body.nodes_to_remove))
    record = await change_cluster(
        ctx,
        jobs,
        found,
        "cluster.resize",
        resized(named, body.node_count),
        groups=[named],
        nodes_to_remove=remove,
    )
    return {"uuid": record.uuid}


@router.post("/v1/clusters/{ident}/actions/upgrade", status_code=202)
async def upgrade(
    ident: str, body: Upgrade, ctx: Ctx, who: Caller, request: Request
) -> dict[str, str]:
    versions.require(request.state, (1, 8), "upgrade")
    found = one_cluster(ctx.serving.owned, who, ident)
    raise ApiError(
        400,
        f"upgrading cluster {found.display_name} in place is not supported by flotte serve: "
        "create a new cluster from the new template and move the services",
    )


@router.delete("/v1/clusters/{ident}", status_code=204)
async def delete(ident: str, ctx: Ctx, who: Caller, jobs: Jobs) -> Response:
    found = one_cluster(ctx.serving.owned, who, ident)
    delete_cluster(ctx, jobs, found)
    return Response(status_code=204)
