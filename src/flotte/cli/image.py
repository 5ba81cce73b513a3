"""``flotte image``: the cloud's own images (Glance), the talk's "own images".

    flotte image upload debian.qcow2 --name debian-docker --openstack-cloud mylab
    flotte image list -f json

Credentials are the OpenStack driver's: ``--openstack-cloud`` (clouds.yaml) or the
docker-machine ``--openstack-*`` flags and their ``OS_*`` variables.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from flotte.cli.output import format_option, render_record, render_rows
from flotte.errors import FlotteError, UsageError

# Only what it takes to reach the cloud; the server flags of `machine create` don't apply.
_AUTH = (
    "cloud", "auth-url", "insecure", "cacert", "domain-id", "domain-name", "user-domain-name",
    "project-domain-name", "username", "password", "tenant-name", "tenant-id", "project-name",
    "project-id", "application-credential-id", "application-credential-name",
    "application-credential-secret", "region", "endpoint-type",
)  # fmt: skip
DISK_FORMATS = ("qcow2", "raw", "vmdk", "vdi", "vhd", "vhdx", "iso", "ami", "aki", "ari", "ploop")
CONTAINER_FORMATS = ("bare", "ovf", "ova", "docker", "ami", "aki", "ari", "compressed")


def cloud_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add the OpenStack credential flags (with their OS_* variables) to a command."""
    from flotte.drivers.openstack import OPTIONS

    for opt in reversed([o for o in OPTIONS if o.name.removeprefix("openstack-") in _AUTH]):
        fn = click.option(
            f"--{opt.name}",
            opt.key,
            envvar=opt.envvar,
            is_flag=opt.is_flag,
            default=False if opt.is_flag else None,
            help=opt.help,
            show_envvar=bool(opt.envvar),
        )(fn)
    return fn


def _run(coro: Any) -> Any:
    try:
        return asyncio.run(coro)
    except FlotteError:
        raise
    except Exception as err:
        from flotte.drivers.openstack.connection import translate

        raise translate(err, "image") from err


def _row(image: Any) -> dict[str, Any]:
    return {
        "id": image.id,
        "name": image.name,
        "status": image.status,
        "disk_format": image.disk_format,
        "size": image.size,
        "visibility": image.visibility,
        "created_at": image.created_at,
    }


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


@click.group()
def image() -> None:
    """Cloud images (Glance): upload your own, list what the cloud offers."""


@image.command("upload")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", required=True, help="Image name.")
@click.option("--disk-format", type=click.Choice(DISK_FORMATS), default=None,
              help="Disk format (default: from the file name, else qcow2).")  # fmt: skip
@click.option("--container-format", type=click.Choice(CONTAINER_FORMATS), default="bare",
              show_default=True, help="Container format.")  # fmt: skip
@click.option("--visibility", type=click.Choice(("private", "shared", "community", "public")),
              default="private", show_default=True)  # fmt: skip
@click.option("--property", "properties", multiple=True, metavar="KEY=VALUE",
              help="Image property, e.g. os_distro=debian (repeatable).")  # fmt: skip
@click.option("--min-disk", type=int, default=None, help="Minimum disk (GB).")
@click.option("--min-ram", type=int, default=None, help="Minimum RAM (MB).")
@click.option("--timeout", type=int, default=3600, show_default=True,
              help="Seconds to wait for the image to become active.")  # fmt: skip
@format_option()
@cloud_options
def upload(
    file: Path,
    name: str,
    disk_format: str | None,
    container_format: str,
    visibility: str,
    properties: tuple[str, ...],
    min_disk: int | None,
    min_ram: int | None,
    timeout: int,
    fmt: str,
    **auth: Any,
) -> None:
    """Upload FILE as an image; an identical image with that name is reused, not duplicated."""
    meta: dict[str, Any] = {}
    for pair in properties:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--property: {pair!r} is not KEY=VALUE")
        meta[key] = value
    if disk_format is None:
        suffix = file.suffix.lower().lstrip(".")
        disk_format = suffix if suffix in DISK_FORMATS else ("raw" if suffix == "img" else "qcow2")
    extra: dict[str, Any] = {"visibility": visibility}
    if min_disk is not None:
        extra["min_disk"] = min_disk
    if min_ram is not None:
        extra["min_ram"] = min_ram

    async def go() -> Any:
        from flotte.drivers.openstack.connection import provider

        p = await provider(auth)
        glance = p.conn.image
        existing = await p.read(lambda: same_image(glance, name, file), "list images")
        if existing is not None:
            return existing

        def upload_() -> Any:
            try:
                made = glance.create_image(
                    name,
                    filename=str(file),
                    disk_format=disk_format,
                    container_format=container_format,
                    meta=meta or None,
                    allow_duplicates=True,  # same_image() did the duplicate check
                    wait=True,
                    timeout=timeout,
                    **extra,
                )
            except Exception:
                drop_unfinished(glance, name)
                raise
            # create_image returns the record as it was before the upload: read it again.
            return glance.get_image(made.id)

        return await p.run(upload_, f"upload image {name}", retry=frozenset({429, 503}))

    render_record(_row(_run(go())), fmt)


@image.command("list")
@click.option("--name", default=None, help="Only images with this name.")
@format_option()
@cloud_options
def list_(name: str | None, fmt: str, **auth: Any) -> None:
    """List the images this project can use."""

    async def go() -> list[dict[str, Any]]:
        from flotte.drivers.openstack.connection import provider

        p = await provider(auth)
        glance = p.conn.image
        query = {"name": name} if name else {}
        images = await p.read(lambda: list(glance.images(**query)), "list images")
        return [_row(i) for i in sorted(images, key=lambda i: (i.name or "", i.id))]

    render_rows(_run(go()), ["id", "name", "status", "disk_format", "size", "visibility"], fmt)
