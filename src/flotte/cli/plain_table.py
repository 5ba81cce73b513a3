"""Piped tables without rich: the same lines, in a fraction of the time.

Listings read by scripts and pagers are printed by rich as a borderless table
(``Table(box=None, pad_edge=False)``) on a wide colourless console, each line
right-stripped. That layout is only padding: every cell left-justified to its column's
widest line, columns two spaces apart, a multi-line cell making its row as tall. Doing
it here skips importing rich (~0.1 s of CPU) and its layout (about half of ``machine
ls``'s profile over 2,000 nodes). Where rich would do more than pad (wide or control
characters, a table wider than the console, which it would wrap), ``lines`` returns
None and the caller asks rich.
"""

from __future__ import annotations

from collections.abc import Sequence

GAP = "  "  # rich's padding (0, 1): one space each side of a column boundary


def _plain_text(value: str) -> bool:
    """Characters one cell wide each, so ``len`` is rich's width (control ones aside)."""
    if not value.isascii():
        return False
    # isprintable(): every character in " ".."~", the common case, checked in C
    return value.isprintable() or all(c >= " " or c == "\n" for c in value)


def lines(headers: Sequence[str], rows: Sequence[Sequence[str]], width: int) -> list[str] | None:
    """The lines rich prints for this table on a console ``width`` columns wide, or None."""
    table = [[h.split("\n") for h in headers]]  # each cell as its lines
    for row in rows:
        if not all(_plain_text(cell) for cell in row):
            return None
        table.append([cell.split("\n") for cell in row])
    if not all(_plain_text(h) for h in headers):
        return None
    widths = [max(len(line) for cells in table for line in cells[i]) for i in range(len(headers))]
    if sum(widths) + len(GAP) * (len(widths) - 1) > width:
        return None  # rich would wrap or shrink columns
    out = []
    for cells in table:
        for at in range(max(len(cell) for cell in cells)):
            parts = [
                (cell[at] if at < len(cell) else "").ljust(w)
                for cell, w in zip(cells, widths, strict=True)
            ]
            out.append(GAP.join(parts).rstrip())
    return out
