"""Cluster locks on PostgreSQL: advisory locks that hold across processes (and so across
machines) and go away with their holder, even one killed with SIGKILL."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import create_engine

from flotte.errors import Busy
from flotte.state.pglock import pg_locked

HOLDER = """
import sys, time
from sqlalchemy import create_engine
from flotte.state.pglock import pg_locked
with pg_locked(create_engine(sys.argv[1]), "cluster", "x"):
    print("held", flush=True)
    time.sleep(600)
"""


def test_a_held_lock_says_busy_then_is_free_again(pg_url: str) -> None:
    engine = create_engine(pg_url)
    with pg_locked(engine, "cluster", "x"):
        with (
            pytest.raises(Busy, match=r"cluster 'x' is busy: another flotte process"),
            pg_locked(engine, "cluster", "x", wait=0.3),
        ):
            pass
        with pg_locked(engine, "cluster", "y"):  # another cluster is another lock
            pass
    with pg_locked(engine, "cluster", "x"):
        pass
    engine.dispose()


def test_a_killed_holders_lock_is_released_by_postgresql(pg_url: str) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, pg_url], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        engine = create_engine(pg_url)
        with pytest.raises(Busy), pg_locked(engine, "cluster", "x", wait=0.2):
            pass
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        started = time.monotonic()
        with pg_locked(engine, "cluster", "x", wait=10):
            waited = time.monotonic() - started
        assert waited < 5  # no stale lock: its connection died with the process
        engine.dispose()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
