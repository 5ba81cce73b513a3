"""The requests of flotte serve, and how a worker runs each one.

The API never runs infrastructure: it validates a request, records the desired state
(a new cluster, a node count, a node group) and submits one of ``KINDS`` with a
JSON-safe payload; a worker calls ``run``. Every request converges from what is
recorded, so running it again after a crash finishes the job and never does it twice:

- ``cluster.create``: resume the recorded cluster's create (nothing is rolled back on
  failure, as in Magnum: the cluster stays CREATE_FAILED, with the reason, until it is
  deleted, and its delete removes everything);
- ``cluster.update``, ``cluster.resize``, ``nodegroup.create|update|delete``: converge
  the cluster to its recorded spec (``nodes_to_remove`` first when shrinking);
- ``cluster.delete``: delete it, then its CA files.

Credentials never travel in a payload: ``attach`` gives the Service an option store that
reads a project cluster's driver options from the project's sealed account, and the
cluster's own CA is written out before its request runs.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flotte.errors import Busy, FlotteError, NotFound, UsageError
from flotte.identity import cluster_ca
from flotte.identity.accounts import Accounts, split_defaults
from flotte.identity.vault import Vault
from flotte.serve_settings import ServeSettings
from flotte.service.options import OptionStore
from flotte.service.views import swarm_health
from flotte.state.owned import OwnedStore
from flotte.state.records import ClusterRecord
from flotte.state.status import (
    CREATE_FAILED,
    CREATE_IN_PROGRESS,
    DELETE_FAILED,
    DELETE_IN_PROGRESS,
    UPDATE_COMPLETE,
    UPDATE_FAILED,
    UPDATE_IN_PROGRESS,
)
from flotte.state.tenancy import TenancyStore

if TYPE_CHECKING:
    from flotte.service import Service

KINDS = (
    "cluster.create",
    "cluster.update",
    "cluster.delete",
    "cluster.resize",
    "nodegroup.create",
    "nodegroup.update",
    "nodegroup.delete",
)
FAILED = {
    CREATE_IN_PROGRESS: CREATE_FAILED,
    UPDATE_IN_PROGRESS: UPDATE_FAILED,
    DELETE_IN_PROGRESS: DELETE_FAILED,
}
LOCK_WAIT = 30.0  # seconds a request waits for a cluster lock before raising Busy


@dataclass(frozen=True)
class Serving:
    """What a Service needs to run project requests: the sealed secrets and where."""

    vault: Vault
    tenancy: TenancyStore
    owned: OwnedStore
    accounts: Accounts


_attached: weakref.WeakKeyDictionary[Service, Serving] = weakref.WeakKeyDictionary()


class ProjectOptions(OptionStore):
    """Secret options of a project's cluster come from its project's accounts (sealed in
    the database), never from a file; anything else is the installation's usual files."""

    def __init__(self, inner: OptionStore, svc: Service, serving: Serving) -> None:
        super().__init__(inner.root)
        self._svc = svc
        self._serving = serving

    def _project_cluster(self, scope: str, name: str) -> ClusterRecord | None:
        if scope != "clusters":
            return None
        found = self._svc.store.find_cluster(name)
        return found if found is not None and found.project else None

    def load(self, scope: str, name: str) -> dict[str, Any]:
        cluster = self._project_cluster(scope, name)
        if cluster is None:
            return super().load(scope, name)
        return account_options(self._serving, cluster)

    def save(self, scope: str, name: str, secret: Mapping[str, Any]) -> None:
        if self._project_cluster(scope, name) is None:
            super().save(scope, name, secret)  # a project's secrets stay in its account


def account_options(serving: Serving, cluster: ClusterRecord) -> dict[str, Any]:
    """The forced options of the project's account of each driver the cluster uses."""
    projects = [str(cluster.project)]
    name = serving.owned.cluster_magnum(cluster.name).get("project_name")
    if isinstance(name, str) and name:
        projects.append(name)  # Keystone mode: an account may be kept under the name
    out: dict[str, Any] = {}
    used = {cluster.spec.driver, *(g.driver for g in cluster.spec.nodegroups if g.driver)}
    for driver in sorted(used):
        options = serving.accounts.options(projects, driver)
        if options:
            out.update(split_defaults(driver, options)[1])
    return out


