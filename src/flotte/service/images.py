"""Copying images from the local engine to every node of a cluster.

An offline machine has no registry: ``docker save`` once, then ``load`` on every node
in parallel from the same bytes.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from flotte import dockerapi
from flotte.drivers.local import local_client
from flotte.errors import NotFound, UsageError

if TYPE_CHECKING:
    from flotte.service.installation import Installation


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
