"""``flotte apply -f FILE``: create a cluster from a spec file, or converge it to it."""

from __future__ import annotations

from pathlib import Path

import click

from flotte.cli.common import Progress, run, service, wait_option
from flotte.cli.planview import PLAN_FORMATS, shower


@click.command()
@click.option("-f", "--filename", "path", required=True, help="The cluster spec file (YAML).")
@click.option("--dry-run", is_flag=True, help="Print the plan and its cost; change nothing.")
@click.option("-o", "--output", "plan_format", type=PLAN_FORMATS, default="table")
@wait_option
def apply(path: str, dry_run: bool, plan_format: str, lock_wait: float) -> None:
    """Create or converge the cluster a spec file describes; print what changed."""
    from flotte.service.apply import apply as apply_file

    progress = Progress(f"apply {path}")
    svc = service(progress, lock_wait=lock_wait)
    with progress.live():
        p = run(
            apply_file(
                svc.clusters, Path(path), dry_run=dry_run, on_plan=shower(dry_run, plan_format)
            )
        )
    if dry_run:
        return
    if p.empty:
        click.echo(f"Cluster {p.name}: no changes")
        return
    row = svc.clusters.get(p.name)
    click.echo(f"Cluster {p.name}: {row.status} ({row.status_reason})")
