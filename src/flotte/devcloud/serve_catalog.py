"""Register ``flotte serve`` in devcloud's Keystone as the ``container-infra`` service, so
``openstack --os-cloud devcloud-demo coe ...`` finds it in the catalog (Keystone mode).

Find-or-create, like the rest of devcloud's seeding: a service named ``magnum`` of type
``container-infra`` with a public, an internal and an admin endpoint at the given URL
(ending in ``/v1``); endpoints that point elsewhere are moved to it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flotte.devcloud import render, seed
from flotte.devcloud.layout import REGION, Layout, default_dir
from flotte.errors import UsageError

SERVICE_TYPE = "container-infra"
SERVICE_NAME = "magnum"
INTERFACES = ("public", "internal", "admin")


def register_serve(url: str, root: Path | None = None, conn: Any = None) -> dict[str, str]:
    """Point devcloud's ``container-infra`` endpoints at ``url``; returns interface -> URL."""
    url = url.rstrip("/")
    if not url.startswith(("http://", "https://")) or not url.endswith("/v1"):
        raise UsageError(f"{url!r}: give flotte serve's Magnum URL, e.g. http://127.0.0.1:9511/v1")
    conn = conn or seed.connect(render.load_secrets(Layout(root or default_dir())))
    ident = conn.identity
    service = next(iter(ident.services(type=SERVICE_TYPE)), None) or ident.create_service(
        name=SERVICE_NAME, type=SERVICE_TYPE, description="flotte serve (Magnum API v1)"
    )
    found = {e.interface: e for e in ident.endpoints(service_id=service.id)}
    for interface in INTERFACES:
        endpoint = found.get(interface)
        if endpoint is None:
            ident.create_endpoint(
                service_id=service.id, interface=interface, url=url, region_id=REGION
            )
        elif endpoint.url != url:
            ident.update_endpoint(endpoint, url=url)
    return {i: url for i in INTERFACES}


def unregister_serve(root: Path | None = None, conn: Any = None) -> None:
    """Remove the ``container-infra`` service and its endpoints from devcloud's catalog."""
    conn = conn or seed.connect(render.load_secrets(Layout(root or default_dir())))
    ident = conn.identity
    for service in list(ident.services(type=SERVICE_TYPE)):
        for endpoint in list(ident.endpoints(service_id=service.id)):
            ident.delete_endpoint(endpoint)
        ident.delete_service(service)
