"""The store of ``flotte serve``: projects, users, sealed driver accounts, quotas,
per-cluster CAs, serve processes, and clusters and templates seen per project.

It shares the installation's ``Store`` (one database, one transaction per write) and,
like it, returns frozen values; sealing and opening secrets is ``identity``'s business,
this layer only keeps the sealed text.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from flotte.errors import AlreadyExists, NotFound
from flotte.state.store import Store
from flotte.state.tables import Cluster, Template, utcnow
from flotte.state.tenancy_tables import (
    Account,
    Admission,
    ClusterCA,
    Project,
    Quota,
    ServeProcess,
    User,
)


@dataclass(frozen=True)
class ProjectRecord:
    id: str
    name: str
    created_at: dt.datetime | None = None


@dataclass(frozen=True)
class UserRecord:
    id: str
    name: str
    project: str
    password_hash: str = field(repr=False)
    admin: bool = False
    created_at: dt.datetime | None = None


@dataclass(frozen=True)
class AccountRecord:
    project: str
    driver: str
    sealed: str = field(repr=False)
    keys: tuple[str, ...] = ()
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


@dataclass(frozen=True)
class QuotaRecord:
    id: int
    project: str
    resource: str
    hard_limit: int
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


@dataclass(frozen=True)
class CARecord:
    cluster: str
    ca_pem: str
    ca_key: str = field(repr=False)  # sealed
    client_pem: str = ""
    client_key: str = field(default="", repr=False)  # sealed


@dataclass(frozen=True)
class ProcessRecord:
    id: int
    name: str
    host: str
    binary: str
    roles: str
    pid: int
    disabled: bool
    disabled_reason: str | None
    report_count: int
    created_at: dt.datetime | None
    heartbeat_at: dt.datetime | None


def changed(result: Any) -> bool:
    """Whether an UPDATE or DELETE touched a row (CursorResult.rowcount)."""
    return bool(getattr(result, "rowcount", 0))


def visible(column: Any, project: str | None) -> Any:
    """Rows of ``project`` only; None means every project (an admin)."""
    return True if project is None else column == project


class TenancyStore:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.session = store.session

    # -- projects -----------------------------------------------------------------------
    def add_project(self, id_: str, name: str) -> ProjectRecord:
        try:
            with self.session() as s:
                if s.scalars(select(Project).where(Project.name == name)).first():
                    raise AlreadyExists(f"project {name!r} already exists")
                s.add(Project(id=id_, name=name))
        except IntegrityError as err:
            raise AlreadyExists(f"project {name!r} already exists") from err
        return self.project(name)

    def find_project(self, ident: str) -> ProjectRecord | None:
        with self.session() as s:
            row = (
                s.get(Project, ident)
                or s.scalars(select(Project).where(Project.name == ident)).first()
            )
            return ProjectRecord(row.id, row.name, row.created_at) if row else None

    def project(self, ident: str) -> ProjectRecord:
        found = self.find_project(ident)
        if found is None:
            raise NotFound(f"project {ident!r} not found", hint="see 'flotte project list'")
        return found

    def projects(self) -> list[ProjectRecord]:
        with self.session() as s:
            rows = s.scalars(select(Project).order_by(Project.name))
            return [ProjectRecord(r.id, r.name, r.created_at) for r in rows]

    def delete_project(self, id_: str) -> None:
        """Delete a project with its users, accounts and quotas (it must own no cluster)."""
        with self.session() as s:
            used = s.scalars(select(Cluster.display_name).where(Cluster.project == id_)).first()
            if used is not None:
                raise AlreadyExists(
                    f"project {id_!r} still has clusters (e.g. {used!r})",
                    hint="delete its clusters first",
                )
            for table in (User, Account, Quota, Admission):
                s.execute(delete(table).where(table.project == id_))
            s.execute(delete(Template).where(Template.project == id_))
            s.execute(delete(Project).where(Project.id == id_))

    # -- users --------------------------------------------------------------------------
    @staticmethod
    def _user(row: User) -> UserRecord:
        return UserRecord(
            row.id, row.name, row.project, row.password_hash, row.admin, row.created_at
        )

    def add_user(self, id_: str, name: str, project: str, password_hash: str, admin: bool) -> None:
        try:
            with self.session() as s:
                if s.scalars(select(User).where(User.name == name)).first():
                    raise AlreadyExists(f"user {name!r} already exists")
                s.add(
                    User(
                        id=id_, name=name, project=project, password_hash=password_hash, admin=admin
                    )
                )
        except IntegrityError as err:
            raise AlreadyExists(f"user {name!r} already exists") from err

    def find_user(self, ident: str) -> UserRecord | None:
        with self.session() as s:
            row = s.get(User, ident) or s.scalars(select(User).where(User.name == ident)).first()
            return self._user(row) if row else None

    def users(self, project: str | None = None) -> list[UserRecord]:
        with self.session() as s:
            query = select(User).where(visible(User.project, project)).order_by(User.name)
            return [self._user(r) for r in s.scalars(query)]

    def delete_user(self, id_: str) -> None:
        with self.session() as s:
            s.execute(delete(User).where(User.id == id_))

    # -- accounts -----------------------------------------------------------------------
    def put_account(self, project: str, driver: str, sealed: str, keys: Iterable[str]) -> None:
        with self.session() as s:
            row = s.get(Account, (project, driver))
            if row is None:
                s.add(Account(project=project, driver=driver, sealed=sealed, keys=sorted(keys)))
            else:
                row.sealed, row.keys = sealed, sorted(keys)

    def account(self, projects: Iterable[str], driver: str) -> AccountRecord | None:
        """The account for ``driver`` of the first of ``projects`` (id, then name) that has one."""
        with self.session() as s:
            for project in projects:
                row = s.get(Account, (project, driver))
                if row is not None:
                    return AccountRecord(
                        row.project,
                        row.driver,
                        row.sealed,
                        tuple(row.keys or ()),
                        row.created_at,
                        row.updated_at,
                    )
        return None

    def accounts(self, project: str | None = None) -> list[AccountRecord]:
        with self.session() as s:
            query = select(Account).where(visible(Account.project, project))
            rows = s.scalars(query.order_by(Account.project, Account.driver))
            return [
                AccountRecord(
                    r.project, r.driver, r.sealed, tuple(r.keys or ()), r.created_at, r.updated_at
                )
                for r in rows
            ]

    def delete_account(self, project: str, driver: str) -> bool:
        with self.session() as s:
            return changed(
                s.execute(
                    delete(Account).where(Account.project == project, Account.driver == driver)
                )
            )

    # -- quotas -------------------------------------------------------------------------
    @staticmethod
    def _quota(r: Quota) -> QuotaRecord:
        return QuotaRecord(r.id, r.project, r.resource, r.hard_limit, r.created_at, r.updated_at)

    def add_quota(self, project: str, resource: str, hard_limit: int) -> QuotaRecord:
        try:
            with self.session() as s:
                found = s.scalars(
                    select(Quota).where(Quota.project == project, Quota.resource == resource)
                ).first()
                if found is not None:
                    raise AlreadyExists(f"a quota of {resource} for project {project} exists")
                row = Quota(project=project, resource=resource, hard_limit=hard_limit)
                s.add(row)
                s.flush()
                return self._quota(row)
        except IntegrityError as err:
            raise AlreadyExists(f"a quota of {resource} for project {project} exists") from err

    def set_quota(self, project: str, resource: str, hard_limit: int) -> QuotaRecord:
        with self.session() as s:
            row = s.scalars(
                select(Quota).where(Quota.project == project, Quota.resource == resource)
            ).first()
            if row is None:
                raise NotFound(f"no quota of {resource} for project {project}")
            row.hard_limit = hard_limit
            row.updated_at = utcnow()
            return self._quota(row)

    def quota(self, project: str, resource: str) -> QuotaRecord | None:
        with self.session() as s:
            row = s.scalars(
                select(Quota).where(Quota.project == project, Quota.resource == resource)
            ).first()
            return self._quota(row) if row else None

    def quotas(self, project: str | None = None) -> list[QuotaRecord]:
        with self.session() as s:
            query = select(Quota).where(visible(Quota.project, project)).order_by(Quota.id)
            return [self._quota(r) for r in s.scalars(query)]

    def delete_quota(self, project: str, resource: str) -> bool:
        with self.session() as s:
            return changed(
                s.execute(delete(Quota).where(Quota.project == project, Quota.resource == resource))
            )

    # -- admission (quotas, atomically) -----------------------------------------------------
    def ensure_admission_row(self, project: str) -> None:
        try:
            with self.session() as s:
                if s.get(Admission, project) is None:
                    s.add(Admission(project=project, serial=0))
        except IntegrityError:
            pass  # another process made it first: that is all we wanted

    @staticmethod
    def count_after_lock(s: Session, project: str) -> int:
        """In a create's transaction: lock the project's admission row, then count its
        clusters (the new one included). Concurrent creates of one project queue on the
        row lock, so each sees the others that committed before it."""
        s.execute(
            update(Admission)
            .where(Admission.project == project)
            .values(serial=Admission.serial + 1)
        )
        return int(
            s.scalar(select(func.count()).select_from(Cluster).where(Cluster.project == project))
            or 0
        )

    # -- per-cluster CAs -------------------------------------------------------------------
    def put_ca(self, s: Session, ca: CARecord) -> None:
        """Record a cluster's CA in the caller's transaction (the cluster's create)."""
        s.add(
            ClusterCA(
                cluster=ca.cluster,
                ca_pem=ca.ca_pem,
                ca_key=ca.ca_key,
                client_pem=ca.client_pem,
                client_key=ca.client_key,
            )
        )

    def ca(self, cluster: str) -> CARecord | None:
        with self.session() as s:
            row = s.get(ClusterCA, cluster)
            if row is None:
                return None
            return CARecord(row.cluster, row.ca_pem, row.ca_key, row.client_pem, row.client_key)

    # -- serve processes ----------------------------------------------------------------------
    def beat(
        self, name: str, host: str, pid: int, roles: str, binary: str = "flotte-serve"
    ) -> None:
        """Record that a serve process is alive (called at start and then periodically)."""
        now = utcnow()
        try:
            with self.session() as s:
                row = s.scalars(select(ServeProcess).where(ServeProcess.name == name)).first()
                if row is None:
                    s.add(
                        ServeProcess(
                            name=name,
                            host=host,
                            pid=pid,
                            roles=roles,
                            binary=binary,
                            created_at=now,
                            heartbeat_at=now,
                            report_count=1,
                        )
                    )
                else:
                    row.host, row.pid, row.roles, row.heartbeat_at = host, pid, roles, now
                    row.report_count = (row.report_count or 0) + 1
        except IntegrityError:
            self.beat(name, host, pid, roles, binary)  # a racing first beat: update it

    def processes(self) -> list[ProcessRecord]:
        with self.session() as s:
            return [
                ProcessRecord(
                    r.id,
                    r.name,
                    r.host,
                    r.binary,
                    r.roles,
                    r.pid,
                    r.disabled,
                    r.disabled_reason,
                    r.report_count,
                    r.created_at,
                    r.heartbeat_at,
                )
                for r in s.scalars(select(ServeProcess).order_by(ServeProcess.id))
            ]
