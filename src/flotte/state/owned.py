"""Clusters and templates as flotte serve's projects see them: by UUID or display name,
visible to one project (or every project, for an admin), listed from columns only.

``name`` stays the installation-wide name (nodes and cloud resources derive from it);
``display_name`` is what the project called it, ``project`` who owns it, ``magnum``
the Magnum fields flotte's specs do not carry.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, or_, select, update

from flotte.state.records import ClusterRecord, TemplateRecord
from flotte.state.rows import cluster_record, template_record
from flotte.state.store import Store
from flotte.state.tables import Cluster, NodeGroup, Template
from flotte.state.tenancy import visible
from flotte.state.tenancy_tables import ClusterRevision


@dataclass(frozen=True)
class ServeCluster:
    """A cluster as flotte serve sees it: the record, the name its users gave, Magnum's
    own fields."""

    record: ClusterRecord
    display_name: str
    magnum: dict[str, Any]
    template_uuid: str | None = None


@dataclass(frozen=True)
class ClusterBrief:
    """What a cluster list shows, read from columns only (lists must stay cheap)."""

    name: str
    uuid: str
    display_name: str
    project: str | None
    status: str
    health_status: str
    master_count: int
    node_count: int
    template_uuid: str | None
    magnum: dict[str, Any]
    create_timeout: float
    labels: dict[str, str]


@dataclass(frozen=True)
class ServeTemplate:
    record: TemplateRecord
    display_name: str
    magnum: dict[str, Any]
    updated_at: dt.datetime | None = None


def project_clusters(project: str | None) -> tuple[Any, Any]:
    """The conditions of the clusters ``project`` sees (None: every project's, an
    admin); a cluster of the CLI has no project and is no serve project's."""
    return (Cluster.project.is_not(None), visible(Cluster.project, project))


def cluster_list(project: str | None, *columns: Any) -> Select[Any]:
    """The clusters ``project`` sees, oldest first, their template joined: name, uuid,
    display name, project, status, health status, then ``columns``."""
    return (
        select(
            Cluster.name,
            Cluster.uuid,
            Cluster.display_name,
            Cluster.project,
            Cluster.status,
            Cluster.health_status,
            *columns,
        )
        .outerjoin(Template, Template.name == Cluster.template)
        .where(*project_clusters(project))
        .order_by(Cluster.created_at, Cluster.name)
    )


class OwnedStore:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.session = store.session

    def cluster_revision(self, project: str | None) -> int:
        """A number that changes whenever a cluster ``project`` sees (None: any) changes:
        kept by a database trigger, so every process's writes count."""
        n = ClusterRevision.n
        query = (
            select(func.coalesce(func.sum(n), 0))
            if project is None
            else select(n).where(ClusterRevision.scope == project)
        )
        with self.store.engine.connect() as conn:
            return int(conn.execute(query).scalar() or 0)

    def cluster_briefs(self, project: str | None) -> list[ClusterBrief]:
        # columns only, on a plain connection: no ORM objects for a list of hundreds
        with self.store.engine.connect() as s:
            query = cluster_list(
                project,
                Cluster.master_count,
                Cluster.node_count,
                Template.uuid,
                Cluster.magnum,
                # two fields of the spec, extracted by the database: decoding every
                # spec was most of a 100-cluster list's time
                Cluster.spec["create_timeout"].as_float(),
                Cluster.spec["labels"],
            )
            return [
                ClusterBrief(
                    name=r[0],
                    uuid=r[1],
                    display_name=r[2] or r[0],
                    project=r[3],
                    status=r[4],
                    health_status=r[5] or "UNKNOWN",
                    master_count=r[6],
                    node_count=r[7],
                    template_uuid=r[8],
                    magnum=dict(r[9] or {}),
                    create_timeout=float(r[10] if r[10] is not None else 60),
                    labels=dict(r[11] or {}),
                )
                for r in s.execute(query)
            ]

    def find_clusters(self, ident: str, project: str | None) -> list[ServeCluster]:
        """Clusters whose uuid, or else display name, is ``ident`` (visible to ``project``)."""
        with self.session() as s:
            base = select(Cluster).where(*project_clusters(project))
            rows = list(s.scalars(base.where(Cluster.uuid == ident)))
            if not rows:
                rows = list(s.scalars(base.where(Cluster.display_name == ident)))
            out = []
            for row in rows:
                groups = s.scalars(
                    select(NodeGroup)
                    .where(NodeGroup.cluster == row.name)
                    .order_by(NodeGroup.position)
                ).all()
                tpl = s.get(Template, row.template) if row.template else None
                out.append(
                    ServeCluster(
                        cluster_record(row, list(groups)),
                        row.display_name or row.name,
                        dict(row.magnum or {}),
                        tpl.uuid if tpl else None,
                    )
                )
            return out

    def rename_cluster(self, name: str, display_name: str) -> None:
        with self.session() as s:
            s.execute(update(Cluster).where(Cluster.name == name).values(display_name=display_name))

    def cluster_magnum(self, name: str) -> dict[str, Any]:
        with self.session() as s:
            value = s.scalar(select(Cluster.magnum).where(Cluster.name == name))
            return dict(value or {})

    def set_cluster_magnum(self, name: str, magnum: dict[str, Any]) -> None:
        with self.session() as s:
            s.execute(update(Cluster).where(Cluster.name == name).values(magnum=magnum))

    def count_clusters(self, project: str | None) -> tuple[int, int]:
        """(clusters, nodes) of ``project`` (None: every project)."""
        with self.session() as s:
            row = s.execute(
                select(
                    func.count(),
                    func.coalesce(func.sum(Cluster.master_count + Cluster.node_count), 0),
                ).where(*project_clusters(project))
            ).one()
            return int(row[0]), int(row[1])

    def templates(self, project: str | None, ident: str | None = None) -> list[ServeTemplate]:
        """Templates of ``project`` and public ones (None: all); by uuid, else name."""
        with self.session() as s:
            base = select(Template).where(Template.project.is_not(None))
            if project is not None:
                public = Template.spec["public"].as_boolean()
                base = base.where(or_(Template.project == project, public.is_(True)))
            if ident is not None:
                rows = list(s.scalars(base.where(Template.uuid == ident)))
                if not rows:
                    rows = list(s.scalars(base.where(Template.display_name == ident)))
            else:
                rows = list(s.scalars(base.order_by(Template.created_at, Template.name)))
            return [
                ServeTemplate(template_record(r), r.display_name or r.name, dict(r.magnum or {}))
                for r in rows
            ]

    def template_user(self, name: str) -> str | None:
        """The display name of a cluster made from template ``name``, if any."""
        with self.session() as s:
            row = s.execute(
                select(Cluster.display_name, Cluster.name).where(Cluster.template == name)
            ).first()
            return (row[0] or row[1]) if row else None

    def set_template(
        self, name: str, spec: dict[str, Any], magnum: dict[str, Any], display: str
    ) -> None:
        with self.session() as s:
            s.execute(
                update(Template)
                .where(Template.name == name)
                .values(spec=spec, magnum=magnum, display_name=display)
            )
