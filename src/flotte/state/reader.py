"""Reading the SQLite state with the standard library's ``sqlite3``, for listings.

Importing SQLAlchemy with its ORM costs about half a second of CPU on a loaded
machine, more than ``machine ls`` spends on a thousand records. A listing only reads,
so when the database already exists at the schema revision this flotte writes, it
reads the rows here and builds the very records ``Store`` returns (``rows.py`` takes
any object with the columns as attributes). Anything else (first use, a schema to
migrate, PostgreSQL, a database this process cannot open read-only) is the ``Store``'s:
``open_reader`` then says None and the caller takes the normal path.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from flotte.specs import ClusterSpec
from flotte.state.records import ClusterRecord, Node
from flotte.state.rows import cluster_record, node_record
from flotte.state.schema import HEAD

# Columns stored as JSON text and as SQLAlchemy's SQLite DATETIME text (which keeps no
# time zone: the ORM returns naive datetimes, so these are parsed the same way).
_JSON = frozenset(
    {"spec", "shared", "coe_data", "health_status_reason", "record", "endpoint", "magnum"}
)
_TIMES = frozenset({"created_at", "updated_at"})


def _value(key: str, raw: Any) -> Any:
    if raw is None:
        return None
    if key in _JSON:
        return json.loads(raw)
    if key in _TIMES:
        return dt.datetime.fromisoformat(raw)
    return raw


def _row(cursor: sqlite3.Cursor, raw: tuple[Any, ...]) -> SimpleNamespace:
    names = [c[0] for c in cursor.description]
    return SimpleNamespace(**{k: _value(k, v) for k, v in zip(names, raw, strict=True)})


class Unreadable(Exception):
    """A query failed (a damaged file, a lock held too long): the store's path says why."""


class Reader:
    """Read-only queries of the SQLite state, returning the store's records."""

    def __init__(self, conn: sqlite3.Connection, installation: str) -> None:
        self.conn = conn
        self.installation = installation

    def close(self) -> None:
        self.conn.close()

    def _all(self, sql: str, *args: Any) -> list[SimpleNamespace]:
        try:
            cursor = self.conn.execute(sql, args)
            return [_row(cursor, r) for r in cursor.fetchall()]
        except sqlite3.Error as err:
            raise Unreadable(str(err)) from err

    def nodes(self, cluster: str | None = None) -> list[Node]:
        """Every node and machine, or one cluster's, by name (``Store.nodes``)."""
        if cluster is None:
            rows = self._all("SELECT * FROM machines ORDER BY name")
        else:
            rows = self._all("SELECT * FROM machines WHERE cluster = ? ORDER BY name", cluster)
        return [node_record(r) for r in rows]  # type: ignore[arg-type]

    def cluster_nodes(self) -> list[Node]:
        """Every cluster's nodes, by name: ``cluster list`` reads no lone machine."""
        rows = self._all("SELECT * FROM machines WHERE cluster IS NOT NULL ORDER BY name")
        return [node_record(r) for r in rows]  # type: ignore[arg-type]

    def machine_specs(self) -> dict[str, tuple[ClusterSpec, dict[str, dict[str, Any]]]]:
        """Every lone machine's spec and shared resources (``Store.machine_specs``)."""
        rows = self._all("SELECT name, spec, shared FROM machines WHERE cluster IS NULL")
        return {r.name: (ClusterSpec.model_validate(r.spec), dict(r.shared or {})) for r in rows}

    def cluster(self, name: str) -> ClusterRecord | None:
        """One cluster with its node groups (``Store.find_cluster``); None: not recorded."""
        rows = self._all("SELECT * FROM clusters WHERE name = ?", name)
        if not rows:
            return None
        groups = self._all("SELECT * FROM nodegroups WHERE cluster = ? ORDER BY position", name)
        return cluster_record(rows[0], groups)  # type: ignore[arg-type]

    def clusters(self) -> list[ClusterRecord]:
        """Every cluster with its node groups, by name (``Store.clusters``)."""
        groups: dict[str, list[Any]] = {}
        for g in self._all("SELECT * FROM nodegroups ORDER BY position"):
            groups.setdefault(g.cluster, []).append(g)
        rows = self._all("SELECT * FROM clusters ORDER BY name")
        return [cluster_record(r, groups.get(r.name, [])) for r in rows]  # type: ignore[arg-type]


def open_reader(database: Path) -> Reader | None:
    """A reader of ``database`` when it exists at ``HEAD`` with its installation id and
    ``FLOTTE_DATABASE_URL`` does not name another; otherwise None (use ``Store``)."""
    if os.environ.get("FLOTTE_DATABASE_URL") or not database.is_file():
        return None
    try:
        # read-only: nothing here can change the file, whatever the caller does
        conn = sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True, timeout=10)
    except sqlite3.Error:
        return None
    try:
        revision = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        found = conn.execute("SELECT value FROM meta WHERE key = 'installation'").fetchone()
    except sqlite3.Error:  # no schema yet, or not flotte's: Store says what is wrong
        conn.close()
        return None
    if revision is None or revision[0] != HEAD or found is None:
        conn.close()
        return None
    return Reader(conn, str(found[0]))
