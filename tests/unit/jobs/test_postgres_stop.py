"""Stopping the PostgreSQL job backend while its loops wait for a free connection of
procrastinate's pool (psycopg_pool), on a real PostgreSQL server on loopback."""

from __future__ import annotations

import asyncio

import pytest
from psycopg_pool import PoolTimeout

from flotte.jobs.postgres import PostgresJobs
from flotte.service import Service


@pytest.mark.timeout(300)
def test_stop_ends_even_as_a_connection_frees_up_for_a_waiting_loop(
    pg_svc: Service, pg_url: str
) -> None:
    """Every connection of the pool is taken, so the stalled-jobs loop and the worker's
    own loops wait for one; the connections come back just as ``stop()`` cancels them,
    at each interleaving in turn. Python 3.11's ``asyncio.wait_for`` (psycopg_pool's
    wait for a connection) dropped a cancel that landed as the wait ended, and the
    stalled-jobs loop ran on: a test hung 20 min in CI. Each stop must end, promptly."""

    async def scenario() -> list[float]:
        took = []
        for i in range(16):
            jobs = PostgresJobs(pg_url, pg_svc, concurrency=1, heartbeat=0.01, grace=1.0)
            await jobs.start()
            await asyncio.sleep(0.1)  # the worker is registered, its loops turning
            pool = jobs.app.connector.pool  # type: ignore[attr-defined]
            held = []
            while True:
                try:
                    held.append(await pool.getconn(timeout=0.2))
                except PoolTimeout:
                    break
            await asyncio.sleep(0.05)  # each loop is now waiting for a connection
            for conn in held:
                await pool.putconn(conn)
            for _ in range(i):
                await asyncio.sleep(0)
            started = asyncio.get_running_loop().time()
            async with asyncio.timeout(60):
                await jobs.stop()
            took.append(asyncio.get_running_loop().time() - started)
        return took

    took = asyncio.run(scenario())
    assert len(took) == 16 and max(took) < 5, took  # a lost cancel costs a second
