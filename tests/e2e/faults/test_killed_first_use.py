"""A command killed while it makes a new home's schema leaves nothing half made.

Found by the fault campaign (ssh, seed 4188): a ``machine create`` SIGKILLed 1.1 s after
it started, on a new FLOTTE_HOME, left tables without a schema revision, and every later
command failed with "table meta already exists" (a traceback). The kill here lands at
an exact point: the child SIGKILLs itself right after the first CREATE TABLE.
"""

from __future__ import annotations

import os
import signal
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from flotte.config import paths
from flotte.state.store import Store


def _first_use_killed_after_first_table(home: Path) -> None:
    """In a forked child: start first use, die by SIGKILL after the first CREATE TABLE."""

    def after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("CREATE TABLE"):
            os.kill(os.getpid(), signal.SIGKILL)

    event.listen(Engine, "after_cursor_execute", after)
    Store.at(paths(home).ensure().database)
    os._exit(0)  # not reached when the kill landed


def test_first_use_killed_midway_then_the_next_command_works(tmp_path: Path) -> None:
    home = tmp_path / "home"
    pid = os.fork()
    if pid == 0:
        try:
            _first_use_killed_after_first_table(home)
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == -signal.SIGKILL
    db = paths(home).database
    with sqlite3.connect(db) as conn:  # what the kill left, seen by sqlite3 itself
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == set(), f"a killed first use left tables {tables}"
    store = Store.at(db)  # the next command
    assert store.installation
