"""Run one ``flotte`` command and count what it wrote to its SQLite state database.

    python bench/scale_child.py OUT.json flotte-args...

bench/scale.py starts this as the child whose CPU time and peak memory it measures
(``os.wait4``). Every ``sqlite3`` connection the command opens is made with a counting
connection class: ``total_changes`` (rows inserted, updated or deleted), the write
statements and the commits, summed over connections and written to OUT.json at exit.
The measuring is SQLite's own counters; flotte's code is not changed.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import sqlite3
import sqlite3.dbapi2
import sys
from typing import Any

_open: list[CountingConnection] = []
_totals = {"rows_written": 0, "write_statements": 0, "commits": 0, "connections": 0}
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


class CountingConnection(sqlite3.Connection):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._counted = False
        _totals["connections"] += 1
        self.set_trace_callback(self._trace)
        _open.append(self)

    def _trace(self, statement: str) -> None:
        head = statement.lstrip()[:8].upper()
        if head.startswith(_WRITES):
            _totals["write_statements"] += 1
        elif head.startswith(("COMMIT", "END")):
            _totals["commits"] += 1

    def settle(self) -> None:
        if not self._counted:
            self._counted = True
            # A connection closed without going through close() has no counter left.
            with contextlib.suppress(sqlite3.ProgrammingError):
                _totals["rows_written"] += self.total_changes

    def close(self) -> None:
        self.settle()
        super().close()


_connect = sqlite3.connect


def _counting_connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
    kwargs.setdefault("factory", CountingConnection)
    conn: sqlite3.Connection = _connect(*args, **kwargs)
    return conn


def main() -> None:
    out, argv = sys.argv[1], sys.argv[2:]

    def dump() -> None:
        for conn in _open:
            conn.settle()
        with open(out, "w") as f:
            json.dump(_totals, f)

    atexit.register(dump)
    # SQLAlchemy calls sqlite3.dbapi2.connect, flotte's read-only path sqlite3.connect.
    sqlite3.connect = _counting_connect  # type: ignore[assignment]
    sqlite3.dbapi2.connect = _counting_connect  # type: ignore[assignment]
    from flotte.cli.main import main as flotte_main

    sys.argv = ["flotte", *argv]
    flotte_main(argv)


if __name__ == "__main__":
    main()
