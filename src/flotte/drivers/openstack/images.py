"""The cloud's own images (Glance): upload one without making a duplicate, list them.

Credentials are the driver's (``--openstack-cloud`` or the docker-machine flags); only
the options that reach the cloud apply (``AUTH_OPTIONS``), not the server's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flotte.drivers.base import DriverOption
from flotte.drivers.openstack.connection import provider
from flotte.drivers.openstack.options import OPTIONS

_AUTH = (
    "cloud", "auth-url", "insecure", "cacert", "domain-id", "domain-name", "user-domain-name",
    "project-domain-name", "username", "password", "tenant-name", "tenant-id", "project-name",
    "project-id", "application-credential-id", "application-credential-name",
    "application-credential-secret", "region", "endpoint-type",
)  # fmt: skip
AUTH_OPTIONS: tuple[DriverOption, ...] = tuple(
    o for o in OPTIONS if o.name.removeprefix("openstack-") in _AUTH
)
DISK_FORMATS = ("qcow2", "raw", "vmdk", "vdi", "vhd", "vhdx", "iso", "ami", "aki", "ari", "ploop")
CONTAINER_FORMATS = ("bare", "ovf", "ova", "docker", "ami", "aki", "ari", "compressed")


def row(image: Any) -> dict[str, Any]:
    return {
        "id": image.id,
        "name": image.name,
        "status": image.status,
        "disk_format": image.disk_format,
        "size": image.size,
        "visibility": image.visibility,
        "created_at": image.created_at,
    }


def disk_format_of(path: Path) -> str:
    """The disk format a file's name suggests, else qcow2."""
    suffix = path.suffix.lower().lstrip(".")
    return suffix if suffix in DISK_FORMATS else ("raw" if suffix == "img" else "qcow2")


def _digest(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def same_image(glance: Any, name: str, path: Path) -> Any:
    """An active image with this name and exactly this content (Glance's multihash)."""
    size = path.stat().st_size
    for candidate in glance.images(name=name, status="active"):
        algo = getattr(candidate, "hash_algo", None)
        value = getattr(candidate, "hash_value", None)
        if candidate.size == size and algo and value and _digest(path, algo) == value:
            return candidate
    return None


def drop_unfinished(glance: Any, name: str) -> None:
    """Delete the empty record a failed upload leaves (Glance keeps it ``queued``)."""
    for leftover in list(glance.images(name=name, status="queued")):
        glance.delete_image(leftover, ignore_missing=True)


async def upload(
    auth: Mapping[str, Any],
    path: Path,
    name: str,
    *,
    disk_format: str,
    container_format: str,
    timeout: int,
    meta: Mapping[str, str] | None = None,
    fields: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Upload ``path`` as image ``name``; an identical active image is reused."""
    p = await provider(auth)
    glance = p.conn.image
    existing = await p.read(lambda: same_image(glance, name, path), "list images")
    if existing is not None:
        return row(existing)

    def upload_() -> Any:
        try:
            made = glance.create_image(
                name,
                filename=str(path),
                disk_format=disk_format,
                container_format=container_format,
                meta=dict(meta or {}) or None,
                allow_duplicates=True,  # same_image() did the duplicate check
                wait=True,
                timeout=timeout,
                **dict(fields or {}),
            )
        except Exception:
            drop_unfinished(glance, name)
            raise
        # create_image returns the record as it was before the upload: read it again.
        return glance.get_image(made.id)

    made = await p.run(upload_, f"upload image {name}", retry=frozenset({429, 503}))
    return row(made)


async def listed(auth: Mapping[str, Any], name: str | None = None) -> list[dict[str, Any]]:
    """The images this project can use (only those called ``name``, when given)."""
    p = await provider(auth)
    glance = p.conn.image
    query = {"name": name} if name else {}
    images = await p.read(lambda: list(glance.images(**query)), "list images")
    return [row(i) for i in sorted(images, key=lambda i: (i.name or "", i.id))]
