"""``/v1/quotas``: Magnum's per-project quota of clusters (resource ``Cluster``).

An admin creates, changes and deletes quotas; a member reads its own project's. A project
without a quota row may have the service's default number of clusters.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Response

from flotte.api.context import Caller, Ctx
from flotte.api.errors import ApiError
from flotte.api.magnum.models import QuotaCreate, QuotaUpdate
from flotte.api.magnum.views import when
from flotte.identity.principal import Forbidden, Principal
from flotte.identity.quotas import check_resource
from flotte.state.tenancy import QuotaRecord

router = APIRouter(tags=["quotas"])


def view(q: QuotaRecord) -> dict[str, Any]:
    return {
        "id": q.id,
        "project_id": q.project,
        "resource": q.resource,
        "hard_limit": q.hard_limit,
        "created_at": when(q.created_at),
        "updated_at": when(q.updated_at),
    }


def _may_read(who: Principal, project: str) -> None:
    if not who.is_admin and project not in who.projects:
        raise Forbidden("only an admin may read another project's quota")


@router.post("/v1/quotas", status_code=201)
async def create(body: QuotaCreate, ctx: Ctx, who: Caller) -> dict[str, Any]:
    who.require_admin("creating a quota")
    return view(ctx.serving.tenancy.add_quota(body.project_id, body.resource, body.hard_limit))


@router.get("/v1/quotas")
async def listing(
    ctx: Ctx,
    who: Caller,
    all_tenants: bool = Query(False),
    limit: int | None = Query(None, ge=0, le=10_000),
    marker: str | None = Query(None, max_length=64),
) -> dict[str, Any]:
    if who.is_admin and all_tenants:
        found = ctx.serving.tenancy.quotas(None)
    else:
        found = [q for p in dict.fromkeys(who.projects) for q in ctx.serving.tenancy.quotas(p)]
    return {"quotas": [view(q) for q in found], "next": None}


@router.get("/v1/quotas/{project}/{resource}")
async def show(project: str, resource: str, ctx: Ctx, who: Caller) -> dict[str, Any]:
    _may_read(who, project)
    check_resource(resource)
    found = ctx.serving.tenancy.quota(project, resource)
    if found is None:  # Magnum answers the default for a project without a row
        return {
            "id": None,
            "project_id": project,
            "resource": resource,
            "hard_limit": ctx.quotas.default_limit,
            "created_at": None,
            "updated_at": None,
        }
    return view(found)


@router.patch("/v1/quotas/{project}/{resource}", status_code=202)
async def update(
    project: str, resource: str, body: QuotaUpdate, ctx: Ctx, who: Caller
) -> dict[str, Any]:
    who.require_admin("changing a quota")
    check_resource(resource)
    if body.project_id not in (None, project) or body.resource not in (None, resource):
        raise ApiError(400, "project_id and resource of a quota cannot change")
    return view(ctx.serving.tenancy.set_quota(project, resource, body.hard_limit))


@router.delete("/v1/quotas/{project}/{resource}", status_code=204)
async def delete(project: str, resource: str, ctx: Ctx, who: Caller) -> Response:
    who.require_admin("deleting a quota")
    check_resource(resource)
    if not ctx.serving.tenancy.delete_quota(project, resource):
        raise ApiError(
            404, f"Quota for project {project} and resource {resource} could not be found"
        )
    return Response(status_code=204)
