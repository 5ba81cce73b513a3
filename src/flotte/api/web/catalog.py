"""Templates (list, create, public for admins) and quotas with usage (admins edit
them), through the API's handlers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from flotte import drivers
from flotte.api.magnum import quotas as magnum_quotas
from flotte.api.magnum import templates as magnum_templates
from flotte.api.magnum.models import QuotaCreate, QuotaUpdate, TemplateCreate
from flotte.api.web import forms
from flotte.api.web.render import html
from flotte.api.web.session import PREFIX, Seen, Viewer
from flotte.errors import FlotteError

router = APIRouter(prefix=PREFIX, include_in_schema=False)
TEMPLATE_FIELDS = ("name", "coe", "image_id", "driver", "flavor_id", "master_flavor_id", "labels")
PLACES: dict[str, tuple[str, ...]] = {
    "coe": ("coe",),
    "driver": ("driver",),
    "labels": ("label",),
    "image_id": ("image",),
    "public": ("public",),
    "name": ("name",),
}


def _labels(text: str) -> dict[str, str] | str | None:
    """``k=v,k2=v2`` as the openstack client takes labels; a malformed one is left as
    text for the model to refuse."""
    text = text.strip()
    if not text:
        return None
    out: dict[str, str] = {}
    for part in text.split(","):
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            return text
        out[key.strip()] = value.strip()
    return out


def _template_page(
    request: Request,
    seen: Viewer,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    who = seen.who
    listed = [
        t
        for t in seen.ctx.serving.owned.templates(who.sees)
        if who.is_admin or not t.magnum.get("hidden") or t.record.project == who.project_id
    ]
    return html(
        request,
        "templates.html",
        seen,
        status=status,
        templates=listed,
        drivers=drivers.names(),
        values=values or {"coe": "swarm-mode", "driver": seen.ctx.settings.default_driver},
        errors=errors or {},
    )


@router.get("/templates")
async def template_list(request: Request, seen: Seen) -> Response:
    return _template_page(request, seen)


@router.post("/templates")
async def template_create(request: Request, seen: Seen) -> Response:
    data = await forms.form(request)
    seen.check_csrf(data.get("csrf"))
    values = {k: data.get(k, "").strip() for k in TEMPLATE_FIELDS}
    values["public"] = "on" if data.get("public") else ""
    try:
        body = forms.checked(
            TemplateCreate,
            {
                "name": forms.text(values["name"]),
                "coe": values["coe"],
                "image_id": values["image_id"],
                "driver": forms.text(values["driver"]),
                "flavor_id": forms.text(values["flavor_id"]),
                "master_flavor_id": forms.text(values["master_flavor_id"]),
                "labels": _labels(values["labels"]),
                "public": bool(values["public"]),
            },
        )
        await magnum_templates.create(body, seen.ctx, seen.who, request)
    except forms.Invalid as err:
        return _template_page(request, seen, values, err.errors, err.status)
    except FlotteError as err:
        problem = forms.refused(err, PLACES)
        return _template_page(request, seen, values, problem.errors, problem.status)
    return RedirectResponse(f"{PREFIX}/templates", status_code=303)


def _quota_rows(seen: Viewer) -> list[dict[str, Any]]:
    ctx, who = seen.ctx, seen.who
    tenancy = ctx.serving.tenancy
    projects = (
        tenancy.projects()
        if who.is_admin and ctx.standalone is not None
        else [tenancy.find_project(who.project_id)]
    )
    rows = []
    for p in projects:
        pid = p.id if p else who.project_id
        pname = p.name if p else who.project_name
        clusters, nodes = ctx.serving.owned.count_clusters(pid)
        record = ctx.quotas.record((pid, pname))
        rows.append(
            {
                "id": pid,
                "name": pname,
                "limit": record.hard_limit if record else ctx.quotas.default_limit,
                "own": record is not None,
                "clusters": clusters,
                "nodes": nodes,
            }
        )
    return rows


@router.get("/quotas")
async def quota_list(request: Request, seen: Seen) -> Response:
    return html(request, "quotas.html", seen, rows=_quota_rows(seen), errors={})


@router.post("/quotas")
async def quota_set(request: Request, seen: Seen) -> Response:
    data = await forms.form(request)
    seen.check_csrf(data.get("csrf"))
    project = data.get("project", "")
    try:
        limit = forms.number(data.get("hard_limit"))
        ctx, who = seen.ctx, seen.who
        if ctx.serving.tenancy.quota(project, "Cluster") is None:
            body = forms.checked(
                QuotaCreate, {"project_id": project, "resource": "Cluster", "hard_limit": limit}
            )
            await magnum_quotas.create(body, ctx, who)
        else:
            update = forms.checked(QuotaUpdate, {"hard_limit": limit})
            await magnum_quotas.update(project, "Cluster", update, ctx, who)
    except forms.Invalid as err:
        errors = {project: " ".join(err.errors.values())}
        return html(
            request, "quotas.html", seen, status=err.status, rows=_quota_rows(seen), errors=errors
        )
    except FlotteError as err:
        problem = forms.refused(err, {})
        errors = {project: err.message}
        return html(
            request,
            "quotas.html",
            seen,
            status=problem.status,
            rows=_quota_rows(seen),
            errors=errors,
        )
    return RedirectResponse(f"{PREFIX}/quotas", status_code=303)
