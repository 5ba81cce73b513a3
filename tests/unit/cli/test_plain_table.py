"""Piped tables made without rich are rich's lines exactly, or left to rich."""

from __future__ import annotations

import io

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from rich.table import Table
from rich.text import Text

from flotte.cli import plain_table

CELLS = st.text(alphabet="ab c-=[]/:,x\n", max_size=12)


def rich_lines(
    headers: list[str], rows: list[list[str]], fold_last: bool, width: int = 4000
) -> list[str]:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for i, header in enumerate(headers):
        if fold_last and i == len(headers) - 1:
            table.add_column(header, overflow="fold")
        else:
            table.add_column(header)
    for row in rows:
        table.add_row(*(Text(c) for c in row))
    console = Console(width=width, file=io.StringIO(), color_system=None)
    with console.capture() as capture:
        console.print(table)
    return [line.rstrip() for line in capture.get().splitlines()]


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=1, max_value=5).flatmap(
        lambda n: st.tuples(
            st.lists(st.text(alphabet="ABC D_", min_size=1, max_size=6), min_size=n, max_size=n),
            st.lists(st.lists(CELLS, min_size=n, max_size=n), max_size=5),
        )
    ),
    st.booleans(),
)
def test_same_lines_as_rich(table: tuple[list[str], list[list[str]]], fold_last: bool) -> None:
    headers, rows = table
    assert plain_table.lines(headers, rows, 4000) == rich_lines(headers, rows, fold_last)


def test_left_to_rich_where_it_does_more_than_pad() -> None:
    assert plain_table.lines(["A"], [["é"]], 4000) is None  # width is not len()
    assert plain_table.lines(["A"], [["\t"]], 4000) is None  # rich expands tabs
    assert plain_table.lines(["A", "B"], [["x" * 30, "y"]], 20) is None  # rich would wrap


LONG = st.text(alphabet="ab c-=,x\n", max_size=60)


@settings(max_examples=500, deadline=None)
@given(
    st.integers(min_value=2, max_value=4).flatmap(
        lambda n: st.tuples(
            st.lists(st.text(alphabet="ABC D_", min_size=1, max_size=6), min_size=n, max_size=n),
            st.lists(st.tuples(st.lists(CELLS, min_size=n - 1, max_size=n - 1), LONG), max_size=5),
        )
    ),
    st.integers(min_value=8, max_value=60),
)
def test_a_folded_last_column_wraps_as_rich_does(
    table: tuple[list[str], list[tuple[list[str], str]]], width: int
) -> None:
    """A record's VALUE column wider than the console: rich wraps it at words and cuts
    words wider than the column; where rich would shrink other columns, it is rich's."""
    headers, parts = table
    rows = [[*cells, last] for cells, last in parts]
    found = plain_table.lines(headers, rows, width, fold_last=True)
    if found is not None:
        assert found == rich_lines(headers, rows, True, width)
