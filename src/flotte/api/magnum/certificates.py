"""``/v1/certificates``: a cluster's own CA (GET) and client certificates signed by it
(POST a CSR): what ``openstack coe cluster config --output-certs`` writes, and what
``docker --tlsverify`` then shows the cluster's engines."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from flotte.api.context import Caller, Ctx
from flotte.api.errors import ApiError
from flotte.api.magnum.common import base_url
from flotte.api.magnum.lookup import one_cluster
from flotte.api.magnum.models import CertificateSign
from flotte.identity import cluster_ca
from flotte.state.owned import ServeCluster
from flotte.state.tenancy import CARecord

router = APIRouter(tags=["certificates"])


def _ca(ctx: Ctx, found: ServeCluster) -> CARecord:
    record = ctx.serving.tenancy.ca(found.record.name)
    if record is None:
        raise ApiError(404, f"Cluster {found.display_name} has no CA of its own")
    return record


def _links(base: str, uuid: str) -> list[dict[str, str]]:
    return [
        {"href": f"{base}/v1/certificates/{uuid}", "rel": "self"},
        {"href": f"{base}/certificates/{uuid}", "rel": "bookmark"},
    ]


@router.get("/v1/certificates/{cluster}")
async def show(cluster: str, ctx: Ctx, who: Caller, request: Request) -> dict[str, Any]:
    found = one_cluster(ctx.serving.owned, who, cluster)
    record = _ca(ctx, found)
    base = base_url(request, ctx.settings.public_url)
    return {
        "cluster_uuid": found.record.uuid,
        "pem": record.ca_pem,
        "links": _links(base, found.record.uuid),
    }


@router.post("/v1/certificates", status_code=201)
async def sign(body: CertificateSign, ctx: Ctx, who: Caller, request: Request) -> dict[str, Any]:
    found = one_cluster(ctx.serving.owned, who, body.cluster_uuid)
    pem = cluster_ca.sign_csr(_ca(ctx, found), ctx.serving.vault, body.csr)
    base = base_url(request, ctx.settings.public_url)
    return {
        "cluster_uuid": found.record.uuid,
        "csr": body.csr,
        "pem": pem,
        "links": _links(base, found.record.uuid),
    }


@router.patch("/v1/certificates/{cluster}", status_code=202)
async def rotate(cluster: str, ctx: Ctx, who: Caller) -> dict[str, Any]:
    found = one_cluster(ctx.serving.owned, who, cluster)
    raise ApiError(
        400,
        f"rotating the CA of cluster {found.display_name} is not supported by flotte serve: "
        "its engines would need new certificates; create a new cluster instead",
    )
