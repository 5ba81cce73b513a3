"""``flotte cluster``: container clusters with Magnum's words and statuses."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from flotte.cli.common import (
    DriverOptionsCommand,
    Progress,
    for_each,
    parse_labels,
    run,
    service,
    split_driver_options,
    wait_option,
)
from flotte.cli.output import format_option, render_record, render_rows
from flotte.errors import UsageError

LIST_COLUMNS = ["name", "driver", "coe", "master_count", "node_count", "status", "health_status"]


@click.group()
def cluster() -> None:
    """Container clusters: Swarm managers and workers."""


def _hosts(hosts: str | None, hosts_file: str | None) -> list[dict[str, Any]]:
    """``--hosts h1,h2`` / ``--hosts-file``: one existing host per node, managers first."""
    names: list[str] = []
    if hosts:
        names += [h.strip() for h in hosts.split(",") if h.strip()]
    if hosts_file:
        path = Path(hosts_file)
        if not path.is_file():
            raise UsageError(f"--hosts-file {hosts_file}: no such file")
        for line in path.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                names.append(line)
    return [{"ssh_host": h} for h in names]


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
@click.option(
    "--hosts", default=None, help="ssh driver: existing hosts, one per node, managers first."
)
@click.option("--hosts-file", default=None, help="ssh driver: a file with one host per line.")
@click.option(
    "--parallelism", type=int, default=None, help="At most this many infrastructure calls at once."
)
@click.option(
    "--dry-run", is_flag=True, help="Show what would be created, and its cost, without creating it."
)
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
    from flotte.clusters import Clusters
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
        "no_rollback",
        "no_provision",
        "lock_wait",
    }
    options = split_driver_options(kwargs, own)
    hosts = _hosts(kwargs["hosts"], kwargs["hosts_file"])
    if hosts:
        options["hosts_per_node"] = hosts
    if kwargs["parallelism"] is not None and kwargs["parallelism"] < 1:
        raise UsageError("--parallelism must be at least 1")
    progress = Progress(f"cluster {name}")
    svc = service(progress, parallelism=kwargs["parallelism"], lock_wait=kwargs["lock_wait"])
    clusters = Clusters(svc)
    spec = clusters.resolve(
        template=kwargs["template"],
        driver=kwargs["driver_name"],
        coe=kwargs["coe"],
        master_count=kwargs["master_count"],
        node_count=kwargs["node_count"],
        options=options,
        labels=parse_labels(kwargs["labels"]),
        engine=None,
        timeout_min=kwargs["timeout"],
    )
    if hosts and len(hosts) < spec["master_count"] + spec["node_count"]:
        raise UsageError(
            f"{len(hosts)} host(s) given for {spec['master_count']} manager(s) and "
            f"{spec['node_count']} worker(s): give one host per node"
        )
    if kwargs["dry_run"]:
        _dry_run(name, spec)
        return
    with progress.live():
        row = run(
            clusters.create(
                name, spec, rollback=not kwargs["no_rollback"], no_provision=kwargs["no_provision"]
            )
        )
    click.echo(f"Cluster {name}: {row.status} ({row.status_reason})")
    if not kwargs["no_provision"]:
        click.echo(f"Docker context: docker --context flotte-{name} node ls")


def _dry_run(name: str, spec: dict[str, Any]) -> None:
    from flotte.clusters import node_name
    from flotte.models import Role

    nodes = [node_name(name, Role.MANAGER, i) for i in range(spec["master_count"])]
    nodes += [node_name(name, Role.WORKER, i) for i in range(spec["node_count"])]
    click.echo(f"Would create cluster {name} ({spec['coe']}, driver {spec['driver']}):")
    click.echo("  shared resources: what the driver needs (network, security group, key pair)")
    for n in nodes:
        click.echo(
            f"  node {n}: create, provision Docker engine (TLS), swarm {'init' if n == nodes[0] else 'join'}"
        )
    click.echo(f"  cost: {_estimate(spec, len(nodes))}")


def _estimate(spec: dict[str, Any], count: int) -> str:
    """The catalog's cost estimate for the nodes, when provider and flavor are known."""
    from flotte import drivers

    options = spec.get("options", {})
    provider = (
        spec.get("labels", {}).get("provider")
        or drivers.get(spec["driver"]).capabilities.catalog_provider
    )
    if not provider:
        return "unknown: pass --labels provider=NAME (see 'flotte providers list') to estimate"
    flavor = next(
        (
            v
            for k, v in options.items()
            if k.endswith(("flavor_name", "flavor_id", "instance_type")) and v
        ),
        spec.get("template_fields", {}).get("flavor_id"),
    )
    try:
        from flotte.catalog import estimate

        # Without a flavor, the smallest offer that holds a node prices it.
        est: Any = estimate(provider, flavor, 0 if flavor else 1, 0.0 if flavor else 1.0, count)
    except Exception as err:  # the estimate is advice; it never blocks a dry run
        return f"unknown ({err})"
    return str(est)


