"""Cluster pages: the list, one cluster (nodes, node groups, journal, live phases),
resize, delete and the client config.

Every change goes through the API's own handlers (``api.magnum``), called in-process
with the viewer's principal: the same checks, the same quotas, the same messages.
"""

from __future__ import annotations

import io
import zipfile
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from flotte.api import versions
from flotte.api.context import job_queue
from flotte.api.magnum import certificates
from flotte.api.magnum import clusters as magnum
from flotte.api.magnum.lookup import one_cluster
from flotte.api.magnum.models import CertificateSign, Resize
from flotte.api.web import forms, live
from flotte.api.web.listing import Filters, cluster_rows, rows_html, select_rows
from flotte.api.web.render import html
from flotte.api.web.session import PREFIX, Seen, Viewer
from flotte.errors import FlotteError
from flotte.state.owned import ServeCluster
from flotte.state.status import IN_PROGRESS

router = APIRouter(prefix=PREFIX, include_in_schema=False)
PAGE_SIZE = 100


def latest(request: Request) -> None:
    """The page speaks the newest API version (resize, node groups)."""
    request.state.api_version = versions.MAX


@router.get("/clusters")
async def cluster_list(
    request: Request,
    seen: Seen,
    q: str = Query("", max_length=255),
    status: str = Query("", max_length=32),
    driver: str = Query("", max_length=32),
    sort: str = Query("created", max_length=16),
    desc: bool = Query(False),
    project: str = Query("", max_length=64),
    page: int = Query(1, ge=1, le=100_000),
    per: int = Query(PAGE_SIZE, ge=10, le=1000),
) -> Response:
    who = seen.who
    scope = who.sees
    if who.is_admin and project:
        scope = project
    rows = cluster_rows(seen.ctx.svc, scope)
    drivers = sorted({r.driver for r in rows})
    projects = seen.ctx.serving.tenancy.projects() if who.is_admin else []
    chosen = select_rows(rows, Filters(q, status, driver, sort, desc))
    start = (page - 1) * per
    return html(
        request,
        "clusters.html",
        seen,
        rows=rows_html(
            chosen[start : start + per],
            {p.id: p.name for p in projects} if who.is_admin else None,
        ),
        total=len(chosen),
        recorded=len(rows),
        page=page,
        pages=max(1, -(-len(chosen) // per)),
        filters={"q": q, "status": status, "driver": driver, "sort": sort, "desc": desc},
        project=project,
        projects=projects,
        drivers=drivers,
        eur_day=sum(r.eur_day or 0.0 for r in chosen),
    )


def _cluster_data(seen: Viewer, ident: str) -> dict[str, Any]:
    ctx = seen.ctx
    found = one_cluster(ctx.serving.owned, seen.who, ident)
    entries = live.journal_after(ctx.svc, found.record.name, 0, 100_000)
    state = live.snapshot(ctx.svc, found, entries)
    state["journal"] = [live.entry_view(e) for e in entries[-live.JOURNAL_SHOWN :]]
    template = found.record.spec.template or ""
    if found.template_uuid:
        named = ctx.serving.owned.templates(seen.who.sees, found.template_uuid)
        template = named[0].display_name if named else template
    return {
        "found": found,
        "state": state,
        "last": entries[-1].id if entries else 0,
        "template_name": template,
    }


@router.get("/clusters/{ident}")
async def cluster_page(
    request: Request, ident: str, seen: Seen, error: str = Query("", max_length=500)
) -> Response:
    data = _cluster_data(seen, ident)
    return html(
        request,
        "cluster.html",
        seen,
        live_updates=data["state"]["status"] in IN_PROGRESS,
        error=error,
        **data,
    )


@router.get("/clusters/{ident}/events")
async def cluster_events(
    request: Request, ident: str, seen: Seen, since: int = Query(0, ge=0)
) -> Response:
    found = one_cluster(seen.ctx.serving.owned, seen.who, ident)
    since = int(request.headers.get("last-event-id", since) or 0)
    return StreamingResponse(
        live.stream(seen.ctx.svc, found, since, request.is_disconnected),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def posted(request: Request, seen: Viewer, ident: str) -> tuple[dict[str, str], ServeCluster]:
    """A form posted from a cluster's page: its fields, once its CSRF token is checked,
    and the cluster (not found unless the viewer sees it)."""
    data = await forms.form(request)
    seen.check_csrf(data.get("csrf"))
    return data, one_cluster(seen.ctx.serving.owned, seen.who, ident)


def back(uuid: str, error: str = "") -> RedirectResponse:
    url = f"{PREFIX}/clusters/{uuid}"
    if error:
        from urllib.parse import quote

        url += f"?error={quote(error[:480], safe='')}"
    return RedirectResponse(url, status_code=303)


@router.post("/clusters/{ident}/resize")
async def resize(request: Request, ident: str, seen: Seen) -> Response:
    data, found = await posted(request, seen, ident)
    try:
        body = forms.checked(
            Resize,
            {
                "node_count": forms.number(data.get("node_count")),
                "nodegroup": data.get("nodegroup"),
            },
        )
        latest(request)
        await magnum.resize(ident, body, seen.ctx, seen.who, job_queue(request), request)
    except forms.Invalid as err:
        return back(found.record.uuid, " ".join(err.errors.values()))
    except FlotteError as err:
        return back(found.record.uuid, err.message)
    return back(found.record.uuid)


@router.post("/clusters/{ident}/delete")
async def delete(request: Request, ident: str, seen: Seen) -> Response:
    data, found = await posted(request, seen, ident)
    if data.get("confirm", "").strip() != found.display_name:
        return back(
            found.record.uuid,
            f"type the cluster's name, {found.display_name}, to confirm its deletion",
        )
    try:
        await magnum.delete(ident, seen.ctx, seen.who, job_queue(request))
    except FlotteError as err:
        return back(found.record.uuid, err.message)
    return RedirectResponse(f"{PREFIX}/clusters", status_code=303)


def _client_pair(name: str) -> tuple[bytes, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem, csr.public_bytes(serialization.Encoding.PEM).decode()


ENV = """\
# flotte cluster {name}: source this file, then use docker as usual
export DOCKER_HOST={host}
export DOCKER_TLS_VERIFY=1
export DOCKER_CERT_PATH="$(cd "$(dirname "${{BASH_SOURCE[0]:-$0}}")" && pwd)"
"""


@router.post("/clusters/{ident}/config")
async def config(request: Request, ident: str, seen: Seen) -> Response:
    """A zip of what ``openstack coe cluster config --output-certs`` writes: the
    cluster's CA, a client certificate it signed for a key made now, and an env file."""
    _, found = await posted(request, seen, ident)
    ctx, who = seen.ctx, seen.who
    try:
        shown = await magnum.show(ident, ctx, who, request)
        if not shown.get("api_address"):
            return back(
                found.record.uuid, "the cluster has no API address yet: wait until it is ready"
            )
        key_pem, csr = _client_pair(who.user_name)
        sign = CertificateSign(cluster_uuid=found.record.uuid, csr=csr)
        cert = await certificates.sign(sign, ctx, who, request)
        ca = await certificates.show(found.record.uuid, ctx, who, request)
    except FlotteError as err:
        return back(found.record.uuid, err.message)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for fname, content, mode in (
            ("ca.pem", ca["pem"], 0o644),
            ("cert.pem", cert["pem"], 0o644),
            ("key.pem", key_pem.decode(), 0o600),
            ("env.sh", ENV.format(name=found.display_name, host=shown["api_address"]), 0o644),
        ):
            info = zipfile.ZipInfo(fname)
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, content)
    filename = f"{found.display_name}-config.zip".replace('"', "")
    return Response(
        out.getvalue(),
        media_type="application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )
