"""``flotte cluster``: container clusters with Magnum's words and statuses."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from flotte.cli.common import (
    DriverOptionsCommand,
    Progress,
    for_each,
    parse_labels,
    read_listing,
    run,
    service,
    split_driver_options,
    wait_option,
)
from flotte.cli.output import format_option, render_record, render_rows
from flotte.cli.planview import hosts_from, plan_output, shower
from flotte.errors import UsageError

if TYPE_CHECKING:
    from flotte.state.reader import Reader

LIST_COLUMNS = ["name", "driver", "coe", "master_count", "node_count", "status", "health_status"]


@click.group()
def cluster() -> None:
    """Container clusters: Swarm managers and workers."""


@cluster.command(cls=DriverOptionsCommand)
@click.argument("name")
@click.option("--template", "template", default=None, help="Cluster template to start from.")
@click.option("--driver", "driver_name", default=None, help="Driver, when not using a template.")
@click.option("--coe", default=None, help="Container orchestration engine (swarm).")
@click.option(
    "--master-count", type=int, default=None, help="Managers (default 1; 3 or 5 for a Raft quorum)."
)
@click.option("--node-count", type=int, default=None, help="Workers (default 1).")
@click.option(
    "--timeout",
    type=float,
    default=60.0,
    show_default=True,
    help="Minutes to wait for every node to be Ready.",
)
@click.option(
    "--labels", multiple=True, help="KEY=VALUE[,KEY=VALUE...] engine labels on every node."
)
@click.option("--hosts", default=None, help="Existing hosts (ssh), one per node, managers first.")
@click.option("--hosts-file", default=None, help="A file with one host per line (ssh).")
@click.option(
    "--parallelism",
    type=int,
    default=None,
    help="At most this many node steps at once (default: each driver paces its own calls).",
)
@plan_output
@click.option(
    "--no-rollback", is_flag=True, help="Keep what was made when creation fails (re-run to resume)."
)
@click.option(
    "--no-provision",
    is_flag=True,
    help="Create the infrastructure only: no Docker engines, no swarm.",
)
@wait_option
def create(name: str, **kwargs: Any) -> None:
    """Create a cluster: managers and workers in parallel, then a Swarm over them."""
    from flotte.models import check_name

    check_name("cluster", name)
    own = {
        "template",
        "driver_name",
        "coe",
        "master_count",
        "node_count",
        "timeout",
        "labels",
        "hosts",
        "hosts_file",
        "parallelism",
        "dry_run",
        "plan_format",
        "no_rollback",
        "no_provision",
        "lock_wait",
    }
    flags = split_driver_options(kwargs, own)
    if kwargs["parallelism"] is not None and kwargs["parallelism"] < 1:
        raise UsageError("--parallelism must be at least 1")
    progress = Progress(f"cluster {name}")
    svc = service(progress, parallelism=kwargs["parallelism"], lock_wait=kwargs["lock_wait"])
    spec, secrets = svc.resolve(
        name,
        template=kwargs["template"],
        driver=kwargs["driver_name"],
        coe=kwargs["coe"],
        master_count=kwargs["master_count"],
        node_count=kwargs["node_count"],
        flags=flags,
        labels=parse_labels(kwargs["labels"]),
        timeout_min=kwargs["timeout"],
        no_provision=kwargs["no_provision"],
        hosts=hosts_from(kwargs["hosts"], kwargs["hosts_file"]),
    )
    dry = kwargs["dry_run"]
    with progress.live():
        run(
            svc.clusters.create(
                spec,
                secrets,
                rollback=not kwargs["no_rollback"],
                dry_run=dry,
                on_plan=shower(dry, kwargs["plan_format"]),
            )
        )
    if dry:
        return
    row = svc.clusters.get(name)
    click.echo(f"Cluster {name}: {row.status} ({row.status_reason})")
    if not row.spec.no_provision:
        click.echo(f"Docker context: docker --context flotte-{name} node ls")


@cluster.command("list")
@click.option("--health", is_flag=True, help="Ask each cluster's manager for its nodes' health.")
@format_option()
def list_(health: bool, fmt: str) -> None:
    """List clusters."""
    from flotte.state.cluster_view import cluster_views

    # the records read without the ORM (state/reader.py), when health is not asked
    rows = (
        None if health else read_listing(lambda r: cluster_views(r.clusters(), r.cluster_nodes()))
    )
    if rows is not None:
        render_rows(rows, LIST_COLUMNS, fmt)
        return
    from flotte.service import views

    render_rows(run(views.listing(service(), with_health=health)), LIST_COLUMNS, fmt)


@cluster.command()
@click.argument("name")
@click.option(
    "--health",
    is_flag=True,
    help="Check the cluster's health now (recorded on it) and list the swarm's nodes.",
)
@format_option()
def show(name: str, health: bool, fmt: str) -> None:
    """Everything about one cluster, with its node groups, nodes and recorded health."""
    # Like Magnum's 'coe cluster show' (and flotte serve's), a plain show reads the
    # record: health as the last check, heal or watch recorded it. Checking asks every
    # node's provider or engine, which --health (and 'cluster check') do on request.
    shown = None if health else read_listing(lambda r: _recorded(r, name))
    if shown is None:  # not recorded (the store says so), or the state needs the store
        from flotte.service import views

        shown = run(views.show(service(), name, with_health=health))
    if fmt not in ("json", "yaml"):
        for node in shown["nodes"]:  # a table says "-" where JSON says null
            node["engine_version"] = node["engine_version"] or "-"
    render_record(shown, fmt)


def _recorded(reader: Reader, name: str) -> dict[str, Any] | None:
    """``show``'s view of the records read without the ORM; None: no such cluster."""
    from flotte.state.cluster_view import cluster_view

    found = reader.cluster(name)
    return None if found is None else cluster_view(found, reader.nodes(cluster=name))


@cluster.command()
@click.argument("names", nargs=-1, required=True)
@plan_output
@wait_option
def delete(names: tuple[str, ...], dry_run: bool, plan_format: str, lock_wait: float) -> None:
    """Delete clusters and everything flotte made for them."""
    progress = Progress("delete")
    svc = service(progress, lock_wait=lock_wait)
    for name in names:
        svc.clusters.get(name)
    if dry_run:
        for name in names:
            run(svc.clusters.delete(name, dry_run=True, on_plan=shower(True, plan_format)))
        return
    for_each(names, svc.clusters.delete, lambda n: f"Deleted cluster {n}", progress)


@cluster.command()
@click.argument("name")
@click.argument("count", type=int, required=False)
@click.option("--node-count", type=int, default=None, help="Nodes wanted in the node group.")
@click.option("--nodegroup", default=None, help="Node group to resize (default: default-worker).")
@click.option(
    "--nodes-to-remove", default=None, help="Comma-separated nodes to remove when shrinking."
)
@click.option("--hosts", default=None, help="ssh driver: more hosts for the new nodes.")
@click.option(
    "--overflow",
    default=None,
    help="Worker node groups to fill in order (GROUP,GROUP...): --node-count is their total.",
)
@click.option(
    "--max-eur-day", type=float, default=None, help="Overflow budget of the whole cluster."
)
@plan_output
@wait_option
def resize(
    name: str,
    count: int | None,
    node_count: int | None,
    nodegroup: str | None,
    nodes_to_remove: str | None,
    hosts: str | None,
    overflow: str | None,
    max_eur_day: float | None,
    dry_run: bool,
    plan_format: str,
    lock_wait: float,
) -> None:
    """Change the number of nodes of a node group (workers by default), or of the
    workers over several node groups filled in order (--overflow)."""
    wanted = node_count if node_count is not None else count
    if wanted is None:
        raise UsageError("give the number of nodes: flotte cluster resize NAME --node-count N")
    progress = Progress(f"resize {name}")
    svc = service(progress, lock_wait=lock_wait)
    remove = [n.strip() for n in (nodes_to_remove or "").split(",") if n.strip()]
    groups = [g.strip() for g in (overflow or "").split(",") if g.strip()]
    if groups and (nodegroup or hosts):
        raise UsageError("--overflow sizes its own groups: leave out --nodegroup and --hosts")
    if overflow is not None and not groups:
        raise UsageError("--overflow needs node group names: --overflow GROUP,GROUP")
    if (groups or max_eur_day is not None or svc.clusters.get(name).spec.overflow) and (
        not nodegroup and not hosts
    ):
        with progress.live():
            run(
                svc.overflow.resize(
                    name,
                    wanted,
                    groups,
                    max_eur_day=max_eur_day,
                    nodes_to_remove=remove,
                    dry_run=dry_run,
                    on_plan=shower(dry_run, plan_format),
                )
            )
        if not dry_run:
            row = svc.clusters.get(name)
            click.echo(f"Cluster {name}: {row.status} ({row.status_reason})")
        return
    with progress.live():
        run(
            svc.clusters.resize(
                name,
                wanted,
                nodegroup=nodegroup,
                nodes_to_remove=remove,
                hosts=hosts_from(hosts, None),
                dry_run=dry_run,
                on_plan=shower(dry_run, plan_format),
            )
        )
    if dry_run:
        return
    row = svc.clusters.get(name)
    click.echo(
        f"Cluster {name}: {row.status}, {row.master_count} manager(s), {row.node_count} worker(s)"
    )


