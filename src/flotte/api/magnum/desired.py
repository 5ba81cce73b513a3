"""What the API records before it answers: a new cluster (spec, project, CA, quota
admission, in one transaction), a cluster's new desired spec, or its move to
DELETE_IN_PROGRESS, each with the job a worker runs to carry it out
(``service.requests``) in the same transaction.

A cluster changes only from a settled status (CREATE_COMPLETE, UPDATE_COMPLETE,
UPDATE_FAILED): the move to UPDATE_IN_PROGRESS is one conditional UPDATE, so two
concurrent changes cannot both be accepted; the loser gets a 409. That UPDATE, the new
spec, the node groups' statuses and the job are one transaction (``Store.claim_desired``),
as a create's rows are (``Store.add_cluster``). Recorded apart, a process killed between
the change and its job left the cluster ``*_IN_PROGRESS`` with nothing to finish it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from flotte.api.context import ApiContext, JobQueue
from flotte.api.errors import ApiError, Conflict
from flotte.api.magnum.common import with_unique_name
from flotte.api.magnum.lookup import one_template
from flotte.api.magnum.models import ClusterCreate
from flotte.api.magnum.templates import FLOTTE_LABELS, check_coe
from flotte.identity import cluster_ca
from flotte.identity.accounts import split_defaults
from flotte.identity.principal import Forbidden, Principal
from flotte.jobs.base import Jobs, NewJob
from flotte.service import options as opts
from flotte.service.resolve import build
from flotte.specs import MASTER_GROUP, WORKER_GROUP, ClusterSpec, NodeGroupSpec
from flotte.state.owned import ServeCluster, ServeTemplate
from flotte.state.records import ClusterRecord
from flotte.state.spec_rows import claim_status
from flotte.state.status import (
    CREATE_COMPLETE,
    CREATE_FAILED,
    CREATE_IN_PROGRESS,
    DELETE_FAILED,
    DELETE_IN_PROGRESS,
    UPDATE_COMPLETE,
    UPDATE_FAILED,
    UPDATE_IN_PROGRESS,
)

SETTLED = (CREATE_COMPLETE, UPDATE_COMPLETE, UPDATE_FAILED)
DELETABLE = (CREATE_COMPLETE, CREATE_FAILED, UPDATE_COMPLETE, UPDATE_FAILED, DELETE_FAILED)
# Magnum fields of a cluster that override the template's, as driver options
CLUSTER_FIELDS = {
    "keypair": "keypair_id",
    "fixed_network": "fixed_network",
    "fixed_subnet": "fixed_subnet",
    "floating_ip_enabled": "floating_ip_enabled",
}
MAGNUM_KEPT = (
    "keypair",
    "docker_volume_size",
    "master_flavor_id",
    "flavor_id",
    "fixed_network",
    "fixed_subnet",
    "discovery_url",
    "merge_labels",
    "master_lb_enabled",
)


def _truthy(value: str | None) -> bool:
    return str(value or "").lower() in ("1", "true", "yes")


def driver_options(ctx: ApiContext, who: Principal, driver: str) -> dict[str, Any]:
    """The defaults of the caller's account for ``driver`` (403 when it has none and
    the driver needs one)."""
    account = ctx.serving.accounts.options(who.projects, driver)
    if account is None:
        if driver in ctx.settings.open_drivers:
            return {}
        raise Forbidden(
            f"project {who.project_name or who.project_id} has no account for the {driver} "
            f"driver: an admin registers one with 'flotte account add --project "
            f"{who.project_name or who.project_id} --driver {driver} ...'"
        )
    return split_defaults(driver, account)[0]


def create_spec(
    ctx: ApiContext, who: Principal, body: ClusterCreate, internal: str, template: ServeTemplate
) -> ClusterSpec:
    """The spec a create request makes (also the web page's plan preview): the template,
    the project's account defaults for its driver, the body's counts, flavors and labels."""
    tpl = template.record
    check_coe(tpl.spec.coe)
    driver = tpl.spec.driver
    defaults = driver_options(ctx, who, driver)
    given = dict(body.labels or {})
    tpl_labels = template.magnum.get("labels") or {}
    no_provision = _truthy(given.get("no_provision", tpl_labels.get("no_provision")))
    spec, _ = ctx.svc.resolve(
        internal,
        template=tpl.name,
        master_count=body.master_count,
        node_count=body.node_count,
        labels={k: v for k, v in given.items() if k not in FLOTTE_LABELS},
        timeout_min=float(body.create_timeout or 60),
        no_provision=no_provision,
    )
    keys = opts.field_keys(driver)
    options = {**opts.only([driver], defaults), **spec.options}
    for field, template_field in CLUSTER_FIELDS.items():
        value = getattr(body, field)
        if value is not None and keys.get(template_field):
            options[keys[template_field]] = value
    groups = []
    for group in spec.nodegroups:
        data = group.model_dump()
        if body.docker_volume_size is not None:
            data["docker_volume_size"] = body.docker_volume_size
        if group.name == WORKER_GROUP and body.flavor_id:
            data["flavor_id"] = body.flavor_id
        if group.name == MASTER_GROUP and body.master_flavor_id:
            data["flavor_id"] = body.master_flavor_id
        groups.append(data)
    return build(ClusterSpec, {**spec.model_dump(), "options": options, "nodegroups": groups})


async def create_cluster(
    ctx: ApiContext, jobs: JobQueue, who: Principal, body: ClusterCreate
) -> ClusterRecord:
    """Record a new cluster of the caller's project and submit its create."""
    template = one_template(ctx.serving.owned, who, body.cluster_template_id)
    display = body.name or f"cluster-{secrets.token_hex(4)}"
    magnum: dict[str, Any] = {
        k: getattr(body, k) for k in MAGNUM_KEPT if getattr(body, k) is not None
    }
    magnum.update(user_id=who.user_id, project_name=who.project_name)

    def add(internal: str) -> ClusterRecord:
        spec = create_spec(ctx, who, body, internal, template)
        ca = cluster_ca.new_ca(internal, ctx.serving.vault)
        admit = ctx.quotas.admit(who.project_id, who.projects)

        def hook(s: Session) -> None:
            admit(s)
            ctx.serving.tenancy.put_ca(s, ca)
            job.enqueue(s, "cluster.create", internal, who.project_id)

        return ctx.svc.store.add_cluster(
            spec,
            CREATE_IN_PROGRESS,
            project=who.project_id,
            display_name=display,
            magnum=magnum,
            admit=hook,
        )

    job = JobWith(jobs)
    record = with_unique_name(display, add)
    job.queued()
    return record


class JobWith:
    """The job of a change, written in the transaction that records the change."""

    def __init__(self, jobs: JobQueue) -> None:
        if not isinstance(jobs, Jobs):
            raise ApiError(503, "this server's job queue cannot take a change: restart it")
        self.jobs, self.job_id = jobs, ""

    def enqueue(
        self,
        s: Session,
        kind: str,
        cluster: str,
        project: str | None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        payload = {"cluster": cluster, **(extra or {})}
        try:
            self.job_id = self.jobs.enqueue(s, NewJob(kind, payload, project, cluster))
        except Exception as err:  # the transaction, and so the change, is rolled back
            raise ApiError(503, f"the request could not be queued ({err}): retry later") from err

    def queued(self) -> None:
        """Once the transaction committed: wake a worker."""
        if self.job_id:
            self.jobs.queued(self.job_id)


def settled(cluster: ServeCluster) -> None:
    status = cluster.record.status
    if status not in SETTLED:
        raise Conflict(
            f"Cluster {cluster.display_name} is {status}: it can change once it is "
            f"{' or '.join(SETTLED)}"
            + (" (delete it and create it again)" if status == CREATE_FAILED else "")
        )


async def change_cluster(
    ctx: ApiContext,
    jobs: JobQueue,
    cluster: ServeCluster,
    kind: str,
    edit: Callable[[ClusterSpec], ClusterSpec],
    *,
    groups: list[str],
    nodes_to_remove: list[str] | None = None,
    new_group_status: str | None = None,
) -> ClusterRecord:
    """Record ``edit(desired spec)`` and submit ``kind`` to converge to it.

    The move to UPDATE_IN_PROGRESS, the new spec and the statuses of ``groups`` (or
    ``new_group_status``) are one transaction: a kill or an error leaves the cluster
    either as it was or changed and saying so, never a changed spec under statuses that
    say nothing is under way."""
    settled(cluster)
    edit(cluster.record.spec)  # a bad change is a 400 before anything moves
    job = JobWith(jobs)
    name, project = cluster.record.name, cluster.record.project
    extra = {"groups": groups, "nodes_to_remove": nodes_to_remove or []}
    record = ctx.svc.store.claim_desired(
        name,
        SETTLED,
        edit,
        status=UPDATE_IN_PROGRESS,
        groups=groups,
        group_status=new_group_status,
        also=lambda s: job.enqueue(s, kind, name, project, extra),
    )
    if record is None:
        raise Conflict(f"Cluster {cluster.display_name} is being changed: retry when it is done")
    job.queued()
    return record


def delete_cluster(ctx: ApiContext, jobs: JobQueue, cluster: ServeCluster) -> None:
    """Move the cluster to DELETE_IN_PROGRESS and queue its delete, in one transaction.

    A cluster still being created or updated keeps its status: its delete is queued
    behind that request (a cluster's jobs run in order). One already being deleted has
    its job (written with that status), so nothing is queued twice."""
    record = cluster.record
    if record.status == DELETE_IN_PROGRESS:
        return
    job = JobWith(jobs)
    with ctx.svc.store.session() as s:
        claimed = claim_status(s, record.name, DELETABLE, DELETE_IN_PROGRESS)
        if record.status in DELETABLE and not claimed:
            raise Conflict(
                f"Cluster {cluster.display_name} is being changed: retry when it is done"
            )
        job.enqueue(s, "cluster.delete", record.name, record.project)
    job.queued()


def resized(group: str, count: int) -> Callable[[ClusterSpec], ClusterSpec]:
    def edit(spec: ClusterSpec) -> ClusterSpec:
        if not spec.has_group(group):
            raise ApiError(404, f"NodeGroup {group} could not be found")
        data = spec.group(group).model_dump()
        data["node_count"] = count
        return spec.with_group(build(NodeGroupSpec, data, f"node group {group}"))

    return edit


def node_names(cluster: ServeCluster, nodes: list[Any], group: str, wanted: list[str]) -> list[str]:
    """``nodes_to_remove`` (node names, provider ids or addresses) as node names."""
    out = []
    members = [n for n in nodes if n.group == group]
    for item in wanted:
        match = next(
            (
                n.name
                for n in members
                if item in (n.name, n.address, n.record.provider_id if n.record else None)
            ),
            None,
        )
        if match is None:
            raise ApiError(
                400, f"node {item} is not in node group {group} of cluster {cluster.display_name}"
            )
        out.append(match)
    return out