def attach(svc: Service, settings: ServeSettings | None = None) -> Serving:
    """Make ``svc`` able to run project requests (once; later calls return the same)."""
    found = _attached.get(svc)
    if found is not None:
        return found
    settings = settings or ServeSettings(home=svc.paths.data)
    vault = Vault.from_file(settings.key_file)
    tenancy = TenancyStore(svc.store)
    owned = OwnedStore(svc.store)
    serving = Serving(vault, tenancy, owned, Accounts(tenancy, vault))
    svc.options = ProjectOptions(svc.options, svc, serving)
    _attached[svc] = serving
    return serving


def write_ca(svc: Service, serving: Serving, cluster: str) -> None:
    """Write the cluster's own CA where ``Installation.ca_of`` finds it (if it has one)."""
    record = serving.tenancy.ca(cluster)
    if record is not None:
        cluster_ca.materialize(record, serving.vault, svc.paths.cluster_ca(cluster))


async def _patiently(op: Callable[[], Awaitable[Any]]) -> Any:
    """Run a use case, waiting while another request holds the cluster's lock."""
    deadline = time.monotonic() + LOCK_WAIT
    while True:
        try:
            return await op()
        except Busy:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def _record_health(svc: Service, name: str) -> None:
    cluster = svc.store.find_cluster(name)
    if cluster is None or cluster.spec.no_provision:
        return
    nodes = svc.store.nodes(cluster=name)
    health, listed = await swarm_health(svc, nodes)
    reason = {str(n.get("hostname", "?")): str(n.get("state", "?")) for n in listed}
    svc.store.set_cluster(name, health_status=health, health_status_reason=reason)


def _failed(svc: Service, name: str, err: BaseException) -> None:
    """Record why a request failed if the use case stopped before saying so."""
    cluster = svc.store.find_cluster(name)
    if cluster is None or cluster.status not in FAILED:
        return
    reason = str(err) if isinstance(err, FlotteError) else f"{type(err).__name__}: {err}"
    status = FAILED[cluster.status]
    # one transaction: a kill between two would leave groups in progress under a failure
    svc.store.set_status(name, status=status, status_reason=reason, group_reason=reason)


async def run(svc: Service, kind: str, payload: dict[str, Any]) -> None:
    """Run one request; raises FlotteError for a failure the cluster's status records."""
    if kind not in KINDS:
        raise UsageError(f"unknown request {kind!r}: one of {', '.join(KINDS)}")
    name = payload.get("cluster")
    if not isinstance(name, str) or not name:
        raise UsageError(f"request {kind} names no cluster")
    serving = attach(svc)
    if svc.store.find_cluster(name) is None:
        return  # deleted meanwhile: nothing is left to do
    write_ca(svc, serving, name)
    try:
        if kind == "cluster.create":
            await _patiently(lambda: _create(svc, name))
        elif kind == "cluster.delete":
            await _patiently(lambda: svc.clusters.delete(name))
            cluster_ca.forget(svc.paths.cluster_ca(name))
            return
        else:
            await _patiently(lambda: _converge(svc, name, payload))
    except NotFound:
        if svc.store.find_cluster(name) is None:
            return  # deleted while waiting
        raise
    except Exception as err:  # not a cancellation: the job is then resumed, not failed
        _failed(svc, name, err)
        raise
    await _record_health(svc, name)


async def _create(svc: Service, name: str) -> None:
    cluster = svc.store.cluster(name)
    if cluster.status != CREATE_IN_PROGRESS and cluster.status != CREATE_FAILED:
        return  # done already (a job run again after its worker died at the very end)
    await svc.clusters.create(cluster.spec, rollback=False)


async def _converge(svc: Service, name: str, payload: Mapping[str, Any]) -> None:
    remove = [str(n) for n in payload.get("nodes_to_remove") or ()]
    groups = payload.get("groups")
    touched = [str(g) for g in groups] if isinstance(groups, list) else None
    await svc.clusters.change(name, lambda spec: spec, remove=remove, touched=touched)
    cluster = svc.store.cluster(name)
    if cluster.status == UPDATE_IN_PROGRESS:  # nothing had to run
        svc.store.set_status(
            name, status=UPDATE_COMPLETE, status_reason="up to date", groups=touched
        )