@cluster.command("plan")
@click.argument("name")
@click.option("--spec", "spec_file", default=None, help="Plan to reach this spec file instead.")
@click.option("--node-count", type=int, default=None, help="Plan a resize to this count.")
@click.option("--nodegroup", default=None, help="The node group of --node-count.")
@click.option("--delete", "delete_", is_flag=True, help="Plan the cluster's deletion.")
@format_option()
def plan_(
    name: str,
    spec_file: str | None,
    node_count: int | None,
    nodegroup: str | None,
    delete_: bool,
    fmt: str,
) -> None:
    """The plan that would run: to finish the cluster as recorded, or for a change."""
    svc = service()
    fmt = fmt if fmt in ("json", "yaml") else "table"
    show = shower(True, fmt)
    if delete_:
        run(svc.clusters.delete(name, dry_run=True, on_plan=show))
    elif spec_file:
        from flotte.service.apply import apply

        run(apply(svc.clusters, Path(spec_file), dry_run=True, on_plan=show))
    elif node_count is not None:
        run(svc.clusters.resize(name, node_count, nodegroup=nodegroup, dry_run=True, on_plan=show))
    else:
        run(svc.clusters.converge(name, dry_run=True, on_plan=show))


@cluster.command()
@click.argument("name")
@click.option(
    "-f", "--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True
)
@click.option("-o", "--output", "path", default=None, help="Write to this file (default: stdout).")
def export(name: str, fmt: str, path: str | None) -> None:
    """The spec file that recreates a cluster with 'flotte apply -f'."""
    import json

    import yaml

    from flotte.service.apply import export as export_spec

    data = export_spec(service().clusters, name)
    text = (
        json.dumps(data, indent=2) + "\n"
        if fmt == "json"
        else yaml.safe_dump(data, sort_keys=False)
    )
    if path:
        Path(path).write_text(text)
        click.echo(f"Wrote {path}")
    else:
        click.echo(text, nl=False)


@cluster.command()
@click.argument("name")
@click.option("--dir", "directory", default=None, help="Write ca.pem, cert.pem and key.pem here.")
@click.option("--force", is_flag=True, help="Overwrite files in --dir.")
@click.option(
    "--shell", type=click.Choice(["bash", "zsh", "fish", "powershell", "cmd", "tcsh"]), default=None
)
def config(name: str, directory: str | None, force: bool, shell: str | None) -> None:
    """TLS material and environment for the cluster's Docker API (like Magnum's)."""
    from flotte.cli.shell_env import default_shell, format_env, shell_hint
    from flotte.config import write_public, write_secret

    svc = service()
    env = svc.machines.env(name)
    if directory:
        target = Path(directory)
        source = Path(env["DOCKER_CERT_PATH"])
        files = {"ca.pem": source / "ca.pem", "cert.pem": source / "cert.pem"}
        files["key.pem"] = source / "key.pem"
        if not force:
            clash = [f for f in files if (target / f).exists()]
            if clash:
                raise UsageError(
                    f"{', '.join(clash)} already in {target}: pass --force to overwrite"
                )
        for fname, src in files.items():
            writer = write_secret if fname == "key.pem" else write_public
            writer(target / fname, src.read_bytes())
        env["DOCKER_CERT_PATH"] = str(target.resolve())
    shell = shell or default_shell()
    click.echo(format_env(env, shell, False, shell_hint(shell, f"flotte cluster config {name}")))
    click.echo(f"# or: docker --context flotte-{name} ...")


@cluster.command("env")
@click.argument("name")
@click.option(
    "--shell", type=click.Choice(["bash", "zsh", "fish", "powershell", "cmd", "tcsh"]), default=None
)
@click.option("-u", "--unset", is_flag=True)
def env_(name: str, shell: str | None, unset: bool) -> None:
    """Shell commands that point the docker CLI at the cluster's manager."""
    from flotte.cli.shell_env import default_shell, format_env, shell_hint

    svc = service()
    shell = shell or default_shell()
    values = svc.machines.env(name)
    click.echo(format_env(values, shell, unset, shell_hint(shell, f"flotte cluster env {name}")))


@cluster.command("load-image")
@click.argument("name")
@click.argument("images", nargs=-1, required=True)
def load_image(name: str, images: tuple[str, ...]) -> None:
    """Copy local images to every node of a cluster (no registry needed)."""
    from flotte.service.images import load_images

    svc = service()
    svc.clusters.get(name)
    started = time.monotonic()
    count = run(load_images(svc, name, list(images)))
    click.echo(
        f"Loaded {', '.join(images)} on {count} node(s) in {time.monotonic() - started:.1f} s"
    )


def _register_nodegroups() -> None:
    from flotte.cli.health import register
    from flotte.cli.migrate import cluster_export_access, cluster_inventory
    from flotte.cli.nodegroup import nodegroup

    cluster.add_command(nodegroup)
    register(cluster)  # check, heal, events
    cluster.add_command(cluster_export_access)
    cluster.add_command(cluster_inventory)


_register_nodegroups()
