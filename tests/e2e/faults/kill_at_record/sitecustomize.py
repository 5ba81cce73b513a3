"""Loaded by every Python process whose PYTHONPATH starts with this directory (the
interpreter imports ``sitecustomize`` at start): a ``flotte serve`` run by
``test_killed_serve_between_record_and_job.py``. While the file named by
``FLOTTE_TEST_KILL_ARM`` exists, the process SIGKILLs itself right after committing the
first transaction that wrote a ``*_IN_PROGRESS`` status into the ``clusters`` table: the
instant the API has recorded a change and not yet answered (the file is removed first,
so the restarted process runs normally)."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

_ARM = os.environ.get("FLOTTE_TEST_KILL_ARM")


def _values(params: Any) -> list[Any]:
    if isinstance(params, dict):
        return list(params.values())
    if isinstance(params, list | tuple):
        return [v for p in params for v in _values(p)]
    return [params]


def _install(arm: Path) -> None:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session

    marked = threading.local()

    def statement(conn: Any, cursor: Any, sql: str, params: Any, *args: Any) -> None:
        head = " ".join(sql.split()[:3]).upper()
        if not head.startswith(("UPDATE CLUSTERS", "INSERT INTO CLUSTERS")):
            return
        if any(str(v).endswith("_IN_PROGRESS") for v in _values(params)) and arm.exists():
            marked.on = True

    def committed(session: Session) -> None:
        if getattr(marked, "on", False):
            arm.unlink(missing_ok=True)
            os.kill(os.getpid(), signal.SIGKILL)

    def rolled_back(session: Session) -> None:
        marked.on = False

    event.listen(Engine, "before_cursor_execute", statement)
    event.listen(Session, "after_commit", committed)
    event.listen(Session, "after_rollback", rolled_back)


if _ARM:
    _install(Path(_ARM))
