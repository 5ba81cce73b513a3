"""The cluster list of the page: one row per cluster the viewer sees, from columns only.

A list of 1,000 clusters must render in milliseconds, so nothing here decodes a whole
spec per cluster: two queries (clusters, their node groups' counts) read columns and
two JSON fields. The rows of a project are kept until its clusters or node groups
change: each list first reads one stamp (how many rows, the latest ``updated_at``) from
the indexes, and builds the rows again only when the stamp moved. The cost per day is the catalog's estimate of the cluster's plan
(``service.pricing``); clusters made from one template with the same counts cost the
same, so it is computed once per (template, flavors, counts) and remembered.
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup, escape
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from flotte.service import Service
from flotte.service.pricing import group_costs, total
from flotte.state.owned import cluster_list, project_clusters
from flotte.state.tables import Cluster, NodeGroup, Template

PRICE_CACHE = 4096
ROWS_CACHE = 256  # projects whose rows this process keeps
SORTS = ("created", "name", "status", "driver", "nodes", "cost")


@dataclass(frozen=True)
class ClusterRow:
    name: str  # in the installation (nodes and resources derive from it)
    uuid: str
    display_name: str
    project: str | None
    status: str
    health: str
    driver: str
    template: str
    created_at: dt.datetime
    groups: tuple[tuple[str, int], ...]
    eur_day: float | None

    @property
    def nodes(self) -> int:
        return sum(count for _, count in self.groups)


_prices: OrderedDict[tuple[Any, ...], float | None] = OrderedDict()
_rows: OrderedDict[str | None, tuple[tuple[Any, ...], list[ClusterRow]]] = OrderedDict()


def _price(svc: Service, name: str, key: tuple[Any, ...]) -> float | None:
    if key in _prices:
        _prices.move_to_end(key)
        return _prices[key]
    try:
        value = total(group_costs(svc.store.cluster(name).spec))
    except Exception:  # a cost is advice shown beside the list; it never breaks the list
        value = None
    _prices[key] = value
    while len(_prices) > PRICE_CACHE:
        _prices.popitem(last=False)
    return value


def _stamp(s: Session, project: str | None) -> tuple[Any, ...]:
    mine = project_clusters(project)
    clusters = s.execute(
        select(func.count(), func.max(Cluster.updated_at)).select_from(Cluster).where(*mine)
    ).one()
    groups = s.execute(
        select(func.count(), func.max(NodeGroup.updated_at))
        .join(Cluster, Cluster.name == NodeGroup.cluster)
        .where(*mine)
    ).one()
    return (*clusters, *groups)


def cluster_rows(svc: Service, project: str | None) -> list[ClusterRow]:
    """Every cluster of ``project`` (None: of every project), oldest first."""
    with svc.store.session() as s:
        stamp = (id(svc), *_stamp(s, project))
        kept = _rows.get(project)
        if kept is not None and kept[0] == stamp:
            _rows.move_to_end(project)
            return kept[1]
        counts: dict[str, list[tuple[str, int]]] = {}
        groups = (
            select(NodeGroup.cluster, NodeGroup.name, NodeGroup.spec["node_count"].as_integer())
            .join(Cluster, Cluster.name == NodeGroup.cluster)
            .where(*project_clusters(project))
            .order_by(NodeGroup.cluster, NodeGroup.position)
        )
        for cluster, group, count in s.execute(groups):
            counts.setdefault(cluster, []).append((group, int(count or 0)))
        query = cluster_list(
            project,
            Cluster.driver,
            Cluster.created_at,
            Cluster.template,
            Template.display_name,
            Cluster.magnum["flavor_id"].as_string(),
            Cluster.magnum["master_flavor_id"].as_string(),
        )
        found = list(s.execute(query))
    rows = []
    for r in found:
        shape = tuple(counts.get(r[0], ()))
        key = (r[8], r[6], r[10], r[11], shape)
        rows.append(
            ClusterRow(
                name=r[0],
                uuid=r[1],
                display_name=r[2] or r[0],
                project=r[3],
                status=r[4],
                health=r[5] or "UNKNOWN",
                driver=r[6],
                template=r[9] or r[8] or "",
                created_at=r[7],
                groups=shape,
                eur_day=_price(svc, r[0], key),
            )
        )
    _rows[project] = (stamp, rows)
    while len(_rows) > ROWS_CACHE:
        _rows.popitem(last=False)
    return rows


@dataclass(frozen=True)
class Filters:
    q: str = ""
    status: str = ""
    driver: str = ""
    sort: str = "created"
    desc: bool = False

    def keep(self, row: ClusterRow) -> bool:
        if self.q and self.q.lower() not in row.display_name.lower():
            return False
        if self.status and not row.status.startswith(self.status.upper()):
            return False
        return not self.driver or row.driver == self.driver


_KEYS: dict[str, Callable[[ClusterRow], Any]] = {
    "created": lambda r: (r.created_at, r.name),
    "name": lambda r: r.display_name.lower(),
    "status": lambda r: r.status,
    "driver": lambda r: r.driver,
    "nodes": lambda r: r.nodes,
    "cost": lambda r: (r.eur_day is None, r.eur_day or 0.0),
}


def select_rows(rows: list[ClusterRow], f: Filters) -> list[ClusterRow]:
    kept = [r for r in rows if f.keep(r)]
    kept.sort(key=_KEYS.get(f.sort, _KEYS["created"]), reverse=f.desc)
    return kept


def rows_html(rows: list[ClusterRow], projects: dict[str, str] | None) -> Markup:
    """The list's table rows. Written here rather than in the template because it is
    the one loop that runs 1,000 times a page: about 3 times faster than Jinja's."""
    now = dt.datetime.now(dt.UTC)
    out = []
    for r in rows:
        groups = " · ".join(f"{escape(g.removeprefix('default-'))} {c}" for g, c in r.groups)
        owner = ""
        if projects is not None:
            owner = f'<td class="wide">{escape(projects.get(r.project or "", r.project or ""))}'
        out.append(
            f'<tr><td><a href="/ui/clusters/{escape(r.uuid)}">{escape(r.display_name)}</a>'
            f'<td class="s-{escape(r.status[-8:].lower())}">{escape(r.status)}'
            f'<td class="wide">{escape(r.health)}<td>{groups}<td class="wide">{escape(r.driver)}'
            f'<td class="num">{eur(r.eur_day)}<td class="wide">{age(r.created_at, now)}{owner}</tr>'
        )
    return Markup("\n".join(out))


def eur(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:,.{digits}f}".replace(",", " ")


def age(created: dt.datetime | None, now: dt.datetime | None = None) -> str:
    """How long ago, in the largest unit that fits: 40 s, 12 min, 5 h, 3 d."""
    if created is None:
        return ""
    if created.tzinfo is None:
        created = created.replace(tzinfo=dt.UTC)
    seconds = max(0, int(((now or dt.datetime.now(dt.UTC)) - created).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"
