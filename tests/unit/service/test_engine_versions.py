"""Each node's engine version: read from what engines already answer, kept in the store.

The parsing takes untrusted, often partial answers (a node that has just joined is
listed before its ``Description``); the store keeps the last version an engine gave,
upgrades an older database without losing its nodes, and never lets an engine that
said nothing erase what it said before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from fixtures.node_rows import worker
from flotte.coe.swarm import node_view
from flotte.dockerapi import _version
from flotte.models import NodeRecord
from flotte.service.lifecycle import provisioned_version
from flotte.state.database import open_database
from flotte.state.node_rows import add_node, set_node
from flotte.state.store import HEAD, Store

FULL = {
    "ID": "abc",
    "Description": {"Hostname": "lab-node-0", "Engine": {"EngineVersion": "26.1.5+dfsg1"}},
    "Spec": {"Role": "worker", "Availability": "active"},
    "Status": {"State": "ready", "Addr": "10.0.0.3"},
}


@pytest.mark.parametrize(
    ("attrs", "version"),
    [
        (FULL, "26.1.5+dfsg1"),
        ({**FULL, "Description": None}, ""),  # just joined: no Description yet
        ({k: v for k, v in FULL.items() if k != "Description"}, ""),
        ({**FULL, "Description": {"Hostname": "lab-node-0"}}, ""),  # no Engine yet
        ({**FULL, "Description": {"Engine": {}}}, ""),
        ({**FULL, "Description": {"Engine": {"EngineVersion": 26}}}, ""),  # not text
        ({**FULL, "Description": {"Engine": "26.1.5"}}, ""),
        ({}, ""),
        ("not a node", ""),
        (None, ""),
    ],
)
def test_a_swarm_node_without_its_engine_description_has_no_version(
    attrs: Any, version: str
) -> None:
    view = node_view(attrs)
    assert view["engine_version"] == version
    if attrs is FULL:
        assert (view["hostname"], view["state"]) == ("lab-node-0", "ready")


@pytest.mark.parametrize(
    ("data", "version"),
    [
        ({"provision": {"docker_version": "20.10.24+dfsg1"}}, "20.10.24+dfsg1"),
        ({"provision": {"docker_version": ""}}, ""),
        ({"provision": {"docker_version": None}}, ""),
        ({"provision": "done"}, ""),  # an older record's shape
        ({"provisioned": True}, ""),
        ({}, ""),
    ],
)
def test_the_version_the_ssh_provisioner_read(data: dict[str, Any], version: str) -> None:
    assert provisioned_version(NodeRecord("n", "ssh", data=data)) == version


@pytest.mark.parametrize(
    ("body", "version"),
    [
        (b'{"Version": "26.1.5", "ApiVersion": "1.45"}', "26.1.5"),
        (b'{"ApiVersion": "1.45"}', ""),
        (b'{"Version": 26}', ""),
        (b"[]", ""),
        (b"<html>not docker</html>", ""),
        (b"", ""),
    ],
)
def test_what_get_version_answered(body: bytes, version: str) -> None:
    assert _version(body) == version


def _node(store: Store, name: str) -> None:
    store.now(add_node, name, **worker("c"))


def test_an_older_database_is_upgraded_and_versions_are_kept(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    old = open_database(url, head="0004")  # as the previous flotte left it
    with old.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO clusters (name, uuid, driver, coe, master_count, node_count, status,"
                " status_reason, spec, shared, coe_data, health_status, health_status_reason,"
                " created_at, updated_at) VALUES ('c', 'u', 'fake', 'swarm', 1, 1,"
                " 'CREATE_COMPLETE', '', '{\"name\": \"c\"}', '{}', '{}', 'UNKNOWN', '{}',"
                " '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
            )
        )
        conn.execute(
            text(
                'INSERT INTO machines (name, driver, cluster, role, "group", "index", status,'
                " status_reason, spec, record, endpoint, shared, created_at, updated_at)"
                " VALUES ('c-node-0', 'fake', 'c', 'worker', 'default-worker', 0, 'READY', '',"
                " '{}', '{}', '{}', '{}', '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
            )
        )
    old.engine.dispose()

    store = Store(url)
    try:
        assert HEAD == "0005"
        assert store.node("c-node-0").engine_version == ""  # never heard from yet
        _node(store, "c-node-1")
        store.set_engine_versions({"c-node-0": "26.1.5", "c-node-1": "", "gone": "1.0"})
        assert store.node("c-node-0").engine_version == "26.1.5"
        assert store.node("c-node-1").engine_version == ""  # "" is not a version
        assert store.find_node("gone") is None  # nothing made for a node gone meanwhile
        # an engine that did not say keeps what it said before; a new answer replaces it
        store.now(set_node, "c-node-0", status="READY", engine_version="")
        assert store.node("c-node-0").engine_version == "26.1.5"
        store.now(set_node, "c-node-0", engine_version="27.0.1")
        store.set_engine_versions({"c-node-1": "27.0.1"})
        assert [n.engine_version for n in store.nodes(cluster="c")] == ["27.0.1", "27.0.1"]
    finally:
        store.close()
