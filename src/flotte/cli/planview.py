"""Printing a plan: one line per node with its steps, shared resources, and the cost.

The CLI prints the very ``Plan`` the executor then runs (the use cases hand it over
through ``on_plan`` before running it), so what is shown is what happens.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from flotte.errors import UsageError

if TYPE_CHECKING:  # the planner (and the pydantic specs) load when a plan is printed:
    # commands that only declare --dry-run, as ``cluster show`` beside them, do not
    from flotte.planner import Plan

PLAN_FORMATS = click.Choice(["table", "json", "yaml"])

# by ``Action`` value (a StrEnum: its members look these up)
_WORDS = {
    "create": "create",
    "provision": "engine (TLS)",
    "swarm-init": "swarm init",
    "swarm-join": "swarm join",
    "restart-engine": "restart engine",
    "remove": "remove",
}


def plan_dict(p: Plan) -> dict[str, Any]:
    from flotte.service.pricing import group_costs, total

    out = p.to_dict()
    if p.desired is not None:
        rows = group_costs(p.desired, p)
        out["cost"] = {"nodegroups": rows, "eur_day": total(rows)}
    return out


def render_plan(p: Plan, fmt: str = "table") -> None:
    from flotte.planner import Action

    if fmt == "json":
        click.echo(json.dumps(plan_dict(p), indent=2, default=str))
        return
    if fmt == "yaml":
        import yaml

        click.echo(
            yaml.safe_dump(json.loads(json.dumps(plan_dict(p), default=str)), sort_keys=False),
            nl=False,
        )
        return
    counts = p.summary()
    what = ", ".join(f"{v} to {k}" for k, v in counts.items() if v) or "nothing to do"
    click.echo(f"Plan for {p.kind} {p.name} ({p.operation}): {what}")
    nodes: dict[str, list[str]] = {}
    info: dict[str, str] = {}
    for s in p.steps:
        if s.node and s.action in _WORDS:
            words = _WORDS[s.action]
            if s.action == Action.CREATE and s.note == "resume":
                words = "adopt/resume create"
            nodes.setdefault(s.node, []).append(words)
            if s.node not in info:
                role = s.role.value if s.role else ""
                where = f" on {s.host}" if s.host else ""
                why = f" [{s.note}]" if s.note and s.note not in ("new",) else ""
                info[s.node] = f"{s.group or '':<16} {role:<8} {s.driver or ''}{where}{why}"
    for node, steps in nodes.items():
        click.echo(f"  {node:<28} {info[node]}: {', '.join(steps)}")
    for s in p.steps:
        if s.action == Action.PREPARE:
            click.echo(f"  shared: {s.driver} network, security group, key (made or found)")
        elif s.action == Action.RELEASE:
            click.echo(f"  shared: {s.driver} resources deleted, leftovers swept by owner marks")
        elif s.action == Action.READY:
            click.echo("  then: wait until the swarm lists every new node Ready")
    if p.desired is not None and p.operation != "delete":
        from flotte.service.pricing import group_costs, total

        rows = group_costs(p.desired, p)
        for row in rows:
            price = f"{row['eur_day']:.2f} EUR/day" if row["eur_day"] is not None else ""
            click.echo(
                f"  cost {row['nodegroup']}: {row['nodes']} node(s) {price} {row['note']}".rstrip()
            )
        over = p.desired.overflow
        if over is not None:
            fill = ", ".join(f"{g} {p.desired.group(g).node_count}" for g in over.nodegroups)
            budget = f", budget {over.max_eur_day:g} EUR/day" if over.max_eur_day else ""
            click.echo(f"  overflow (filled in this order): {fill}{budget}")
        day = total(rows)
        if day is not None:
            click.echo(f"  cost in all: {day:.2f} EUR/day, {day * 30:.2f} EUR/month")


def hosts_from(hosts: str | None, hosts_file: str | None) -> list[str]:
    """``--hosts h1,h2`` / ``--hosts-file``: existing hosts, one per node, managers first."""
    names: list[str] = []
    if hosts:
        names += [h.strip() for h in hosts.split(",") if h.strip()]
    if hosts_file:
        path = Path(hosts_file)
        if not path.is_file():
            raise UsageError(f"--hosts-file {hosts_file}: no such file")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise UsageError(f"--hosts-file {hosts_file}: not a text file ({err})") from None
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                names.append(line)
    return names


def plan_output(f: Any) -> Any:
    """``--dry-run`` and ``-o``: show the plan (and run it unless dry)."""
    f = click.option(
        "-o",
        "--output",
        "plan_format",
        type=PLAN_FORMATS,
        default="table",
        help="How to print the plan.",
    )(f)
    return click.option(
        "--dry-run", is_flag=True, help="Print the plan and its cost; change nothing."
    )(f)


def shower(dry_run: bool, fmt: str) -> Any:
    """What ``on_plan`` does: print the plan (on a dry run in the chosen format)."""

    def show(p: Any) -> None:
        if dry_run:
            render_plan(p, fmt)
        elif not p.empty:
            render_plan(p, "table")

    return show
