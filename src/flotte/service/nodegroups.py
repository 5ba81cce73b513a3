"""Node group use cases (Magnum's NodeGroup): create, update, delete, list.

A node group is a part of the cluster's desired spec; each change here is a new spec
handed to ``Clusters.change``, so it is planned, shown and run like any other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from flotte.errors import AlreadyExists, NotFound, UsageError
from flotte.planner import Plan
from flotte.service import options as opts
from flotte.service.clusters import Clusters, OnPlan, _quiet
from flotte.service.resolve import build, check_driver
from flotte.specs import MASTER_GROUP, WORKER_GROUP, ClusterSpec, NodeGroupSpec
from flotte.state.records import NodeGroupRecord
from flotte.state.status import READY

DEFAULT_GROUPS = (MASTER_GROUP, WORKER_GROUP)


class NodeGroups:
    def __init__(self, clusters: Clusters) -> None:
        self.clusters = clusters
        self.store = clusters.store

    def of(self, cluster: str) -> list[NodeGroupRecord]:
        return list(self.store.cluster(cluster).nodegroups)

    def get(self, cluster: str, name: str) -> NodeGroupRecord:
        for group in self.store.cluster(cluster).nodegroups:
            if group.name == name or group.uuid == name:
                return group
        raise NotFound(
            f"cluster {cluster!r} has no node group {name!r}",
            hint=f"see 'flotte cluster nodegroup list {cluster}'",
        )

    async def create(
        self,
        cluster: str,
        name: str,
        *,
        node_count: int = 1,
        role: str = "worker",
        min_node_count: int | None = None,
        max_node_count: int | None = None,
        driver: str | None = None,
        flavor_id: str | None = None,
        image_id: str | None = None,
        labels: Mapping[str, str] | None = None,
        hosts: Sequence[str] = (),
        flags: Mapping[str, Any] | None = None,
        dry_run: bool = False,
        on_plan: OnPlan = _quiet,
    ) -> Plan:
        if role not in ("master", "worker"):
            raise UsageError(f"--role {role!r}: a node group's role is master or worker")
        record = self.store.cluster(cluster)
        current = record.spec
        if current.has_group(name) and not self._unfinished(cluster, name):
            self.clusters.settle(cluster)  # this create, killed before its status?
            raise AlreadyExists(f"node group {name!r} already exists in cluster {cluster!r}")
        if driver:
            check_driver(driver)
        drv = driver or current.driver
        public, secret = opts.split([drv], opts.only([drv], flags or {}))
        group = build(
            NodeGroupSpec,
            {
                "name": name,
                "role": role,
                "node_count": node_count,
                "min_node_count": min_node_count or 0,
                "max_node_count": max_node_count,
                "driver": driver if driver and driver != current.driver else None,
                "flavor_id": flavor_id,
                "image_id": image_id,
                "labels": dict(labels or {}),
                "hosts": tuple(hosts),
                "options": public,
            },
            f"node group {name}",
        )

        def edit(spec: ClusterSpec) -> ClusterSpec:
            if spec.has_group(name):
                if spec.group(name) != group:
                    raise AlreadyExists(
                        f"node group {name!r} already exists in cluster {cluster!r}"
                    )
                return spec  # the same create, killed or failed before: finish it
            return spec.with_group(group)

        return await self.clusters.change(
            cluster, edit, secrets=secret, dry_run=dry_run, on_plan=on_plan, touched=[name]
        )

    async def update(
        self,
        cluster: str,
        name: str,
        *,
        node_count: int | None = None,
        min_node_count: int | None = None,
        max_node_count: int | None = None,
        nodes_to_remove: Sequence[str] = (),
        dry_run: bool = False,
        on_plan: OnPlan = _quiet,
    ) -> Plan:
        group_name = self.get(cluster, name).name

        def edit(spec: ClusterSpec) -> ClusterSpec:
            data = spec.group(group_name).model_dump()
            for key, value in (
                ("node_count", node_count),
                ("min_node_count", min_node_count),
                ("max_node_count", max_node_count),
            ):
                if value is not None:
                    data[key] = value
            return spec.with_group(build(NodeGroupSpec, data, f"node group {group_name}"))

        return await self.clusters.change(
            cluster,
            edit,
            remove=nodes_to_remove,
            dry_run=dry_run,
            on_plan=on_plan,
            touched=[group_name],
        )

    def _unfinished(self, cluster: str, group: str) -> bool:
        """A change of ``group`` was recorded but did not finish (killed, or failed): the
        group's nodes are not what its spec asks. Running the same command again must
        finish it, not answer that the group exists (or is gone) and leave it so. The
        status is no guide: a kill between recording the spec and the status leaves it
        ``*_COMPLETE``. Nor is the count alone: a node is recorded (``creating``) before
        its server is asked for, so a kill then leaves the right count of unmade nodes."""
        spec = self.store.cluster(cluster).spec
        members = [n for n in self.store.nodes(cluster=cluster) if n.group == group]
        wanted = spec.group(group).node_count if spec.has_group(group) else 0
        return len(members) != wanted or any(n.status != READY for n in members)

    async def delete(
        self, cluster: str, name: str, *, dry_run: bool = False, on_plan: OnPlan = _quiet
    ) -> Plan:
        record = self.store.cluster(cluster)
        if not record.spec.has_group(name) and self._unfinished(cluster, name):
            # its delete was recorded, then killed: remove the nodes it left
            return await self.clusters.change(
                cluster, lambda spec: spec, dry_run=dry_run, on_plan=on_plan, touched=[]
            )
        if not record.spec.has_group(name) and not any(g.uuid == name for g in record.nodegroups):
            self.clusters.settle(cluster)  # this delete, killed before its status?
        group = self.get(cluster, name)
        if group.name in DEFAULT_GROUPS:
            raise UsageError(
                f"{group.name} is a default node group of {cluster!r} and cannot be deleted",
                hint=f"resize it instead: flotte cluster resize {cluster} --nodegroup "
                f"{group.name} --node-count N",
            )
        return await self.clusters.change(
            cluster,
            lambda spec: spec.without_group(group.name),
            dry_run=dry_run,
            on_plan=on_plan,
            touched=[],
        )
