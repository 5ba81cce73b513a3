"""``create_app(settings)``: the ASGI app of ``flotte serve`` (FastAPI).

The serve command builds the settings, then puts its job queue in ``app.state.jobs``
(or passes ``jobs=``); tests may hand an in-process queue. Routes: ``GET /`` (Magnum's
versions), ``/v1/...`` (Magnum API v1), ``/v3/...`` (Keystone v3 subset, standalone
mode), ``/healthz``, ``/openapi.json`` and ``/docs``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from sqlalchemy import text

from flotte.api import errors, keystone_v3, versions, web
from flotte.api.context import ApiContext, JobQueue
from flotte.api.magnum import certificates, clusters, nodegroups, quotas, service_info, templates
from flotte.api.magnum.common import base_url
from flotte.api.middleware import RequestMiddleware
from flotte.identity.keystone import KeystoneValidator
from flotte.identity.quotas import Quotas
from flotte.identity.standalone import Standalone
from flotte.serve_settings import ServeSettings
from flotte.service import Service
from flotte.service.requests import attach

V1_RESOURCES = ("clustertemplates", "clusters", "quotas", "certificates", "mservices", "stats")


def create_app(
    settings: ServeSettings, *, service: Service | None = None, jobs: JobQueue | None = None
) -> FastAPI:
    """The app for ``settings``; ``service``: the installation (default: opened here)."""
    svc = service or Service(settings.home)
    serving = attach(svc, settings)
    keystone = (
        KeystoneValidator(settings.keystone_url)
        if settings.identity == "keystone" and settings.keystone_url
        else None
    )
    standalone = (
        None if keystone else Standalone(serving.tenancy, serving.vault, settings.token_ttl)
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if keystone is not None:
            await keystone.close()
        if service is None:
            svc.close()

    app = FastAPI(
        title="flotte serve",
        summary="Containers on demand: OpenStack Magnum's API v1 for Docker Swarm clusters",
        version="1.10",
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.ctx = ApiContext(
        settings=settings,
        svc=svc,
        serving=serving,
        quotas=Quotas(serving.tenancy, settings.default_cluster_quota),
        standalone=standalone,
        keystone=keystone,
    )
    if jobs is not None:
        app.state.jobs = jobs
    errors.install(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["X-Auth-Token", "Content-Type", "OpenStack-API-Version"],
            expose_headers=["X-Subject-Token", "OpenStack-API-Version", "X-OpenStack-Request-Id"],
        )
    app.add_middleware(RequestMiddleware)
    _root_routes(app, settings, svc)
    for module in (templates, clusters, nodegroups, certificates, quotas, service_info):
        app.include_router(module.router)
    if standalone is not None:
        app.include_router(keystone_v3.router)
    web.install(app)  # the web page at /ui (flotte.api.web)
    return app


def _root_routes(app: FastAPI, settings: ServeSettings, svc: Service) -> None:
    @app.get("/", tags=["versions"])
    async def root(request: Request) -> dict[str, Any]:
        return versions.document(base_url(request, settings.public_url))

    @app.get("/v1", tags=["versions"])
    @app.get("/v1/", tags=["versions"], include_in_schema=False)
    async def v1(request: Request) -> dict[str, Any]:
        base = base_url(request, settings.public_url)
        out: dict[str, Any] = {
            **versions.v1_entry(base),
            "media_types": [
                {"base": "application/json", "type": "application/vnd.openstack.magnum.v1+json"}
            ],
        }
        for name in V1_RESOURCES:
            out[name] = [
                {"href": f"{base}/v1/{name}/", "rel": "self"},
                {"href": f"{base}/{name}/", "rel": "bookmark"},
            ]
        return out

    @app.get("/healthz", tags=["versions"])
    async def healthz() -> JSONResponse:
        try:
            with svc.store.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as err:  # the database is what this process cannot work without
            return JSONResponse({"status": "down", "database": str(err)[:200]}, status_code=503)
        return JSONResponse({"status": "ok", "database": "ok"})
