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
import functools
import json
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from flotte.specs import ClusterSpec
from flotte.state.records import ClusterRecord, Node
from flotte.state.rows import cluster_record, node_record
from flotte.state.schema import HEAD

# Columns stored as JSON text and as SQLAlchemy's SQLite DATETIME text (which keeps no
# time zone: the ORM returns naive datetimes, so these are parsed the same way).
_DECODE: dict[str, Callable[[Any], Any]] = {
    **dict.fromkeys(
        ("spec", "shared", "coe_data", "health_status_reason", "record", "endpoint", "magnum"),
        json.loads,
    ),
    **dict.fromkeys(("created_at", "updated_at"), dt.datetime.fromisoformat),
}


def _rows(cursor: sqlite3.Cursor, shared: frozenset[str] = frozenset()) -> list[SimpleNamespace]:
    """The rows, their JSON and date columns decoded. A column in ``shared`` is decoded
    once per distinct text and the value shared between rows: its caller only reads it
    (a thousand nodes made alike hold the same engine options)."""
    names = [c[0] for c in cursor.description]
    # plain columns are taken as they are: one lookup per column, not per value
    decoded: list[tuple[int, str, Callable[[Any], Any]]] = []
    for i, name in enumerate(names):
        if name in shared:
            decoded.append((i, name, functools.lru_cache(maxsize=64)(_DECODE[name])))
        elif name in _DECODE:
            decoded.append((i, name, _DECODE[name]))
    out = []
    for raw in cursor.fetchall():
        row = dict(zip(names, raw, strict=True))
        for i, name, decode in decoded:
            if raw[i] is not None:
                row[name] = decode(raw[i])
        out.append(SimpleNamespace(**row))
    return out


# A node's columns as ``node_record`` reads them: of its spec only the engine options
# (sqlite's json_extract keeps it JSON), not a lone machine's whole spec, nor ``shared``.
# Decoding those was a third of reading a thousand machines.
_NODE = (
    'name, driver, cluster, "group", role, "index", host, status, status_reason, '
    "json_object('engine', json_extract(spec, '$.engine')) AS spec, "
    "record, endpoint, engine_version, created_at, updated_at"
)


_SHARED_SPEC = frozenset({"spec"})


class Unreadable(Exception):
    """A query failed (a damaged file, a lock held too long): the store's path says why."""


class Reader:
    """Read-only queries of the SQLite state, returning the store's records."""

    def __init__(self, conn: sqlite3.Connection, installation: str) -> None:
        self.conn = conn
        self.installation = installation

    def close(self) -> None:
        self.conn.close()

    def _all(
        self, sql: str, *args: Any, shared: frozenset[str] = frozenset()
    ) -> list[SimpleNamespace]:
        try:
            return _rows(self.conn.execute(sql, args), shared)
        except sqlite3.Error as err:
            raise Unreadable(str(err)) from err

    def nodes(self, cluster: str | None = None) -> list[Node]:
        """Every node and machine, or one cluster's, by name (``Store.nodes``)."""
        if cluster is None:
            return self._nodes(f"SELECT {_NODE} FROM machines ORDER BY name")
        return self._nodes(f"SELECT {_NODE} FROM machines WHERE cluster = ? ORDER BY name", cluster)

    def cluster_nodes(self) -> list[Node]:
        """Every cluster's nodes, by name: ``cluster list`` reads no lone machine."""
        return self._nodes(f"SELECT {_NODE} FROM machines WHERE cluster IS NOT NULL ORDER BY name")

    def _nodes(self, sql: str, *args: Any) -> list[Node]:
        # node_record only reads the engine options: nodes made alike share one decoding
        rows = self._all(sql, *args, shared=_SHARED_SPEC)
        return [node_record(r) for r in rows]  # type: ignore[arg-type]

    def machine_specs(self) -> dict[str, tuple[ClusterSpec, dict[str, dict[str, Any]]]]:
        """Every lone machine's spec and shared resources (``Store.machine_specs``).

        Lone machines made alike differ only by name: each distinct spec is validated
        once and copied under each name (the spec's validators only check, and did when
        it was written), as validating a thousand took a third of ``machine ls``."""
        # sqlite takes the name out of the spec (the key) and reads it; the JSON is
        # decoded only for a spec not seen yet (``spec_text`` is not a decoded column):
        # encoding each row's spec to compare them cost as much as decoding it
        rows = self._all(
            "SELECT name, json_remove(spec, '$.name') AS spec_key, "
            "json_extract(spec, '$.name') AS spec_name, spec AS spec_text, shared "
            "FROM machines WHERE cluster IS NULL"
        )
        validated: dict[str, ClusterSpec] = {}
        out: dict[str, tuple[ClusterSpec, dict[str, dict[str, Any]]]] = {}
        for r in rows:
            if r.spec_key not in validated:
                validated[r.spec_key] = ClusterSpec.model_validate(json.loads(r.spec_text))
            spec = validated[r.spec_key]
            if spec.name != r.spec_name:
                spec = spec.model_copy(update={"name": r.spec_name})
            out[r.name] = (spec, dict(r.shared or {}))
        return out

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
