"""``flotte image``: the cloud's own images (Glance), the talk's "own images".

    flotte image upload debian.qcow2 --name debian-docker --openstack-cloud mylab
    flotte image list -f json

Credentials are the OpenStack driver's: ``--openstack-cloud`` (clouds.yaml) or the
docker-machine ``--openstack-*`` flags and their ``OS_*`` variables.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from flotte.cli.output import format_option, render_record, render_rows
from flotte.errors import UsageError
from flotte.service import images

DISK_FORMATS, CONTAINER_FORMATS = images.cloud_image_formats()


def cloud_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add the OpenStack credential flags (with their OS_* variables) to a command."""
    for opt in reversed(images.cloud_auth_options()):
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
    meta: dict[str, str] = {}
    for pair in properties:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--property: {pair!r} is not KEY=VALUE")
        meta[key] = value
    made = asyncio.run(
        images.upload_cloud_image(
            auth,
            file,
            name,
            disk_format=disk_format,
            container_format=container_format,
            visibility=visibility,
            properties=meta,
            min_disk=min_disk,
            min_ram=min_ram,
            timeout=timeout,
        )
    )
    render_record(made, fmt)


@image.command("list")
@click.option("--name", default=None, help="Only images with this name.")
@format_option()
@cloud_options
def list_(name: str | None, fmt: str, **auth: Any) -> None:
    """List the images this project can use."""
    rows = asyncio.run(images.list_cloud_images(auth, name))
    render_rows(rows, ["id", "name", "status", "disk_format", "size", "visibility"], fmt)
