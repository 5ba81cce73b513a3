"""``/v1/clustertemplates``: Magnum's ClusterTemplate, per project, ``public`` ones shared.

The flotte driver a template uses is its ``driver`` field or label (default: the
service's default driver); Magnum's fields (image, flavors, networks, volume size)
reach the driver's options when a cluster is made, as for ``flotte template create``.
"""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError

from flotte import drivers
from flotte.api.context import Caller, Ctx
from flotte.api.errors import ApiError
from flotte.api.magnum import views
from flotte.api.magnum.common import (
    Page,
    apply_patch,
    base_url,
    next_link,
    page,
    with_unique_name,
)
from flotte.api.magnum.lookup import one_template, own_template
from flotte.api.magnum.models import PatchOp, TemplateCreate
from flotte.errors import UsageError
from flotte.provision import engine_config
from flotte.serve_settings import ServeSettings
from flotte.service.resolve import build
from flotte.specs import COES, TemplateSpec, validation_message

router = APIRouter(tags=["clustertemplates"])
FLOTTE_LABELS = ("driver", "no_provision")  # labels that steer flotte, not engine labels
WRITABLE = tuple(TemplateCreate.model_fields)


def check_coe(coe: str) -> None:
    if coe == "kubernetes":
        raise ApiError(
            400,
            "COE kubernetes is not supported: flotte serve forms Docker Swarm clusters "
            f"(coe {' or '.join(COES)}); no Kubernetes control plane can be installed here",
        )
    if coe not in COES:
        raise ApiError(400, f"unknown COE {coe!r}: flotte serve forms {', '.join(COES)}")


def template_spec(
    body: TemplateCreate, settings: ServeSettings
) -> tuple[TemplateSpec, dict[str, Any]]:
    """The TemplateSpec of a Magnum request, and the Magnum-only fields kept beside it."""
    data = body.model_dump(exclude_none=True)
    check_coe(body.coe)
    labels = dict(body.labels or {})
    driver = body.driver or labels.get("driver") or settings.default_driver
    drivers.get(driver)  # an unknown driver is a 400 naming the known ones
    extras = {k: data.pop(k) for k in views.TEMPLATE_EXTRAS if k in data}
    extras["labels"] = labels
    data.pop("name", None)
    data.update(driver=driver, labels={k: v for k, v in labels.items() if k not in FLOTTE_LABELS})
    spec = build(TemplateSpec, data, "cluster template")
    engine_config.validate(spec.engine())
    return spec, extras


@router.post("/v1/clustertemplates", status_code=201)
async def create(body: TemplateCreate, ctx: Ctx, who: Caller, request: Request) -> dict[str, Any]:
    if body.public and not who.is_admin:
        raise ApiError(403, "only an admin may make a public cluster template")
    spec, extras = template_spec(body, ctx.settings)
    extras["user_id"] = who.user_id
    display = body.name or f"clustertemplate-{secrets.token_hex(4)}"
    record = with_unique_name(
        display,
        lambda internal: ctx.svc.store.add_template(
            internal, spec, who.project_id, display_name=display, magnum=extras
        ),
    )
    found = one_template(ctx.serving.owned, who, record.uuid)
    return views.template(found, base_url(request, ctx.settings.public_url))


@router.get("/v1/clustertemplates")
@router.get("/v1/clustertemplates/detail")
async def listing(ctx: Ctx, who: Caller, request: Request, paged: Page) -> dict[str, Any]:
    found = [
        t
        for t in ctx.serving.owned.templates(who.sees)
        if who.is_admin or not t.magnum.get("hidden") or t.record.project == who.project_id
    ]
    chunk, after = page(found, lambda t: t.record.uuid, paged.limit, paged.marker)
    base = base_url(request, ctx.settings.public_url)
    return {
        "clustertemplates": [views.template(t, base) for t in chunk],
        "next": next_link(request, base, after, paged.limit),
    }


@router.get("/v1/clustertemplates/{ident}")
async def show(ident: str, ctx: Ctx, who: Caller, request: Request) -> dict[str, Any]:
    found = one_template(ctx.serving.owned, who, ident)
    return views.template(found, base_url(request, ctx.settings.public_url))


@router.patch("/v1/clustertemplates/{ident}")
async def update(
    ident: str, ops: list[PatchOp], ctx: Ctx, who: Caller, request: Request
) -> dict[str, Any]:
    owned = ctx.serving.owned
    found = one_template(owned, who, ident)
    own_template(who, found)
    base = base_url(request, ctx.settings.public_url)
    current = views.template(found, base)
    patched = apply_patch(current, ops, WRITABLE)
    changed = {k for k in set(patched) | set(current) if patched.get(k) != current.get(k)}
    used = owned.template_user(found.record.name)
    if used and changed - {"name", "public", "hidden"}:
        raise ApiError(
            400,
            f"ClusterTemplate {found.display_name} is referenced by cluster {used}: "
            "only its name, public and hidden can change",
        )
    try:
        body = TemplateCreate.model_validate(patched)
    except ValidationError as err:
        raise UsageError(validation_message(err)) from None
    if body.public and not found.record.spec.public and not who.is_admin:
        raise ApiError(403, "only an admin may make a public cluster template")
    spec, extras = template_spec(body, ctx.settings)
    extras["user_id"] = found.magnum.get("user_id")
    display = body.name or found.display_name
    owned.set_template(found.record.name, spec.model_dump(mode="json"), extras, display)
    return views.template(one_template(owned, who, found.record.uuid), base)


@router.delete("/v1/clustertemplates/{ident}", status_code=204)
async def delete(ident: str, ctx: Ctx, who: Caller) -> Response:
    owned = ctx.serving.owned
    found = one_template(owned, who, ident)
    own_template(who, found)
    used = owned.template_user(found.record.name)
    if used:
        raise ApiError(
            400,
            f"ClusterTemplate {found.display_name} is referenced by cluster {used}: "
            "delete its clusters first",
        )
    ctx.svc.templates.delete(found.record.name)
    return Response(status_code=204)
