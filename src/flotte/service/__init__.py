"""Use cases shared by the CLI, the API and ``watch``.

``Service`` is one installation with every use case on it::

    svc = Service(events=progress)
    spec, secrets = svc.resolve(name, template="lab-swarm", node_count=3)
    await svc.clusters.create(spec, secrets, on_plan=print_plan)

Each use case validates its input first (one clear error, nothing changed), takes the
lock of the object it changes, plans the change with the pure planner, and runs that
plan through the one lifecycle (``lifecycle.Runner``).
"""

from __future__ import annotations

from functools import cached_property

from flotte.service.clusters import Clusters
from flotte.service.installation import Installation
from flotte.service.machines import Machines
from flotte.service.nodegroups import NodeGroups
from flotte.service.overflow import Overflow
from flotte.service.resolve import cluster_spec
from flotte.service.templates import Templates

__all__ = ["Service"]


class Service(Installation):
    """An installation and its use cases."""

    resolve = cluster_spec

    @cached_property
    def machines(self) -> Machines:
        return Machines(self)

    @cached_property
    def clusters(self) -> Clusters:
        return Clusters(self)

    @cached_property
    def nodegroups(self) -> NodeGroups:
        return NodeGroups(self.clusters)

    @cached_property
    def overflow(self) -> Overflow:
        return Overflow(self.clusters)

    @cached_property
    def templates(self) -> Templates:
        return Templates(self)
