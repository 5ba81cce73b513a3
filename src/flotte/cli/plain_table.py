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

import itertools
import re
from collections.abc import Sequence

GAP = "  "  # rich's padding (0, 1): one space each side of a column boundary
_WORD = re.compile(r"\s*\S+\s*")  # rich's words: leading and trailing spaces included


def _plain_text(value: str) -> bool:
    """Characters one cell wide each, so ``len`` is rich's width (control ones aside)."""
    if not value.isascii():
        return False
    # isprintable(): every character in " ".."~", the common case, checked in C
    return value.isprintable() or all(c >= " " or c == "\n" for c in value)


def _fold(text: str, width: int) -> list[str]:
    """One line of a cell as rich wraps it with ``overflow="fold"`` (``rich._wrap``):
    words (with the spaces after them) go on while they fit; a word wider than the
    column is cut in pieces; each line loses its trailing spaces."""
    breaks: list[int] = []
    offset = 0
    for word in _WORD.finditer(text):
        start, length = word.start(), len(word.group().rstrip())
        if width - offset >= length:
            offset += len(word.group())
        elif length > width:
            pieces = [word.group()[i : i + width] for i in range(0, len(word.group()), width)]
            for piece in pieces[:-1]:
                if start:
                    breaks.append(start)
                start += len(piece)
            if start:
                breaks.append(start)
            offset = len(pieces[-1])
        elif offset and start:
            breaks.append(start)
            offset = len(word.group())
    bounds = [0, *breaks, len(text)]
    return [text[a:b].rstrip() for a, b in itertools.pairwise(bounds)]


def _last_width(widths: list[int], width: int) -> int | None:
    """The width rich gives the last column of a table too wide for ``width`` when that
    column is the one to shrink (``Table._collapse_widths``), or None when rich would
    shrink others too. Rich's widths count the padding: one space each side of a gap."""
    if len(widths) < 2:
        return None
    padded = [w + (1 if i in (0, len(widths) - 1) else 2) for i, w in enumerate(widths)]
    target = width - sum(padded[:-1])
    if padded[-1] <= max(padded[:-1]) or target < max(padded[:-1]) or target < 2:
        return None
    return target - 1


def lines(
    headers: Sequence[str], rows: Sequence[Sequence[str]], width: int, fold_last: bool = False
) -> list[str] | None:
    """The lines rich prints for this table on a console ``width`` columns wide, or None.
    ``fold_last``: the last column wraps to fit (``overflow="fold"``), as a record's
    VALUE column does."""
    table = [[h.split("\n") for h in headers]]  # each cell as its lines
    for row in rows:
        if not all(_plain_text(cell) for cell in row):
            return None
        table.append([cell.split("\n") for cell in row])
    if not all(_plain_text(h) for h in headers):
        return None
    widths = [max(len(line) for cells in table for line in cells[i]) for i in range(len(headers))]
    if sum(widths) + len(GAP) * (len(widths) - 1) > width:
        last = _last_width(widths, width) if fold_last else None
        if last is None:
            return None  # rich would wrap or shrink columns
        widths[-1] = last
        for cells in table:
            cells[-1] = [part for line in cells[-1] for part in _fold(line, last)]
        if len(table[0][-1]) > 1:
            return None  # rich aligns a tall header row at its bottom: rare, left to rich
    out = []
    for cells in table:
        for at in range(max(len(cell) for cell in cells)):
            parts = [
                (cell[at] if at < len(cell) else "").ljust(w)
                for cell, w in zip(cells, widths, strict=True)
            ]
            out.append(GAP.join(parts).rstrip())
    return out