def _cluster_view(svc: Any, name: str, with_health: bool) -> dict[str, Any]:
    from flotte.clusters import Clusters

    row = svc.store.cluster(name)
    nodes = svc.store.machines(cluster=name)
    health, swarm_nodes = run(Clusters(svc).health(name)) if with_health else ("UNKNOWN", [])
    masters = [n for n in nodes if n.role == "manager"]
    workers = [n for n in nodes if n.role == "worker"]
    api = next(
        (
            f"tcp://{m.endpoint['host']}:{m.endpoint.get('docker_port', 2376)}"
            for m in masters
            if m.endpoint
        ),
        "",
    )
    return {
        "name": row.name,
        "uuid": row.uuid,
        "driver": row.driver,
        "coe": row.coe,
        "cluster_template": row.template,
        "status": row.status,
        "status_reason": row.status_reason,
        "health_status": health,
        "master_count": row.master_count,
        "node_count": row.node_count,
        "api_address": api,
        "master_addresses": [(m.record.get("addresses") or [""])[0] for m in masters],
        "node_addresses": [(w.record.get("addresses") or [""])[0] for w in workers],
        "nodes": [
            {
                "name": n.name,
                "role": n.role,
                "address": (n.record.get("addresses") or [""])[0],
                "status": n.status,
            }
            for n in nodes
        ],
        "swarm_nodes": swarm_nodes,
        "labels": row.spec.get("labels", {}),
        "create_timeout": row.spec.get("timeout"),
        "created_at": row.created_at.isoformat() if row.created_at else None,
        "updated_at": row.updated_at.isoformat() if row.updated_at else None,
    }


@cluster.command("list")
@click.option("--health", is_flag=True, help="Ask each cluster's manager for its nodes' health.")
@format_option()
def list_(health: bool, fmt: str) -> None:
    """List clusters."""
    svc = service()
    rows = [_cluster_view(svc, c.name, health) for c in svc.store.clusters()]
    render_rows(rows, LIST_COLUMNS, fmt)


@cluster.command()
@click.argument("name")
@format_option()
def show(name: str, fmt: str) -> None:
    """Everything about one cluster, with its nodes and health."""
    svc = service()
    render_record(_cluster_view(svc, name, True), fmt)


@cluster.command()
@click.argument("names", nargs=-1, required=True)
@wait_option
def delete(names: tuple[str, ...], lock_wait: float) -> None:
    """Delete clusters and everything flotte made for them."""
    from flotte.clusters import Clusters

    progress = Progress("delete")
    svc = service(progress, lock_wait=lock_wait)
    for name in names:
        svc.store.cluster(name)
    clusters = Clusters(svc)

    for_each(names, clusters.delete, lambda n: f"Deleted cluster {n}", progress)


@cluster.command()
@click.argument("name")
@click.argument("count", type=int, required=False)
@click.option("--node-count", type=int, default=None, help="Workers wanted.")
@click.option(
    "--nodes-to-remove", default=None, help="Comma-separated workers to remove when shrinking."
)
@click.option("--hosts", default=None, help="ssh driver: hosts for the new workers.")
@wait_option
def resize(
    name: str,
    count: int | None,
    node_count: int | None,
    nodes_to_remove: str | None,
    hosts: str | None,
    lock_wait: float,
) -> None:
    """Change the number of workers (drain, leave, remove and delete when shrinking)."""
    from flotte.clusters import Clusters

    wanted = node_count if node_count is not None else count
    if wanted is None:
        raise UsageError("give the number of workers: flotte cluster resize NAME --node-count N")
    progress = Progress(f"resize {name}")
    svc = service(progress, lock_wait=lock_wait)
    if hosts:
        row = svc.store.cluster(name)
        opts = dict(row.spec.get("options", {}))
        opts["extra_hosts"] = _hosts(hosts, None)
        svc.store.update_cluster(name, spec={**row.spec, "options": opts})
    remove = [n.strip() for n in (nodes_to_remove or "").split(",") if n.strip()]
    with progress.live():
        row = run(Clusters(svc).resize(name, wanted, remove))
    click.echo(
        f"Cluster {name}: {row.status}, {row.master_count} manager(s), {row.node_count} worker(s)"
    )


@cluster.command()
@click.argument("name")
@click.option("--dir", "directory", default=None, help="Write ca.pem, cert.pem and key.pem here.")
@click.option("--force", is_flag=True, help="Overwrite files in --dir.")
@click.option(
    "--shell", type=click.Choice(["bash", "zsh", "fish", "powershell", "cmd", "tcsh"]), default=None
)
def config(name: str, directory: str | None, force: bool, shell: str | None) -> None:
    """TLS material and environment for the cluster's Docker API (like Magnum's)."""
    from flotte.cli.machine import _shell_hint, default_shell, format_env
    from flotte.config import write_public, write_secret

    svc = service()
    env = svc.env(name)
    if directory:
        target = Path(directory)
        files = {
            "ca.pem": svc.ca.ca_path,
            "cert.pem": svc.ca.client.cert,
            "key.pem": svc.ca.client.key,
        }
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
    click.echo(format_env(env, shell, False, _shell_hint(shell, f"flotte cluster config {name}")))
    click.echo(f"# or: docker --context flotte-{name} ...")


@cluster.command("env")
@click.argument("name")
@click.option(
    "--shell", type=click.Choice(["bash", "zsh", "fish", "powershell", "cmd", "tcsh"]), default=None
)
@click.option("-u", "--unset", is_flag=True)
def env_(name: str, shell: str | None, unset: bool) -> None:
    """Shell commands that point the docker CLI at the cluster's manager."""
    from flotte.cli.machine import _shell_hint, default_shell, format_env

    svc = service()
    shell = shell or default_shell()
    values = svc.env(name)
    click.echo(format_env(values, shell, unset, _shell_hint(shell, f"flotte cluster env {name}")))


@cluster.command("load-image")
@click.argument("name")
@click.argument("images", nargs=-1, required=True)
def load_image(name: str, images: tuple[str, ...]) -> None:
    """Copy local images to every node of a cluster (no registry needed)."""
    from flotte.images import load_images

    svc = service()
    svc.store.cluster(name)
    started = time.monotonic()
    count = run(load_images(svc, name, list(images)))
    click.echo(
        f"Loaded {', '.join(images)} on {count} node(s) in {time.monotonic() - started:.1f} s"
    )
