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
from typing import TYPE_CHECKING, Any

from flotte.service.installation import Installation

if TYPE_CHECKING:
    from flotte.service.clusters import Clusters
    from flotte.service.machines import Machines
    from flotte.service.nodegroups import NodeGroups
    from flotte.service.overflow import Overflow
    from flotte.service.templates import Templates
    from flotte.specs import ClusterSpec

__all__ = ["Service"]


class Service(Installation):
    """An installation and its use cases.

    Each use case's module is imported when first used: ``machine ls`` need not load
    what creates, resizes or overflows clusters.
    """

    def resolve(self, name: str, **kwargs: Any) -> tuple[ClusterSpec, dict[str, Any]]:
        """``resolve.cluster_spec`` on this installation."""
        from flotte.service.resolve import cluster_spec

        return cluster_spec(self, name, **kwargs)

    @cached_property
    def machines(self) -> Machines:
        from flotte.service.machines import Machines

        return Machines(self)

    @cached_property
    def clusters(self) -> Clusters:
        from flotte.service.clusters import Clusters

        return Clusters(self)

    @cached_property
    def nodegroups(self) -> NodeGroups:
        from flotte.service.nodegroups import NodeGroups

        return NodeGroups(self.clusters)

    @cached_property
    def overflow(self) -> Overflow:
        from flotte.service.overflow import Overflow

        return Overflow(self.clusters)

    @cached_property
    def templates(self) -> Templates:
        from flotte.service.templates import Templates

        return Templates(self)
