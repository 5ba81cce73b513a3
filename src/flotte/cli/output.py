"""Render rows as a table, JSON or YAML, like openstackclient's ``-f``."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

FORMATS = ("table", "json", "yaml", "value")


def format_option(default: str = "table") -> Callable[[F], F]:
    """The ``-f/--format`` option shared by every listing command."""
    return click.option(
        "-f",
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        default=default,
        show_default=True,
        help="Output format.",
    )


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


PIPED_WIDTH = 4000  # piped output: a virtual terminal this wide, so no cell is cut short


def _print_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], fold_last: bool = False
) -> None:
    import sys

    if not sys.stdout.isatty():
        # Piped output is read by scripts and pagers: never cut a cell short, and drop
        # the padding a very wide virtual terminal would add. The same lines as rich's,
        # made without it where they are only padding (plain_table).
        from flotte.cli import plain_table

        found = plain_table.lines(headers, rows, PIPED_WIDTH, fold_last)
        if found is not None:
            click.echo("\n".join(found))
            return
    table = _rich_table(headers, rows, fold_last)
    from rich.console import Console

    if sys.stdout.isatty():
        Console().print(table)
        return
    console = Console(width=PIPED_WIDTH, file=io.StringIO(), color_system=None)
    with console.capture() as capture:
        console.print(table)
    for line in capture.get().splitlines():
        click.echo(line.rstrip())


def _rich_table(headers: Sequence[str], rows: Sequence[Sequence[str]], fold_last: bool) -> Any:
    from rich.table import Table
    from rich.text import Text  # cells are text, never markup: "[x]" must survive

    table = Table(box=None, pad_edge=False, header_style="bold")
    for i, header in enumerate(headers):
        if fold_last and i == len(headers) - 1:
            table.add_column(header, overflow="fold")  # a long value wraps, never cut
        else:
            table.add_column(header)
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    return table


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        sep = "\n" if any(isinstance(v, dict) for v in value) else ", "
        return sep.join(_cell(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={_cell(v)}" for k, v in value.items())
    return str(value)


def render_rows(rows: Sequence[dict[str, Any]], columns: Sequence[str], fmt: str) -> None:
    """Print a list of records; ``columns`` chooses and orders the table's columns."""
    if fmt == "json":
        click.echo(json.dumps([_plain(r) for r in rows], indent=2))
        return
    if fmt == "yaml":
        import yaml

        click.echo(yaml.safe_dump([_plain(r) for r in rows], sort_keys=False), nl=False)
        return
    if fmt == "value":
        for row in rows:
            click.echo(" ".join(_cell(row.get(c)) for c in columns))
        return
    headers = [col.upper().replace("_", " ") for col in columns]
    _print_table(headers, [[_cell(row.get(c)) for c in columns] for row in rows])


def render_record(record: dict[str, Any], fmt: str) -> None:
    """Print one record as a two-column Field/Value table, or JSON/YAML."""
    if fmt == "json":
        click.echo(json.dumps(_plain(record), indent=2))
        return
    if fmt == "yaml":
        import yaml

        click.echo(yaml.safe_dump(_plain(record), sort_keys=False), nl=False)
        return
    if fmt == "value":
        for value in record.values():
            click.echo(_cell(value))
        return
    rows = [[key, _cell(value)] for key, value in record.items()]
    _print_table(["FIELD", "VALUE"], rows, fold_last=True)
