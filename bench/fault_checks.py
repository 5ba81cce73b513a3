"""Invariants a fault campaign checks, with sqlite3 and the file system (not flotte)."""

from __future__ import annotations

import contextlib
import sqlite3
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Protocol


class Output(Protocol):
    rc: int | None
    out: str
    err: str


# After a kill, the re-run may find the work done: the user's answer, not a failure
# (the state is still checked against what was asked).
DONE_ALREADY = ("already exists", "not found")


def acceptable_rerun(res: Output) -> bool:
    lines = [ln for ln in res.err.splitlines() if ln.startswith("Error:")]
    return len(lines) == 1 and any(s in lines[0] for s in DONE_ALREADY)


def _connect(home: Path) -> sqlite3.Connection | None:
    db = home / "flotte.db"
    if not db.exists():
        return None
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)


def installation_of(home: Path) -> str:
    conn = _connect(home)
    if conn is None:
        return ""
    with contextlib.closing(conn):
        try:
            row = conn.execute("SELECT value FROM meta WHERE key='installation'").fetchone()
        except sqlite3.Error:
            return ""
    return str(row[0]) if row else ""


def integrity(home: Path) -> list[str]:
    conn = _connect(home)
    if conn is None:
        return []
    with contextlib.closing(conn):
        rows = [str(r[0]) for r in conn.execute("PRAGMA integrity_check").fetchall()]
    return [] if rows == ["ok"] else [f"integrity_check: {rows[:3]}"]


def stuck(home: Path) -> list[str]:
    """Clusters, node groups and machines whose status still says *_IN_PROGRESS."""
    conn = _connect(home)
    if conn is None:
        return []
    out = []
    with contextlib.closing(conn):
        for table in ("clusters", "nodegroups", "machines"):
            with contextlib.suppress(sqlite3.OperationalError):
                for name, status in conn.execute(
                    f"SELECT name, status FROM {table} WHERE status LIKE '%IN_PROGRESS'"
                ):
                    out.append(f"{table} {name}: {status}")
    return out


def _dump(home: Path) -> str:
    conn = _connect(home)
    if conn is None:
        return ""
    with contextlib.closing(conn):
        return "\n".join(conn.iterdump())


def secret_sightings(
    home: Path, secrets: Mapping[str, str], outputs: Iterable[Output]
) -> list[str]:
    """Where a planted secret shows: files (but 0600 ones under secrets/), dump, outputs."""
    found = []
    values = {name: value.encode() for name, value in secrets.items()}
    if home.exists():
        for path in sorted(home.rglob("*")):
            if not path.is_file() or path.is_symlink():
                continue
            mode = stat.S_IMODE(path.stat().st_mode)
            if mode == 0o600 and "secrets" in path.relative_to(home).parts:
                continue
            data = path.read_bytes()
            found += [
                f"{name} in {path.relative_to(home)} ({oct(mode)})"
                for name, value in values.items()
                if value in data
            ]
    dump = _dump(home)
    found += [f"{name} in the database dump" for name, value in secrets.items() if value in dump]
    for res in outputs:
        for stream, text in (("stdout", res.out), ("stderr", res.err)):
            found += [
                f"{name} in a command's {stream}"
                for name, value in secrets.items()
                if value in text
            ]
    return found


def tracebacks(results: Iterable[tuple[list[str], Output]]) -> list[str]:
    """Tracebacks printed by commands run without --debug (a user error is one line)."""
    out = []
    for argv, res in results:
        if "--debug" not in argv and "Traceback (most recent call last)" in res.err:
            tail = [ln for ln in res.err.strip().splitlines() if ln.strip()][-1:]
            out.append(f"{' '.join(argv[:3])}: {tail[0][:200] if tail else ''}")
    return out
