"""The narrow interface to recorded state: typed records in, typed records out.

SQLite in the installation's data directory by default (``FLOTTE_DATABASE_URL`` or the
``url`` argument may name PostgreSQL for ``flotte serve``). Every write is one
transaction; the schema is brought to the newest Alembic revision when opened. Rows
never leave this module: readers get the frozen values of ``records``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import Text, cast, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from flotte.errors import AlreadyExists, NotFound
from flotte.models import Role
from flotte.specs import ClusterSpec
from flotte.state import status as st
from flotte.state.database import open_database
from flotte.state.group_commit import GroupCommit
from flotte.state.journal import StoreJournal
from flotte.state.records import ClusterRecord, Node
from flotte.state.rows import (
    cluster_json,
    cluster_record,
    node_names,
    node_record,
)
from flotte.state.schema import HEAD
from flotte.state.spec_rows import groups_status, write_desired, write_groups
from flotte.state.store_templates import TemplateRows
from flotte.state.tables import Cluster, JournalEntry, Machine, NodeGroup

P = ParamSpec("P")
T = TypeVar("T")

# What set_cluster may write (node groups' rows hold their own status).
_CLUSTER_FIELDS = {"status", "status_reason", "coe_data", "health_status", "health_status_reason"}


class Store(TemplateRows):
    def __init__(self, url: str) -> None:
        # first use (0600 file, schema, installation id) and broken state: database.py
        db = open_database(url, head=HEAD)
        self.url, self.engine, self.read_only = db.url, db.engine, db.read_only
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.installation = db.installation
        self._group = GroupCommit(self.session)

    @classmethod
    def at(cls, path: Path) -> Store:
        return cls(f"sqlite:///{path}")

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions.begin() as s:
            yield s

    def now(self, write: Callable[Concatenate[Session, P], T], *a: P.args, **kw: P.kwargs) -> T:
        """Make ``write`` in a transaction of its own."""
        with self.session() as s:
            return write(s, *a, **kw)

    async def soon(
        self,
        write: Callable[Concatenate[Session, str, P], T],
        name: str,
        *a: P.args,
        **kw: P.kwargs,
    ) -> T:
        """Make ``write`` of node ``name``'s row (``node_rows``) in one transaction with
        the writes asked for in the same turn of the event loop; return once it is
        committed (``group_commit``)."""
        return await self._group(lambda s: write(s, name, *a, **kw), (Machine, name))

    # -- clusters -------------------------------------------------------------------
    def add_cluster(
        self,
        spec: ClusterSpec,
        status: str,
        *,
        project: str | None = None,
        display_name: str | None = None,
        magnum: dict[str, Any] | None = None,
        admit: Callable[[Session], None] | None = None,
    ) -> ClusterRecord:
        """Record a new cluster and its node groups; refuse any name already in use.

        flotte serve gives the owning ``project``, the ``display_name`` its users chose
        and Magnum-only fields, and ``admit``: called in the same transaction once the
        rows are written, it raises to refuse (a quota) and may add rows of its own.
        """
        nodes = {n for g in spec.nodegroups for n in node_names(spec, g)}
        try:
            with self.session() as s:
                if s.get(Cluster, spec.name) is not None:
                    raise AlreadyExists(f"cluster {spec.name!r} already exists")
                if s.get(Machine, spec.name) is not None:
                    raise AlreadyExists(f"{spec.name!r} is already the name of a machine")
                clash = s.scalars(
                    select(Machine.name).where(Machine.name.in_(nodes), Machine.cluster.is_(None))
                ).first()
                if clash:
                    raise AlreadyExists(
                        f"machine {clash!r} would clash with a node of cluster {spec.name!r}",
                        hint="choose another cluster name, or remove that machine",
                    )
                s.add(
                    Cluster(
                        name=spec.name,
                        uuid=str(uuid.uuid4()),
                        driver=spec.driver,
                        coe=spec.coe or "",
                        template=spec.template,
                        master_count=spec.master_count,
                        node_count=spec.node_count,
                        status=status,
                        status_reason="",
                        spec=cluster_json(spec),
                        shared={},
                        coe_data={},
                        project=project,
                        display_name=display_name,
                        magnum=magnum,
                    )
                )
                s.flush()
                write_groups(s, spec, status)
                if admit is not None:
                    s.flush()
                    admit(s)
        except IntegrityError as err:
            raise AlreadyExists(f"cluster {spec.name!r} already exists") from err
        return self.cluster(spec.name)

    def cluster(self, name: str) -> ClusterRecord:
        found = self.find_cluster(name)
        if found is None:
            raise NotFound(f"cluster {name!r} not found", hint="see 'flotte cluster list'")
        return found

    def find_cluster(self, name: str) -> ClusterRecord | None:
        with self.session() as s:
            row = s.get(Cluster, name)
            if row is None:
                return None
            groups = s.scalars(
                select(NodeGroup).where(NodeGroup.cluster == name).order_by(NodeGroup.position)
            ).all()
            return cluster_record(row, list(groups))

    def clusters(self) -> list[ClusterRecord]:
        with self.session() as s:
            groups: dict[str, list[NodeGroup]] = {}
            for g in s.scalars(select(NodeGroup).order_by(NodeGroup.position)):
                groups.setdefault(g.cluster, []).append(g)
            rows = s.scalars(select(Cluster).order_by(Cluster.name))
            return [cluster_record(r, groups.get(r.name, [])) for r in rows]

    def cluster_labels(self, key: str) -> dict[str, str]:
        """The clusters whose labels hold ``key``, with its value.

        Filtered in the database, the spec left unparsed: a watch asks this every few
        seconds, and reading 1,000 clusters' specs held flotte serve's event loop for
        half a second each time."""
        with self.session() as s:
            rows = s.execute(
                select(Cluster.name, Cluster.spec)
                .where(cast(Cluster.spec, Text).like(f'%"{key}"%'))
                .order_by(Cluster.name)
            )
            found = {}
            for name, spec in rows:
                labels = (spec or {}).get("labels") or {}
                if key in labels:
                    found[name] = str(labels[key])
            return found

    def set_desired(
        self,
        spec: ClusterSpec,
        *,
        status: str | None = None,
        reason: str = "",
        groups: Iterable[str] | None = None,
        group_reason: str = "",
    ) -> ClusterRecord:
        """Record a new desired spec for an existing cluster (groups added or removed).

        With ``status``: the cluster's status and that of its node groups (only
        ``groups`` if named) in the same transaction, so a kill cannot leave a changed
        spec under a status that says nothing is under way (or the other way round)."""
        with self.session() as s:
            row = s.get(Cluster, spec.name)
            if row is None:
                raise NotFound(f"cluster {spec.name!r} not found")
            write_desired(s, row, spec, status, reason, groups, group_reason)
        return self.cluster(spec.name)

    def claim_desired(
        self,
        name: str,
        allowed: Iterable[str],
        edit: Callable[[ClusterSpec], ClusterSpec],
        *,
        status: str,
        groups: Iterable[str] | None = None,
        group_status: str | None = None,
        also: Callable[[Session], None] | None = None,
    ) -> ClusterRecord | None:
        """``set_desired(edit(recorded spec), status=...)`` if the cluster's status is one
        of ``allowed``, else None; one transaction either way (``also`` adds its own
        rows to it: the API's job that carries the change out).

        The move to ``status`` is a conditional UPDATE, so of two concurrent changes one
        wins, and the spec edited is the one read after it: a change that was settled
        meanwhile is never overwritten. ``groups`` take ``group_status`` (default
        ``status``: a new node group may say CREATE_IN_PROGRESS). An exception from
        ``edit`` writes nothing."""
        with self.session() as s:
            claimed = s.execute(
                update(Cluster)
                .where(Cluster.name == name, Cluster.status.in_(list(allowed)))
                .values(status=status, status_reason="")
            )
            if not getattr(claimed, "rowcount", 0):
                return None
            row = s.get(Cluster, name, populate_existing=True)
            assert row is not None  # the UPDATE just matched it
            rows = s.scalars(
                select(NodeGroup).where(NodeGroup.cluster == name).order_by(NodeGroup.position)
            ).all()
            spec = edit(cluster_record(row, list(rows)).spec)
            write_desired(s, row, spec, status, "", groups, "", group_status)
            if also is not None:
                also(s)
        return self.cluster(name)

    def set_cluster(self, name: str, **fields: Any) -> None:
        """Update status, status_reason, coe_data, health_status, health_status_reason."""
        self.set_status(name, groups=(), **fields)

    def record_health(
        self, name: str, status: str, reason: dict[str, Any], *, seen_status: str
    ) -> bool:
        """Record a health verdict unless the cluster's status changed since the check read
        it (a create or resize finished meanwhile and recorded the health it saw, which is
        newer); whether it was recorded."""
        with self.session() as s:
            row = s.get(Cluster, name)
            if row is None:
                raise NotFound(f"cluster {name!r} no longer exists")
            if row.status != seen_status:
                return False
            row.health_status, row.health_status_reason = status, reason
            return True

    def set_groups_status(
        self, name: str, status: str, reason: str = "", groups: list[str] | None = None
    ) -> None:
        with self.session() as s:
            groups_status(s, name, status, reason, groups)

    def set_status(
        self,
        name: str,
        *,
        groups: Iterable[str] | None = None,
        group_reason: str = "",
        **fields: Any,
    ) -> None:
        """``set_cluster``, and its ``status`` for its node groups (only ``groups`` if
        named) in the same transaction."""
        unknown = set(fields) - _CLUSTER_FIELDS
        if unknown:
            raise ValueError(f"not cluster fields: {sorted(unknown)}")
        with self.session() as s:
            row = s.get(Cluster, name)
            if row is None:
                raise NotFound(f"cluster {name!r} no longer exists")
            for key, value in fields.items():
                setattr(row, key, value)
            if "status" in fields:
                groups_status(s, name, fields["status"], group_reason, groups)

    def settle(self, name: str) -> bool:
        """Every ``*_IN_PROGRESS`` status of cluster ``name`` and its node groups becomes
        ``*_COMPLETE``, in one transaction; whether any did. For a caller that holds the
        cluster's lock and knows what is recorded is what is wanted (an empty plan): the
        change that said "in progress" was killed after its work was done."""
        done = {
            st.CREATE_IN_PROGRESS: st.CREATE_COMPLETE,
            st.UPDATE_IN_PROGRESS: st.UPDATE_COMPLETE,
        }
        with self.session() as s:
            groups = s.scalars(select(NodeGroup).where(NodeGroup.cluster == name))
            rows: list[Cluster | NodeGroup | None] = [s.get(Cluster, name), *groups]
            unsettled = [r for r in rows if r is not None and r.status in done]
            for row in unsettled:
                row.status, row.status_reason = done[row.status], ""
            return bool(unsettled)

    def set_shared(self, name: str, driver: str, data: dict[str, Any] | None) -> None:
        """What ``driver.prepare`` made for a cluster or a lone machine (None: released)."""
        with self.session() as s:
            row: Cluster | Machine | None = s.get(Cluster, name) or s.get(Machine, name)
            if row is None:
                raise NotFound(f"{name!r} no longer exists")
            shared = dict(row.shared or {})
            if data is None:
                shared.pop(driver, None)
            else:
                shared[driver] = data
            row.shared = shared

    def delete_cluster(self, name: str) -> None:
        with self.session() as s:
            for m in s.scalars(select(Machine).where(Machine.cluster == name)):
                s.delete(m)
            for g in s.scalars(select(NodeGroup).where(NodeGroup.cluster == name)):
                s.delete(g)
            row = s.get(Cluster, name)
            if row is not None:
                s.delete(row)

    # -- nodes and lone machines ------------------------------------------------------
    def add_machine(self, spec: ClusterSpec, status: str) -> Node:
        """Record a lone machine (a one-node spec of kind machine)."""
        group = spec.nodegroups[0]
        row = Machine(
            name=spec.name,
            driver=spec.driver,
            cluster=None,
            role=Role.MACHINE.value,
            group=group.name,
            index=0,
            host=group.hosts[0] if group.hosts else None,
            status=status,
            status_reason="",
            spec=cluster_json(spec, with_groups=True),
            record={},
            endpoint={},
            shared={},
        )
        try:
            with self.session() as s:
                if s.get(Machine, spec.name) is not None:
                    raise AlreadyExists(f"machine {spec.name!r} already exists")
                if s.get(Cluster, spec.name) is not None:
                    raise AlreadyExists(f"{spec.name!r} is already the name of a cluster")
                s.add(row)
        except IntegrityError as err:
            raise AlreadyExists(f"machine {spec.name!r} already exists") from err
        return node_record(row)

    def machine_spec(self, name: str) -> ClusterSpec:
        """The desired spec of a lone machine."""
        with self.session() as s:
            row = s.get(Machine, name)
            if row is None or row.cluster:
                raise NotFound(f"machine {name!r} not found")
            return ClusterSpec.model_validate(row.spec)

    def machine_specs(self) -> dict[str, tuple[ClusterSpec, dict[str, dict[str, Any]]]]:
        """Every lone machine's desired spec and shared resources, in one query: what
        ``machine ls`` needs to make their drivers (one query per machine was 2 x N)."""
        with self.session() as s:
            rows = s.execute(
                select(Machine.name, Machine.spec, Machine.shared).where(Machine.cluster.is_(None))
            )
            return {
                name: (ClusterSpec.model_validate(spec), dict(shared or {}))
                for name, spec, shared in rows
            }

    def machine_shared(self, name: str) -> dict[str, dict[str, Any]]:
        with self.session() as s:
            row = s.get(Machine, name)
            return dict(row.shared or {}) if row is not None else {}

    def node(self, name: str) -> Node:
        found = self.find_node(name)
        if found is None:
            raise NotFound(f"machine {name!r} not found", hint="see 'flotte machine ls'")
        return found

    def find_node(self, name: str) -> Node | None:
        with self.session() as s:
            row = s.get(Machine, name)
            return node_record(row) if row is not None else None

    def nodes(self, cluster: str | None = None, *, lone: bool = False) -> list[Node]:
        """Every node and machine; a cluster's nodes; or (``lone``) lone machines only."""
        with self.session() as s:
            query = select(Machine).order_by(Machine.name)
            if cluster is not None:
                query = query.where(Machine.cluster == cluster)
            elif lone:
                query = query.where(Machine.cluster.is_(None))
            return [node_record(r) for r in s.scalars(query)]

    def set_engine_versions(self, versions: Mapping[str, str]) -> None:
        """Record what each named node's engine said it is ("" is ignored), in one
        transaction; only this column is written, so a health check never overwrites
        what a command running at the same time records of the node. Nodes gone
        meanwhile are skipped."""
        wanted = {name: v[:64] for name, v in versions.items() if v}
        if not wanted or self.read_only:
            return  # a cache of what engines said: never worth failing a reading command
        with self.session() as s:
            for row in s.scalars(select(Machine).where(Machine.name.in_(wanted))):
                if row.engine_version != wanted[row.name]:
                    row.engine_version = wanted[row.name]

    # -- journal --------------------------------------------------------------------
    def journal(self, scope: str, operation: str) -> StoreJournal:
        return StoreJournal(self.session, self._group, scope, operation)

    def journal_entries(self, scope: str, limit: int | None = None) -> list[JournalEntry]:
        with self.session() as s:
            query = select(JournalEntry).where(JournalEntry.scope == scope)
            if limit is not None:
                query = query.order_by(JournalEntry.id.desc()).limit(limit)
                return list(reversed(list(s.scalars(query))))
            return list(s.scalars(query.order_by(JournalEntry.id)))
