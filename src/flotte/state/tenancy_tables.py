"""Tables of ``flotte serve``: projects, users, driver accounts, quotas, per-cluster CAs,
the serve processes, and one row per project that serialises cluster admissions.

Secrets are never stored in clear: password hashes only, and accounts and CA keys as
blobs sealed with the installation's serve key (``identity.vault``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from flotte.state.tables import Base, utcnow


class Project(Base):
    """A standalone project (Keystone mode keeps its projects in Keystone)."""

    __tablename__ = "projects"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class User(Base):
    """A standalone user: member (or admin) of one project."""

    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    project: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    password_hash: Mapped[str] = mapped_column(Text)
    admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Account(Base):
    """A project's credentials and defaults for one driver, sealed as one blob."""

    __tablename__ = "accounts"
    project: Mapped[str] = mapped_column(String(64), primary_key=True)  # id (or Keystone name)
    driver: Mapped[str] = mapped_column(String(32), primary_key=True)
    sealed: Mapped[str] = mapped_column(Text)
    keys: Mapped[list[Any]] = mapped_column(JSON, default=list)  # option names, never values
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class Quota(Base):
    """Magnum's quota: the most clusters (``resource`` Cluster) a project may have."""

    __tablename__ = "quotas"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project: Mapped[str] = mapped_column(String(64), index=True)
    resource: Mapped[str] = mapped_column(String(32))
    hard_limit: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
    __table_args__ = (UniqueConstraint("project", "resource"),)


class Admission(Base):
    """One row per project, updated first in a cluster create's transaction: that write
    lock makes "count the project's clusters, then insert one" atomic on SQLite and
    PostgreSQL alike."""

    __tablename__ = "admissions"
    project: Mapped[str] = mapped_column(String(64), primary_key=True)
    serial: Mapped[int] = mapped_column(Integer, default=0)


class ClusterCA(Base):
    """A cluster's own CA: the certificate in clear, its key sealed; the client pair the
    service itself uses to reach the cluster's engines."""

    __tablename__ = "cluster_cas"
    cluster: Mapped[str] = mapped_column(
        ForeignKey("clusters.name", ondelete="CASCADE"), primary_key=True
    )
    ca_pem: Mapped[str] = mapped_column(Text)
    ca_key: Mapped[str] = mapped_column(Text)  # sealed
    client_pem: Mapped[str] = mapped_column(Text)
    client_key: Mapped[str] = mapped_column(Text)  # sealed
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ServeProcess(Base):
    """A running ``flotte serve`` process (Magnum's mservices): written at start and by a
    heartbeat; ``down`` when the heartbeat is older than a few intervals."""

    __tablename__ = "serve_processes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)  # host:pid (or the process name)
    host: Mapped[str] = mapped_column(String(255))
    binary: Mapped[str] = mapped_column(String(64), default="flotte-serve")
    roles: Mapped[str] = mapped_column(String(32), default="api,worker")
    pid: Mapped[int] = mapped_column(Integer, default=0)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    report_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    heartbeat_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ClusterRevision(Base):
    """A counter per project (``''``: the CLI's clusters) that a database trigger raises
    whenever one of its clusters changes (migration 0004): what a cached list checks."""

    __tablename__ = "cluster_revisions"
    scope: Mapped[str] = mapped_column(String(64), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)
