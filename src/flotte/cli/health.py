"""``flotte cluster check|heal|events`` and ``flotte watch``: health and self-healing."""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import sys
import time
from typing import TYPE_CHECKING, Any

import click

from flotte.cli.common import Progress, run, service, wait_option
from flotte.cli.output import format_option, render_rows
from flotte.cli.planview import plan_output, shower
from flotte.errors import UsageError

if TYPE_CHECKING:
    from flotte.engine.executor import Step
    from flotte.service.health_rules import ClusterHealth

NODE_COLUMNS = [
    "name", "nodegroup", "role", "health", "engine", "version", "swarm", "availability", "manager",
    "provider", "disk", "memory", "reason", "action",
]  # fmt: skip


def _rows(h: ClusterHealth) -> list[dict[str, Any]]:
    rows = []
    for n in h.nodes:
        row = n.view()
        p = n.pressure or {}
        row["disk"] = f"{p['disk_used_pct']:.0f}% used" if p else ""
        row["memory"] = f"{p['memory_available_pct']:.0f}% free" if p else ""
        row["reason"] = "" if n.reason == "ok" else n.reason
        row["version"] = n.engine_version or "-"  # "-": no engine, or it did not answer
        rows.append(row)
    return rows


def _summary(h: ClusterHealth) -> None:
    click.echo(
        f"Cluster {h.name}: {h.status} ({h.cluster_status}); checked in {h.seconds:.2f} s, "
        f"{h.calls.get('total', 0)} call(s) for {len(h.nodes)} node(s)"
    )
    q = h.quorum
    if q is not None and q.managers:
        risk = "quorum LOST" if q.can_lose < 0 else f"may lose {q.can_lose} more"
        leader = f", leader {q.leader}" if q.leader else ""
        click.echo(
            f"Managers: {q.reachable} of {q.managers} reachable, {q.needed} needed: {risk}{leader}"
        )
    for key, why in h.reason.items():
        if h.node(key) is None and why != "ok":
            click.echo(f"  {key}: {why}")


@click.command()
@click.argument("name")
@click.option("--no-pressure", is_flag=True, help="Do not read disk and memory over SSH.")
@format_option()
def check(name: str, no_pressure: bool, fmt: str) -> None:
    """Health of every node: engine, swarm, quorum, pressure, provider (exit 1 unless HEALTHY)."""
    from flotte.service import health
    from flotte.state.status import HEALTHY

    h = run(health.check(service(), name, pressure=not no_pressure))
    if fmt in ("json", "yaml"):
        _dump(h.view(), fmt)
    else:
        _summary(h)
        render_rows(_rows(h), NODE_COLUMNS, fmt)
    if h.status != HEALTHY:
        sys.exit(1)


def _dump(data: Any, fmt: str) -> None:
    if fmt == "json":
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        import yaml

        click.echo(
            yaml.safe_dump(json.loads(json.dumps(data, default=str)), sort_keys=False), nl=False
        )


@click.command()
@click.argument("name")
@plan_output
@wait_option
def heal(name: str, dry_run: bool, plan_format: str, lock_wait: float) -> None:
    """Replace dead nodes and restart stopped engines; the plan is printed first."""
    from flotte.service import health
    from flotte.state.status import HEALTHY

    progress = Progress(f"heal {name}")
    svc = service(progress, lock_wait=lock_wait)
    svc.clusters.get(name)
    before = run(health.check(svc, name))
    _summary(before)
    if before.status == HEALTHY:
        click.echo("Nothing to heal.")
        return
    with progress.live():
        result = run(
            health.heal(
                svc, name, health=before, dry_run=dry_run, on_plan=shower(dry_run, plan_format)
            )
        )
    d = result.decision
    for node, why in {**d.deferred, **d.given_up}.items():
        click.echo(f"  not now: {node}: {why}")
    left = [n for n in before.nodes if n.status == "unhealthy" and n.action in ("operator", "wait")]
    for n in left:
        click.echo(f"  left: {n.name}: {n.reason}")
    if dry_run:
        if not d.acts:
            click.echo("Nothing flotte can heal by itself.")
        return
    if not d.acts:
        click.echo("Nothing flotte can heal by itself.")
        sys.exit(1)
    after = result.after
    for old, new in result.replaced.items():
        click.echo(f"Replaced {old} by {new}")
    for node in d.restart:
        click.echo(f"Restarted the engine of {node}")
    if after is not None:
        click.echo(f"Cluster {name}: {after.status}")
        if after.status != HEALTHY:
            for key, why in after.reason.items():
                if why != "ok":
                    click.echo(f"  {key}: {why}")
            sys.exit(1)


