"""``flotte cluster nodegroup``: Magnum's node groups (create, list, show, update, delete)."""

from __future__ import annotations

from typing import Any

import click

from flotte.cli.common import (
    DriverOptionsCommand,
    Progress,
    given_flags,
    parse_labels,
    run,
    service,
    split_driver_options,
    wait_option,
)
from flotte.cli.output import format_option, render_record, render_rows
from flotte.cli.planview import hosts_from, plan_output, shower

COLUMNS = ["uuid", "name", "role", "node_count", "min_node_count", "max_node_count", "status"]


def _view(svc: Any, cluster: str, group: Any) -> dict[str, Any]:
    spec = svc.clusters.get(cluster).spec
    nodes = [n for n in svc.machines.all() if n.cluster == cluster and n.group == group.name]
    return {
        "uuid": group.uuid,
        "name": group.name,
        "cluster": cluster,
        "role": group.spec.role,
        "node_count": group.spec.node_count,
        "min_node_count": group.spec.min_node_count,
        "max_node_count": group.spec.max_node_count,
        "driver": spec.driver_of(group.spec),
        "flavor_id": group.spec.flavor_id,
        "image_id": group.spec.image_id,
        "labels": group.spec.labels,
        "hosts": list(group.spec.hosts),
        "options": group.spec.options,
        "node_addresses": [n.address for n in nodes],
        "status": group.status,
        "status_reason": group.status_reason,
        "is_default": group.name in ("default-master", "default-worker"),
    }


@click.group()
def nodegroup() -> None:
    """Node groups of a cluster: nodes of one role made the same way."""


@nodegroup.command(cls=DriverOptionsCommand)
@click.argument("cluster")
@click.argument("name")
@click.option("--node-count", type=int, default=1, show_default=True, help="Nodes in the group.")
@click.option("--role", default="worker", show_default=True, help="master or worker.")
@click.option("--min-nodes", type=int, default=None, help="Fewest nodes the group may have.")
@click.option("--max-nodes", type=int, default=None, help="Most nodes the group may have.")
@click.option("--driver", "group_driver", default=None, help="Another driver than the cluster's.")
@click.option("--flavor", "flavor_id", default=None, help="Flavor / instance type of its nodes.")
@click.option("--image", "image_id", default=None, help="Image of its nodes.")
@click.option("--labels", multiple=True, help="KEY=VALUE[,KEY=VALUE...] engine labels.")
@click.option("--hosts", default=None, help="Existing hosts of its nodes (ssh).")
@click.option("--hosts-file", default=None, help="A file with one host per line (ssh).")
@plan_output
@wait_option
def create(cluster: str, name: str, **kwargs: Any) -> None:
    """Add a node group to a cluster (and its nodes)."""
    own = {
        "node_count", "role", "min_nodes", "max_nodes", "group_driver", "flavor_id", "image_id",
        "labels", "hosts", "hosts_file", "dry_run", "plan_format", "lock_wait",
    }  # fmt: skip
    flags = given_flags(split_driver_options(kwargs, own))
    progress = Progress(f"nodegroup {name}")
    svc = service(progress, lock_wait=kwargs["lock_wait"])
    dry = kwargs["dry_run"]
    with progress.live():
        run(
            svc.nodegroups.create(
                cluster,
                name,
                node_count=kwargs["node_count"],
                role=kwargs["role"],
                min_node_count=kwargs["min_nodes"],
                max_node_count=kwargs["max_nodes"],
                driver=kwargs["group_driver"],
                flavor_id=kwargs["flavor_id"],
                image_id=kwargs["image_id"],
                labels=parse_labels(kwargs["labels"]),
                hosts=hosts_from(kwargs["hosts"], kwargs["hosts_file"]),
                flags=flags,
                dry_run=dry,
                on_plan=shower(dry, kwargs["plan_format"]),
            )
        )
    if not dry:
        group = svc.nodegroups.get(cluster, name)
        click.echo(
            f"Node group {name} of {cluster}: {group.status}, {group.spec.node_count} node(s)"
        )


@nodegroup.command("list")
@click.argument("cluster")
@format_option()
def list_(cluster: str, fmt: str) -> None:
    """The node groups of a cluster."""
    svc = service()
    rows = [_view(svc, cluster, g) for g in svc.nodegroups.of(cluster)]
    render_rows(rows, COLUMNS, fmt)


@nodegroup.command()
@click.argument("cluster")
@click.argument("name")
@format_option()
def show(cluster: str, name: str, fmt: str) -> None:
    """One node group, with its nodes' addresses."""
    svc = service()
    render_record(_view(svc, cluster, svc.nodegroups.get(cluster, name)), fmt)


@nodegroup.command()
@click.argument("cluster")
@click.argument("name")
@click.option("--node-count", type=int, default=None, help="Nodes wanted.")
@click.option("--min-nodes", type=int, default=None)
@click.option("--max-nodes", type=int, default=None)
@click.option("--nodes-to-remove", default=None, help="Comma-separated nodes to remove first.")
@plan_output
@wait_option
def update(
    cluster: str,
    name: str,
    node_count: int | None,
    min_nodes: int | None,
    max_nodes: int | None,
    nodes_to_remove: str | None,
    dry_run: bool,
    plan_format: str,
    lock_wait: float,
) -> None:
    """Change a node group's count or bounds."""
    progress = Progress(f"nodegroup {name}")
    svc = service(progress, lock_wait=lock_wait)
    remove = [n.strip() for n in (nodes_to_remove or "").split(",") if n.strip()]
    with progress.live():
        run(
            svc.nodegroups.update(
                cluster,
                name,
                node_count=node_count,
                min_node_count=min_nodes,
                max_node_count=max_nodes,
                nodes_to_remove=remove,
                dry_run=dry_run,
                on_plan=shower(dry_run, plan_format),
            )
        )
    if not dry_run:
        group = svc.nodegroups.get(cluster, name)
        click.echo(
            f"Node group {name} of {cluster}: {group.status}, {group.spec.node_count} node(s)"
        )


@nodegroup.command()
@click.argument("cluster")
@click.argument("name")
@plan_output
@wait_option
def delete(cluster: str, name: str, dry_run: bool, plan_format: str, lock_wait: float) -> None:
    """Delete a node group and its nodes."""
    progress = Progress(f"nodegroup {name}")
    svc = service(progress, lock_wait=lock_wait)
    with progress.live():
        run(
            svc.nodegroups.delete(
                cluster, name, dry_run=dry_run, on_plan=shower(dry_run, plan_format)
            )
        )
    if not dry_run:
        click.echo(f"Deleted node group {name} of {cluster}")
