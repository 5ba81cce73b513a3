"""The Keystone v3 calls the official client makes, answered by the standalone identity:
``GET /v3`` (discovery), ``POST /v3/auth/tokens`` (password, scoped to the user's
project) and ``GET /v3/auth/tokens`` (validation). The token's catalog names this very
server as ``container-infra`` (``/v1``) and ``identity`` (``/v3``), so
``openstack --os-auth-url http://HOST:PORT/v3 ... coe cluster list`` needs nothing else.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from flotte.api.context import Ctx
from flotte.api.errors import ApiError
from flotte.api.magnum.common import base_url
from flotte.identity.principal import Principal, Unauthorized

router = APIRouter(tags=["identity"])
Short = Annotated[str, Field(max_length=255)]


class Loose(BaseModel):
    model_config = ConfigDict(extra="allow")  # Keystone ignores what it does not need


class Domain(Loose):
    id: Short | None = None
    name: Short | None = None


class UserRef(Loose):
    id: Short | None = None
    name: Short | None = None
    password: Annotated[str, Field(max_length=4096)] = ""
    domain: Domain | None = None


class Password(Loose):
    user: UserRef


class Identity(Loose):
    methods: list[Short]
    password: Password | None = None


class ProjectRef(Loose):
    id: Short | None = None
    name: Short | None = None
    domain: Domain | None = None


class Scope(Loose):
    project: ProjectRef | None = None


class Auth(Loose):
    identity: Identity
    scope: Scope | Short | None = None


class AuthRequest(Loose):
    auth: Auth


def _stamp(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000000Z")


def _catalog(base: str, region: str) -> list[dict[str, Any]]:
    def service(kind: str, name: str, url: str) -> dict[str, Any]:
        return {
            "id": uuid.uuid5(uuid.NAMESPACE_URL, f"{kind}:{url}").hex,
            "type": kind,
            "name": name,
            "endpoints": [
                {
                    "id": uuid.uuid5(uuid.NAMESPACE_URL, f"{kind}:{iface}:{url}").hex,
                    "interface": iface,
                    "region": region,
                    "region_id": region,
                    "url": url,
                }
                for iface in ("public", "internal", "admin")
            ],
        }

    return [
        service("container-infra", "magnum", f"{base}/v1"),
        service("identity", "keystone", f"{base}/v3"),
    ]


def token_body(who: Principal, base: str, region: str, *, catalog: bool = True) -> dict[str, Any]:
    domain = {"id": "default", "name": "Default"}
    body: dict[str, Any] = {
        "methods": ["password"],
        "user": {
            "id": who.user_id,
            "name": who.user_name,
            "domain": domain,
            "password_expires_at": None,
        },
        "project": {"id": who.project_id, "name": who.project_name, "domain": domain},
        "roles": [{"id": uuid.uuid5(uuid.NAMESPACE_OID, r).hex, "name": r} for r in who.roles],
        "is_domain": False,
        "expires_at": _stamp(who.expires_at),
        "issued_at": _stamp(dt.datetime.now(dt.UTC)),
        "audit_ids": [uuid.uuid4().hex[:22]],
    }
    if catalog:
        body["catalog"] = _catalog(base, region)
    return {"token": body}


def _standalone(ctx: Ctx) -> Any:
    if ctx.standalone is None:
        raise ApiError(404, "this server validates Keystone tokens: authenticate with Keystone")
    return ctx.standalone


@router.get("/v3")
@router.get("/v3/", include_in_schema=False)
async def version(request: Request, ctx: Ctx) -> dict[str, Any]:
    _standalone(ctx)
    base = base_url(request, ctx.settings.public_url)
    return {
        "version": {
            "id": "v3.14",
            "status": "stable",
            "updated": "2020-04-07T00:00:00Z",
            "links": [{"rel": "self", "href": f"{base}/v3/"}],
            "media-types": [
                {"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}
            ],
        }
    }


@router.post("/v3/auth/tokens", status_code=201)
async def issue(body: AuthRequest, request: Request, ctx: Ctx) -> JSONResponse:
    standalone = _standalone(ctx)
    identity = body.auth.identity
    if "password" not in identity.methods or identity.password is None:
        raise Unauthorized("only password authentication is offered here")
    user = identity.password.user
    name = user.name or user.id
    if not name:
        raise ApiError(400, "auth.identity.password.user needs a name or an id")
    scope = body.auth.scope if isinstance(body.auth.scope, Scope) else None
    project = None
    if scope is not None and scope.project is not None:
        project = scope.project.id or scope.project.name
    # argon2 takes tens of milliseconds of CPU: not on the event loop
    token, who = await asyncio.to_thread(standalone.authenticate, name, user.password, project)
    base = base_url(request, ctx.settings.public_url)
    return JSONResponse(
        token_body(who, base, ctx.settings.region),
        status_code=201,
        headers={"X-Subject-Token": token},
    )


@router.get("/v3/auth/tokens")
async def check(
    request: Request,
    ctx: Ctx,
    x_auth_token: Annotated[str | None, Header(max_length=8192)] = None,
    x_subject_token: Annotated[str | None, Header(max_length=8192)] = None,
) -> JSONResponse:
    standalone = _standalone(ctx)
    if not x_auth_token or not x_subject_token:
        raise Unauthorized("send X-Auth-Token and X-Subject-Token")
    standalone.validate(x_auth_token)
    who = standalone.validate(x_subject_token)
    base = base_url(request, ctx.settings.public_url)
    nocatalog = "nocatalog" in request.query_params
    return JSONResponse(
        token_body(who, base, ctx.settings.region, catalog=not nocatalog),
        headers={"X-Subject-Token": x_subject_token},
    )