@click.command()
@click.argument("name")
@click.option("-n", "--limit", type=int, default=50, show_default=True, help="Most recent rows.")
@format_option()
def events(name: str, limit: int, fmt: str) -> None:
    """What health checks found and healing did (the journal, newest last)."""
    svc = service()
    svc.clusters.get(name)
    entries = svc.store.journal_entries(f"cluster:{name}")
    rows = [
        {
            "at": e.at.strftime("%Y-%m-%d %H:%M:%S") if e.at else "",
            "operation": e.operation,
            "step": e.step,
            "phase": e.phase,
            "detail": e.detail,
        }
        for e in entries
        if e.operation in ("health", "heal")
    ][-limit:]
    render_rows(rows, ["at", "operation", "step", "phase", "detail"], fmt)


def register(group: click.Group) -> None:
    """Add check, heal and events to ``flotte cluster``."""
    for command in (check, heal, events):
        group.add_command(command)


# -- flotte watch ------------------------------------------------------------------------------
class _Lines(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        level = "" if record.levelno <= logging.INFO else f"{record.levelname.lower()}: "
        click.echo(f"{stamp} {level}{self.format(record)}", err=record.levelno > logging.INFO)


def _step_lines(step: Step, phase: str, detail: str = "") -> None:
    if phase in ("done", "failed", "undone"):
        extra = f": {detail}" if detail else ""
        logging.getLogger("flotte.health").info("  %s %s%s", step.label or step.name, phase, extra)


@click.command()
@click.argument("names", nargs=-1)
@click.option(
    "--interval", type=float, default=5.0, show_default=True, help="Seconds between rounds (>= 1)."
)
@click.option("--notify", default=None, help="POST each health event as JSON to this URL.")
@click.option("--once", is_flag=True, help="One round, then exit.")
@click.option("--rounds", type=int, default=None, help="Stop after this many rounds.")
def watch(
    names: tuple[str, ...], interval: float, notify: str | None, once: bool, rounds: int | None
) -> None:
    """Check clusters labelled auto_healing_enabled=true and heal them, every few seconds.

    NAMES limits the watch to these clusters (each must carry the label).
    """
    from flotte.service import health
    from flotte.service.health_events import check_url

    health.check_interval(interval)
    if rounds is not None and rounds < 1:
        raise UsageError(f"--rounds must be at least 1 (got {rounds})")
    if notify is not None:
        check_url(notify)
    from flotte.service import Service

    svc = Service(events=_step_lines)
    health.watched(svc, names)  # unknown or unlabelled clusters: one line, before anything
    log = logging.getLogger("flotte.health")
    handler = _Lines()
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        run(_loop(svc, list(names), interval, notify, 1 if once else rounds))
    except KeyboardInterrupt:
        click.echo("Stopped watching.", err=True)
    finally:
        log.removeHandler(handler)


async def _loop(
    svc: Any, names: list[str], interval: float, notify: str | None, rounds: int | None
) -> None:
    import asyncio  # here: the module registers commands that listings load

    from flotte.service import health

    stopping = asyncio.Event()
    # SIGTERM (a service manager stopping the watch) lets the round finish: a heal is
    # never cut in the middle of a replacement.
    with contextlib.suppress(NotImplementedError, RuntimeError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    await health.watch(
        svc, names=names, interval=interval, notify=notify, rounds=rounds, stop=stopping
    )
