"""``flotte template``: reusable cluster definitions (Magnum's ClusterTemplate)."""

from __future__ import annotations

from typing import Any

import click

from flotte.cli.common import parse_labels, service
from flotte.cli.output import format_option, render_record, render_rows


@click.group()
def template() -> None:
    """Cluster templates (Magnum ClusterTemplate)."""


@template.command()
@click.argument("name")
@click.option("--coe", default="swarm", show_default=True, help="Container orchestration engine.")
@click.option(
    "--driver", default="local", show_default=True, help="Driver the cluster's nodes use."
)
@click.option("--image", "image_id", default=None, help="Image name or ID for the nodes.")
@click.option("--flavor", "flavor_id", default=None, help="Flavor / instance type of workers.")
@click.option(
    "--master-flavor", "master_flavor_id", default=None, help="Flavor / instance type of managers."
)
@click.option("--keypair", "keypair_id", default=None, help="Key pair to put on the nodes.")
@click.option(
    "--external-network", "external_network_id", default=None, help="Network for floating IPs."
)
@click.option("--fixed-network", default=None, help="Private network of the nodes.")
@click.option("--fixed-subnet", default=None, help="Private subnet of the nodes.")
@click.option("--dns-nameserver", default=None, help="DNS server for a network flotte creates.")
@click.option("--network-driver", default=None, help="Swarm network driver (overlay).")
@click.option(
    "--docker-volume-size", type=int, default=None, help="GB of volume for /var/lib/docker."
)
@click.option("--docker-storage-driver", default=None, help="dockerd storage driver.")
@click.option("--labels", multiple=True, help="KEY=VALUE[,KEY=VALUE...]")
@click.option("--insecure-registry", default=None, help="Registry the engines reach without TLS.")
@click.option("--registry-mirror", "registry_mirrors", multiple=True, help="Registry mirror URL.")
@click.option("--http-proxy", default=None)
@click.option("--https-proxy", default=None)
@click.option("--no-proxy", default=None)
@click.option(
    "--server-type",
    type=click.Choice(["vm", "bm"]),
    default=None,
    help="Virtual machines or bare metal.",
)
@click.option("--master-count", type=int, default=None, help="Default number of managers.")
@click.option("--node-count", type=int, default=None, help="Default number of workers.")
@click.option("--floating-ip-enabled/--floating-ip-disabled", default=None)
@click.option(
    "--public", is_flag=True, default=None, help="Visible to every project (flotte serve)."
)
@click.option(
    "--driver-opt",
    "driver_opts",
    multiple=True,
    help="Driver option KEY=VALUE, e.g. openstack_flavor_name=m1.small.",
)
@format_option()
def create(
    name: str,
    fmt: str,
    labels: tuple[str, ...],
    driver_opts: tuple[str, ...],
    registry_mirrors: tuple[str, ...],
    **fields: Any,
) -> None:
    """Create a cluster template."""
    fields["labels"] = parse_labels(labels)
    fields["driver_options"] = parse_labels(driver_opts)
    fields["registry_mirrors"] = list(registry_mirrors)
    svc = service()
    record = svc.templates.create(name, fields)
    render_record(_view(svc, record), fmt)


def _view(svc: Any, record: Any) -> dict[str, Any]:
    """A template as shown: secret options by name only, never their values."""
    view: dict[str, Any] = record.view()
    secret = svc.templates.secret_keys(record.name)
    if secret:
        view["secret_options"] = secret
    return view


@template.command("list")
@format_option()
def list_(fmt: str) -> None:
    """List cluster templates."""
    rows = [t.view() for t in service().templates.all()]
    render_rows(
        rows, ["name", "coe", "driver", "image_id", "flavor_id", "master_count", "node_count"], fmt
    )


@template.command()
@click.argument("name")
@format_option()
def show(name: str, fmt: str) -> None:
    """Show a cluster template."""
    svc = service()
    render_record(_view(svc, svc.templates.get(name)), fmt)


@template.command()
@click.argument("names", nargs=-1, required=True)
def delete(names: tuple[str, ...]) -> None:
    """Delete cluster templates that no cluster uses."""
    svc = service()
    for name in names:
        svc.templates.get(name)
    for name in names:
        svc.templates.delete(name)
        click.echo(f"Deleted template {name}")
