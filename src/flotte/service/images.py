"""Images: copied from the local engine to every node of a cluster, or the cloud's own.

An offline machine has no registry: ``docker save`` once, then ``load`` on every node
in parallel from the same bytes. ``flotte image`` uploads and lists a cloud's images
(Glance) through the OpenStack driver's credentials.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from flotte import dockerapi
from flotte.drivers.base import DriverOption
from flotte.drivers.local import local_client
from flotte.errors import FlotteError, NotFound, UsageError

if TYPE_CHECKING:
    from flotte.service.installation import Installation

T = TypeVar("T")


def _save(images: list[str], directory: Path) -> list[Path]:
    """``docker save`` each image to its own archive (all are checked first)."""
    import docker.errors

    client = local_client()
    try:
        found = []
        for name in images:
            try:
                found.append(client.images.get(name))
            except docker.errors.ImageNotFound as err:
                raise NotFound(f"image {name!r} is not on the local Docker engine") from err
        archives = []
        for i, (name, image) in enumerate(zip(images, found, strict=True)):
            target = directory / f"image-{i}.tar"
            with target.open("wb") as out:
                for chunk in image.save(named=name):
                    out.write(chunk)
            archives.append(target)
        return archives
    finally:
        client.close()


async def load_images(service: Installation, cluster: str, images: list[str]) -> int:
    """Load ``images`` on every node of ``cluster``; return how many nodes got them."""
    nodes = [n for n in service.store.nodes(cluster=cluster) if n.endpoint is not None]
    if not nodes:
        raise UsageError(f"cluster {cluster!r} has no node with a Docker engine")
    with tempfile.TemporaryDirectory(prefix="flotte-images-") as tmp:
        archives = await asyncio.to_thread(_save, images, Path(tmp))

        def load(endpoint: dockerapi.Endpoint) -> None:
            with dockerapi.connected(endpoint, service.ca, timeout=600) as cli:
                for archive in archives:
                    with archive.open("rb") as f:
                        cli.api.load_image(f)

        await asyncio.gather(
            *(asyncio.to_thread(load, n.endpoint) for n in nodes if n.endpoint is not None)
        )
    return len(nodes)


# -- the cloud's own images (Glance), for ``flotte image`` --------------------------------


def cloud_auth_options() -> tuple[DriverOption, ...]:
    """The OpenStack driver's options that reach the cloud (flags of ``flotte image``)."""
    from flotte.drivers.openstack.images import AUTH_OPTIONS

    return AUTH_OPTIONS


def cloud_image_formats() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The disk and container formats Glance takes."""
    from flotte.drivers.openstack.images import CONTAINER_FORMATS, DISK_FORMATS

    return DISK_FORMATS, CONTAINER_FORMATS


async def _on_cloud(coro: Awaitable[T]) -> T:
    from flotte.drivers.openstack.connection import translate

    try:
        return await coro
    except FlotteError:
        raise
    except Exception as err:
        raise translate(err, "image") from err


async def upload_cloud_image(
    auth: Mapping[str, Any],
    path: Path,
    name: str,
    *,
    disk_format: str | None = None,
    container_format: str = "bare",
    visibility: str = "private",
    properties: Mapping[str, str] | None = None,
    min_disk: int | None = None,
    min_ram: int | None = None,
    timeout: int = 3600,
) -> dict[str, Any]:
    """Upload ``path`` to the cloud as image ``name``; an identical image is reused."""
    from flotte.drivers.openstack import images as glance

    fields: dict[str, Any] = {"visibility": visibility}
    if min_disk is not None:
        fields["min_disk"] = min_disk
    if min_ram is not None:
        fields["min_ram"] = min_ram
    return await _on_cloud(
        glance.upload(
            auth,
            path,
            name,
            disk_format=disk_format or glance.disk_format_of(path),
            container_format=container_format,
            timeout=timeout,
            meta=properties,
            fields=fields,
        )
    )


async def list_cloud_images(
    auth: Mapping[str, Any], name: str | None = None
) -> list[dict[str, Any]]:
    """The cloud's images this project can use."""
    from flotte.drivers.openstack import images as glance

    return await _on_cloud(glance.listed(auth, name))
