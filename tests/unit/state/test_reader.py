"""The sqlite3 reader of listings returns exactly the store's records, and gives way
to the store whenever the database is not one it can read as is."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from flotte.models import EngineOptions
from flotte.service import Service
from flotte.state.node_rows import set_node
from flotte.state.reader import open_reader


@pytest.fixture
def svc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Service:
    """A home with two lone machines and a cluster of two groups, one node failed."""
    monkeypatch.setenv("FLOTTE_FAKE_DIR", str(tmp_path / "cloud"))
    monkeypatch.delenv("FLOTTE_DATABASE_URL", raising=False)
    svc = Service(tmp_path / "home")
    engine = EngineOptions(labels=("tier=db",), env=("A=1",))  # read from the spec's JSON
    for name in ("m", "m2"):
        spec, secrets = svc.machines.spec(name, "fake", {}, engine, no_provision=True)
        asyncio.run(svc.machines.create(spec, secrets))
    spec, secrets = svc.resolve("c", driver="fake", node_count=2, no_provision=True)
    asyncio.run(svc.clusters.create(spec, secrets))
    svc.store.now(set_node, "c-node-1", status="FAILED", status_reason="it broke")
    svc.store.set_cluster("c", health_status="UNHEALTHY", health_status_reason={"c-node-1": "x"})
    return svc


def test_reader_records_are_the_stores(svc: Service) -> None:
    reader = open_reader(svc.paths.database)
    assert reader is not None
    try:
        assert reader.installation == svc.store.installation
        assert reader.nodes() == svc.store.nodes()
        assert reader.nodes("c") == svc.store.nodes(cluster="c")
        assert reader.cluster_nodes() == [n for n in svc.store.nodes() if n.cluster]
        assert reader.clusters() == svc.store.clusters()
        assert reader.cluster("c") == svc.store.cluster("c")
        assert reader.cluster("m") is None and svc.store.find_cluster("m") is None
        assert reader.machine_specs() == svc.store.machine_specs()
        assert {n.name for n in reader.nodes()} == {"m", "m2", "c-master-0", "c-node-0", "c-node-1"}
        assert reader.nodes()[-1].engine.labels == ("tier=db",)
    finally:
        reader.close()
        svc.close()


def test_no_reader_for_a_database_the_store_must_handle(
    svc: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = svc.paths.database
    svc.close()
    assert open_reader(tmp_path / "none.db") is None  # first use: the store makes it
    monkeypatch.setenv("FLOTTE_DATABASE_URL", f"sqlite:///{database}")
    assert open_reader(database) is None  # the database named by the URL is the store's
    monkeypatch.delenv("FLOTTE_DATABASE_URL")
    with sqlite3.connect(database) as conn:  # an older schema: the store migrates it
        conn.execute("UPDATE alembic_version SET version_num = '0004'")
    assert open_reader(database) is None
    (tmp_path / "other.db").write_bytes(b"")  # not flotte's: the store says what is wrong
    with sqlite3.connect(tmp_path / "other.db") as conn:
        conn.execute("CREATE TABLE t (x)")
    assert open_reader(tmp_path / "other.db") is None
