"""``/v1/stats`` (clusters and nodes of a project, or of all for an admin) and
``/v1/mservices`` (one row per running ``flotte serve`` process, up or down)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Query

from flotte.api.context import Caller, Ctx
from flotte.api.magnum.views import when
from flotte.identity.principal import Forbidden

router = APIRouter(tags=["service"])
DOWN_AFTER = dt.timedelta(seconds=60)  # a process whose heartbeat is older is down


@router.get("/v1/stats")
async def stats(
    ctx: Ctx, who: Caller, project_id: str | None = Query(None, max_length=64)
) -> dict[str, Any]:
    if project_id is None:
        scope = who.sees
    elif who.is_admin:
        scope = project_id
    elif project_id in who.projects:
        scope = who.project_id
    else:
        raise Forbidden("only an admin may read another project's stats")
    clusters, nodes = ctx.serving.owned.count_clusters(scope)
    return {"clusters": clusters, "nodes": nodes}


@router.get("/v1/mservices")
async def mservices(ctx: Ctx, who: Caller) -> dict[str, Any]:
    who.require_admin("listing the service's processes")
    now = dt.datetime.now(dt.UTC)
    out = []
    for p in ctx.serving.tenancy.processes():
        beat = p.heartbeat_at
        if beat is not None and beat.tzinfo is None:
            beat = beat.replace(tzinfo=dt.UTC)
        up = beat is not None and now - beat < DOWN_AFTER
        out.append(
            {
                "id": p.id,
                "host": p.host,
                "binary": p.binary,
                "state": "up" if up else "down",
                "disabled": p.disabled,
                "disabled_reason": p.disabled_reason,
                "report_count": p.report_count,
                "created_at": when(p.created_at),
                "updated_at": when(beat),
            }
        )
    return {"mservices": out}
