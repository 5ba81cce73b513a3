"""One lock per cluster or machine across machines: PostgreSQL advisory locks.

When several ``flotte serve`` processes on several machines share one PostgreSQL
database, a lock file on one machine means nothing to the others. A session-level
advisory lock does: it is held by one database connection, and PostgreSQL drops it
when that connection ends, so a worker killed with SIGKILL (its socket closed by the
kernel) never leaves a stale lock, just like ``flock``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from flotte.errors import Busy

# hashtextextended gives the 64-bit key PostgreSQL's advisory locks take; the prefix
# keeps flotte's keys apart from any other user of advisory locks in the database.
_TRY = text("SELECT pg_try_advisory_lock(hashtextextended(:key, 0))")
_UNLOCK = text("SELECT pg_advisory_unlock(hashtextextended(:key, 0))")
_HOLDER = text(
    "SELECT a.client_addr::text, a.application_name, a.pid FROM pg_locks l "
    "JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.granted "
    "AND (l.classid::bigint << 32 | l.objid::bigint) = hashtextextended(:key, 0) LIMIT 1"
)


def lock_key(kind: str, name: str) -> str:
    return f"flotte:{kind}:{name}"


@contextmanager
def pg_locked(engine: Engine, kind: str, name: str, *, wait: float = 0.0) -> Iterator[None]:
    """Hold the advisory lock on ``kind``/``name``; wait up to ``wait`` s, then raise Busy."""
    key = lock_key(kind, name)
    deadline = time.monotonic() + wait
    conn = engine.connect()
    try:
        while not conn.execute(_TRY, {"key": key}).scalar():
            conn.rollback()  # end the implicit transaction between tries
            if time.monotonic() >= deadline:
                raise Busy(
                    f"{kind} {name!r} is busy: another flotte process "
                    f"({_holder(conn, key)}) is working on it",
                    hint="wait for it to finish, or pass --wait SECONDS",
                )
            time.sleep(0.1)
        conn.commit()  # a session lock outlives transactions: keep none open meanwhile
        try:
            yield
        finally:
            try:
                conn.execute(_UNLOCK, {"key": key})
                conn.commit()
            except Exception:
                # The connection broke: its session, and so the lock, is gone; never
                # hand a connection that may still hold it back to the pool.
                conn.invalidate()
                raise
    finally:
        conn.close()


def _holder(conn: Connection, key: str) -> str:
    try:
        row = conn.execute(_HOLDER, {"key": key}).first()
    except Exception:
        return "unknown"
    if row is None:
        return "just finished"
    addr, app, pid = row
    return f"database backend pid {pid}{f' from {addr}' if addr else ''}{f', {app}' if app else ''}"
