"""Writes asked for in the same moment share one transaction; each writer resumes only
once its write is committed, and a failed write takes no other with it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import event

from fixtures.node_rows import worker
from flotte.errors import AlreadyExists, NotFound
from flotte.specs import ClusterSpec, default_groups
from flotte.state.node_rows import add_node, set_node
from flotte.state.store import Store


def _node(store: Store, name: str, cluster: str = "c"):  # type: ignore[no-untyped-def]
    return store.soon(add_node, name, **worker(cluster, "CREATING"))


def _store(url: str) -> Store:
    """A store with clusters ``c`` and ``other`` recorded (their nodes' foreign key)."""
    store = Store(url)
    for name in ("c", "other"):
        spec = ClusterSpec(name=name, driver="fake", nodegroups=default_groups(1, 0))
        store.add_cluster(spec, "CREATE_IN_PROGRESS")
    return store


def _commits(store: Store) -> list[int]:
    counted: list[int] = []
    event.listen(store.engine, "commit", lambda conn: counted.append(1))
    return counted


def test_writes_of_one_moment_share_a_commit(database_url: str) -> None:
    store = _store(database_url)
    commits = _commits(store)

    async def main() -> None:
        await asyncio.gather(*(_node(store, f"c-node-{i}") for i in range(200)))
        await asyncio.gather(
            *(store.soon(set_node, f"c-node-{i}", status="READY") for i in range(200))
        )

    asyncio.run(main())
    assert len(commits) == 2  # one per moment, not one per write (400)
    other = Store(database_url)  # another connection sees every write committed
    assert [n.status for n in other.nodes(cluster="c")] == ["READY"] * 200
    other.close()
    store.close()


def test_a_group_reads_its_rows_in_one_query(database_url: str) -> None:
    store = _store(database_url)
    selects: list[str] = []

    def count(conn, cursor, statement, *rest) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT"):
            selects.append(statement)

    event.listen(store.engine, "before_cursor_execute", count)

    async def main() -> None:
        await asyncio.gather(*(_node(store, f"c-node-{i}") for i in range(600)))
        await asyncio.gather(
            *(store.soon(set_node, f"c-node-{i}", status="READY") for i in range(600))
        )

    asyncio.run(main())
    assert len(selects) == 4  # 600 rows, 500 per query, twice: not one per write (1,200)
    assert {n.status for n in store.nodes(cluster="c")} == {"READY"}
    store.close()


def test_the_same_node_added_twice_in_one_group_is_one_row(database_url: str) -> None:
    store = _store(database_url)

    async def main() -> list[Any]:
        return await asyncio.gather(
            _node(store, "c-node-0"),
            _node(store, "c-node-0"),
            store.soon(set_node, "c-node-0", status="READY"),
        )

    first, second, ready = asyncio.run(main())
    assert first.name == second.name == "c-node-0"
    assert getattr(ready, "status", None) == "READY"
    assert [n.status for n in store.nodes(cluster="c")] == ["READY"]
    store.close()


def test_a_writer_resumes_once_its_write_is_committed(database_url: str) -> None:
    store = _store(database_url)
    other = Store(database_url)

    async def main() -> None:
        await _node(store, "c-node-0")
        # nothing was awaited since: the row is already there for another reader
        assert other.find_node("c-node-0") is not None

    asyncio.run(main())
    other.close()
    store.close()


def test_a_failed_write_takes_no_other_with_it(database_url: str) -> None:
    store = _store(database_url)
    asyncio.run(_node(store, "web-master-0", cluster="other"))

    async def main() -> list[object]:
        return await asyncio.gather(
            _node(store, "c-node-0"),
            store.soon(set_node, "ghost", status="READY"),
            _node(store, "web-master-0"),  # a clash with another cluster's node
            _node(store, "c-node-1"),
            return_exceptions=True,
        )

    _, ghost, clash, _ = asyncio.run(main())
    assert isinstance(ghost, NotFound) and "'ghost' no longer exists" in str(ghost)
    assert isinstance(clash, AlreadyExists)
    assert [n.name for n in store.nodes(cluster="c")] == ["c-node-0", "c-node-1"]
    assert store.node("web-master-0").cluster == "other"
    store.close()


def test_a_cancelled_writer_still_has_its_write_made(database_url: str) -> None:
    store = _store(database_url)

    async def main() -> None:
        task = asyncio.ensure_future(_node(store, "c-node-0"))
        await asyncio.sleep(0)  # the write is queued
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)

    asyncio.run(main())
    assert store.find_node("c-node-0") is not None
    store.close()
