"""Table definitions. Changing one means adding an Alembic migration in ``migrations/``."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Meta(Base):
    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Template(Base):
    __tablename__ = "templates"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), default="")
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # flotte serve: the owning project, the name its users gave (``name`` is then unique
    # in the installation: display name plus a uuid suffix) and Magnum-only fields.
    project: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    display_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    magnum: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class Cluster(Base):
    __tablename__ = "clusters"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36))
    driver: Mapped[str] = mapped_column(String(32))
    coe: Mapped[str] = mapped_column(String(16))
    template: Mapped[str | None] = mapped_column(String(64), nullable=True)
    master_count: Mapped[int] = mapped_column(Integer)
    node_count: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(32))
    status_reason: Mapped[str] = mapped_column(Text, default="")
    # The desired ClusterSpec without its node groups (those are rows of nodegroups)
    # and without secret options (0600 files under secrets/).
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    shared: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # driver -> prepare()
    coe_data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # tokens, versions
    health_status: Mapped[str] = mapped_column(String(16), default="UNKNOWN")
    health_status_reason: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    project: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)  # serve
    display_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    magnum: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class NodeGroup(Base):
    """One node group of a cluster: its NodeGroupSpec, with Magnum's uuid and status."""

    __tablename__ = "nodegroups"
    uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    cluster: Mapped[str] = mapped_column(
        ForeignKey("clusters.name", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer, default=0)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(32), default="")
    status_reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
    __table_args__ = (UniqueConstraint("cluster", "name"),)


class Machine(Base):
    """A Docker host: a lone machine, or a node of a cluster (``cluster`` set)."""

    __tablename__ = "machines"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    driver: Mapped[str] = mapped_column(String(32))
    cluster: Mapped[str | None] = mapped_column(
        ForeignKey("clusters.name", ondelete="CASCADE"), nullable=True, index=True
    )
    role: Mapped[str] = mapped_column(String(16))
    group: Mapped[str] = mapped_column(String(64), default="default")
    index: Mapped[int] = mapped_column(Integer, default=0)
    host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    status: Mapped[str] = mapped_column(String(32))
    status_reason: Mapped[str] = mapped_column(Text, default="")
    # a lone machine: its desired ClusterSpec (kind machine); a node: {"engine": ...}
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    record: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # NodeRecord
    endpoint: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    shared: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # lone machines only
    # what the engine last said it is ("" until it answered): read by pages, not asked
    engine_version: Mapped[str] = mapped_column(String(64), default="", server_default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class JournalEntry(Base):
    """Intent before an infrastructure call, outcome after; read after a crash."""

    __tablename__ = "journal"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(80), index=True)  # "cluster:x" / "machine:y"
    operation: Mapped[str] = mapped_column(String(32))  # create, delete, resize...
    step: Mapped[str] = mapped_column(String(160))
    phase: Mapped[str] = mapped_column(String(16))  # intent, done, failed
    detail: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
