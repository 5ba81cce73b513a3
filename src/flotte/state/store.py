"""The narrow interface to recorded state.

SQLite in the installation's data directory by default (``FLOTTE_DATABASE_URL`` or the
``url`` argument may name PostgreSQL for ``flotte serve``). Every write is one
transaction; the schema is brought to the newest Alembic revision when opened.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from flotte.errors import AlreadyExists, FlotteError, NotFound
from flotte.state.database import open_database
from flotte.state.tables import Base, Cluster, JournalEntry, Machine, Template

HEAD = "0001"  # newest migration; checked cheaply so start-up skips Alembic when current
T = TypeVar("T", bound=Base)


class Store:
    def __init__(self, url: str) -> None:
        # first use (0600 file, schema, installation id) and broken state: database.py
        db = open_database(url, head=HEAD)
        self.url, self.engine, self.read_only = db.url, db.engine, db.read_only
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.installation = db.installation

    @classmethod
    def at(cls, path: Path) -> Store:
        return cls(f"sqlite:///{path}")

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions.begin() as s:
            yield s

    # -- generic helpers ------------------------------------------------------------
    def _get(self, model: type[T], name: str, kind: str) -> T:
        with self.session() as s:
            row = s.get(model, name)
        if row is None:
            raise NotFound(f"{kind} {name!r} not found")
        return row

    def _find(self, model: type[T], name: str) -> T | None:
        with self.session() as s:
            return s.get(model, name)

    def _update(self, model: type[T], name: str, fields: dict[str, Any]) -> T:
        with self.session() as s:
            row = s.get(model, name)
            if row is None:
                raise NotFound(f"{name!r} no longer exists")
            for key, value in fields.items():
                setattr(row, key, value)
            return row

    def _delete(self, model: type[T], name: str) -> None:
        with self.session() as s:
            row = s.get(model, name)
            if row is not None:
                s.delete(row)

    # -- templates ------------------------------------------------------------------
    def add_template(self, name: str, spec: dict[str, Any]) -> Template:
        with self.session() as s:
            if s.get(Template, name) is not None:
                raise AlreadyExists(f"template {name!r} already exists")
            row = Template(name=name, spec=spec)
            s.add(row)
            return row

    def template(self, name: str) -> Template:
        return self._get(Template, name, "template")

    def templates(self) -> list[Template]:
        with self.session() as s:
            return list(s.scalars(select(Template).order_by(Template.name)))

    def delete_template(self, name: str) -> None:
        self.template(name)
        with self.session() as s:
            used = s.scalars(select(Cluster.name).where(Cluster.template == name)).first()
        if used:
            raise FlotteError(f"template {name!r} is used by cluster {used!r}: delete it first")
        self._delete(Template, name)

    # -- clusters -------------------------------------------------------------------
    def add_cluster(self, row: Cluster) -> Cluster:
        with self.session() as s:
            if s.get(Cluster, row.name) is not None:
                raise AlreadyExists(f"cluster {row.name!r} already exists")
            if s.get(Machine, row.name) is not None:
                raise AlreadyExists(f"{row.name!r} is already the name of a machine")
            s.add(row)
            return row

    def cluster(self, name: str) -> Cluster:
        return self._get(Cluster, name, "cluster")

    def find_cluster(self, name: str) -> Cluster | None:
        return self._find(Cluster, name)

    def clusters(self) -> list[Cluster]:
        with self.session() as s:
            return list(s.scalars(select(Cluster).order_by(Cluster.name)))

    def update_cluster(self, name: str, **fields: Any) -> Cluster:
        return self._update(Cluster, name, fields)

    def delete_cluster(self, name: str) -> None:
        with self.session() as s:
            for m in s.scalars(select(Machine).where(Machine.cluster == name)):
                s.delete(m)
            row = s.get(Cluster, name)
            if row is not None:
                s.delete(row)

    # -- machines -------------------------------------------------------------------
    def add_machine(self, row: Machine, *, replace: bool = False) -> Machine:
        with self.session() as s:
            existing = s.get(Machine, row.name)
            if existing is not None and not replace:
                raise AlreadyExists(f"machine {row.name!r} already exists")
            if existing is not None:
                s.delete(existing)
                s.flush()
            if row.cluster is None and s.get(Cluster, row.name) is not None:
                raise AlreadyExists(f"{row.name!r} is already the name of a cluster")
            s.add(row)
            return row

    def machine(self, name: str) -> Machine:
        return self._get(Machine, name, "machine")

    def find_machine(self, name: str) -> Machine | None:
        return self._find(Machine, name)

    def machines(self, cluster: str | None = None) -> list[Machine]:
        with self.session() as s:
            query = select(Machine).order_by(Machine.name)
            if cluster is not None:
                query = query.where(Machine.cluster == cluster)
            return list(s.scalars(query))

    def update_machine(self, name: str, **fields: Any) -> Machine:
        return self._update(Machine, name, fields)

    def delete_machine(self, name: str) -> None:
        self._delete(Machine, name)

    # -- journal --------------------------------------------------------------------
    def journal(self, scope: str, operation: str) -> StoreJournal:
        return StoreJournal(self, scope, operation)

    def journal_entries(self, scope: str) -> list[JournalEntry]:
        with self.session() as s:
            query = select(JournalEntry).where(JournalEntry.scope == scope)
            return list(s.scalars(query.order_by(JournalEntry.id)))


class StoreJournal:
    """The executor's journal, written to the ``journal`` table one row per event."""

    def __init__(self, store: Store, scope: str, operation: str) -> None:
        self.store, self.scope, self.operation = store, scope, operation

    def _write(self, step: str, phase: str, detail: str = "") -> None:
        with self.store.session() as s:
            s.add(
                JournalEntry(
                    scope=self.scope,
                    operation=self.operation,
                    step=step,
                    phase=phase,
                    detail=detail[:2000],
                )
            )

    def intent(self, step: str) -> None:
        self._write(step, "intent")

    def outcome(self, step: str, *, ok: bool, detail: str = "") -> None:
        self._write(step, "done" if ok else "failed", detail)
