"""Add or remove a node group of a cluster, from its page (the API's handlers)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from flotte.api.context import job_queue
from flotte.api.magnum import nodegroups as magnum
from flotte.api.magnum.models import NodeGroupCreate
from flotte.api.web import forms
from flotte.api.web.clusters import back, latest, posted
from flotte.api.web.session import PREFIX, Seen
from flotte.errors import FlotteError

router = APIRouter(prefix=PREFIX, include_in_schema=False)


@router.post("/clusters/{ident}/nodegroups")
async def add_group(request: Request, ident: str, seen: Seen) -> Response:
    data, found = await posted(request, seen, ident)
    try:
        body = forms.checked(
            NodeGroupCreate,
            {
                "name": data.get("name", "").strip(),
                "role": data.get("role") or "worker",
                "node_count": forms.number(data.get("node_count")),
            },
        )
        latest(request)
        uuid = found.record.uuid
        await magnum.create(uuid, body, seen.ctx, seen.who, job_queue(request), request)
    except forms.Invalid as err:
        return back(found.record.uuid, " ".join(err.errors.values()))
    except FlotteError as err:
        return back(found.record.uuid, err.message)
    return back(found.record.uuid)


@router.post("/clusters/{ident}/nodegroups/{group}/delete")
async def remove_group(request: Request, ident: str, group: str, seen: Seen) -> Response:
    _, found = await posted(request, seen, ident)
    try:
        latest(request)
        uuid = found.record.uuid
        await magnum.delete(uuid, group, seen.ctx, seen.who, job_queue(request), request)
    except FlotteError as err:
        return back(found.record.uuid, err.message)
    return back(found.record.uuid)
