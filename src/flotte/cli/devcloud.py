"""``flotte devcloud up|down|status``: real OpenStack services on this machine."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from flotte.cli.output import format_option, render_record, render_rows

DIR_OPTION = click.option(
    "--dir",
    "root",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="FLOTTE_DEVCLOUD_DIR",
    default=None,
    help="devcloud's directory (default: <flotte data>/devcloud).",
)


@click.group()
def devcloud() -> None:
    """Real OpenStack services (Keystone, Glance, Placement, Nova, Neutron; Ironic with
    --ironic) on 127.0.0.1.

    Clouds `devcloud` (admin), `devcloud-demo` and `devcloud-alt` (non-admin projects)
    are written to clouds.yaml for openstacksdk and the openstack CLI.
    """


@devcloud.command()
@DIR_OPTION
@click.option("--wipe", is_flag=True, help="Delete existing data first (keeps packages).")
@click.option(
    "--clouds-yaml",
    "clouds_yaml",
    envvar="FLOTTE_DEVCLOUD_CLOUDS_YAML",
    default="default",
    help="clouds.yaml to add the entries to (default: ~/.config/openstack/clouds.yaml; "
    "'none': only <dir>/clouds.yaml).",
)
@click.option(
    "--docker/--no-docker",
    "docker",
    default=None,
    help="Servers become containers on the local Docker engine (kept for later `up`s).",
)
@click.option(
    "--ironic/--no-ironic",
    "ironic",
    default=None,
    help="Bare metal: Ironic with enrolled nodes, and flavor bm.small scheduled onto them "
    "(kept for later `up`s).",
)
@click.option(
    "--computes",
    "compute_hosts",
    type=int,
    default=None,
    help="Fake compute hosts (nova-compute processes, ~150 MB each) to spread servers "
    "over, like a cloud's hosts; fewer takes the others away (kept for later `up`s; 1 "
    "at first).",
)
def up(
    root: Path | None,
    wipe: bool,
    clouds_yaml: str,
    docker: bool | None,
    ironic: bool | None,
    compute_hosts: int | None,
) -> None:
    """Install (first time) and start devcloud; a no-op when it is already up."""
    from rich.console import Console

    from flotte.devcloud.cloud import DevCloud

    console = Console(stderr=True)
    target = None if clouds_yaml.lower() == "none" else clouds_yaml
    cloud = DevCloud(root.resolve() if root else None, clouds_yaml=target)

    @contextmanager
    def step(label: str) -> Iterator[None]:
        t0 = time.monotonic()
        with console.status(f"{label}..."):
            yield
        console.print(f"[green]✓[/] {label} [dim]({time.monotonic() - t0:.1f} s)[/]")

    result = cloud.up(step, wipe=wipe, docker=docker, ironic=ironic, compute_hosts=compute_hosts)
    if not result.changed:
        console.print("devcloud is already up; nothing to do.")
    else:
        console.print(f"devcloud is up in {result.seconds:.0f} s.")
    click.echo(f"clouds.yaml: {', '.join(result.clouds_yaml)}")
    click.echo("clouds: devcloud (admin), devcloud-demo, devcloud-alt")
    click.echo("try: openstack --os-cloud devcloud-demo server list")


@devcloud.command()
@DIR_OPTION
@click.option("--wipe", is_flag=True, help="Also delete databases, images and configs.")
def down(root: Path | None, wipe: bool) -> None:
    """Stop the processes `up` started (by recorded PID); --wipe deletes the data."""
    from flotte.devcloud.cloud import DevCloud

    cloud = DevCloud(root.resolve() if root else None)
    stopped = cloud.down(wipe=wipe)
    if stopped:
        click.echo(f"stopped: {', '.join(stopped)}")
    else:
        click.echo("devcloud was not running.")
    if wipe:
        click.echo(f"wiped {cloud.layout.root} (packages kept in {cloud.layout.venv})")


@devcloud.command()
@DIR_OPTION
@format_option()
def status(root: Path | None, fmt: str) -> None:
    """Processes, memory, API health and clouds of devcloud."""
    from flotte.devcloud.cloud import DevCloud

    info = DevCloud(root.resolve() if root else None).status()
    if fmt in ("json", "yaml"):
        render_record(info, fmt)
        return
    summary = {k: v for k, v in info.items() if k not in ("processes", "apis")}
    summary["apis"] = {k: ("ok" if v["answers"] else "down") for k, v in info["apis"].items()}
    render_record(summary, fmt)
    if fmt == "table":
        click.echo()
        render_rows(info["processes"], ["name", "running", "pid", "memory_mib", "log"], fmt)


@devcloud.command("register-serve")
@click.argument("url")
@DIR_OPTION
def register_serve(url: str, root: Path | None) -> None:
    """Put flotte serve (URL ending in /v1) in devcloud's catalog as container-infra."""
    from flotte.devcloud.serve_catalog import register_serve as register

    register(url, root.resolve() if root else None)
    click.echo(f"container-infra -> {url.rstrip('/')} (public, internal, admin)")
