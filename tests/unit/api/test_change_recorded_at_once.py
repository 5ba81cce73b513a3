"""What the API records for a request is one transaction: a process killed at any point
leaves the cluster as it was, or changed and saying so.

The API used to record a change in three or four transactions (the move to
UPDATE_IN_PROGRESS, the new spec, the node groups' statuses, a new group's
CREATE_IN_PROGRESS): killed after the first, a cluster said UPDATE_IN_PROGRESS with
nothing changed; after the second, its node groups had a new size but said nothing was
under way. Rather than kill a process at each write (as
``tests/e2e/faults/test_killed_at_every_write.py`` does for the CLI), this reads the
database after every commit of the request: each of those states is what a kill right
after that commit would leave, and each must be the state before or the state after.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from api_harness import Api
from sqlalchemy import event, text
from sqlalchemy.orm import Session

from flotte.api.errors import ApiError
from flotte.api.magnum.desired import SETTLED, resized
from flotte.specs import WORKER_GROUP, ClusterSpec
from flotte.state.records import ClusterRecord
from flotte.state.status import UPDATE_IN_PROGRESS

# cluster -> (status, master_count, node_count, {group: (status, node_count)})
State = dict[str, tuple[str, int, int, dict[str, tuple[str, int]]]]


def read_state(api: Api) -> State:
    """Every cluster and node group as committed, read on a connection of its own."""
    with api.svc.store.engine.connect() as conn:
        groups: dict[str, dict[str, tuple[str, int]]] = {}
        for cluster, name, status, spec in conn.execute(
            text("SELECT cluster, name, status, spec FROM nodegroups")
        ):
            data = json.loads(spec) if isinstance(spec, str) else spec
            groups.setdefault(cluster, {})[name] = (status, int(data["node_count"]))
        return {
            name: (status, masters, workers, groups.get(name, {}))
            for name, status, masters, workers in conn.execute(
                text("SELECT name, status, master_count, node_count FROM clusters")
            )
        }


async def post(api: Api, path: str, body: Any, status: int = 202) -> None:
    r = await api.client.post(path, json=body, headers=api.h("alice"))
    assert r.status_code == status, r.text


async def patch(api: Api, path: str, body: Any) -> None:
    r = await api.client.patch(path, json=body, headers=api.h("alice"))
    assert r.status_code == 202, r.text


async def delete(api: Api, path: str) -> None:
    r = await api.client.delete(path, headers=api.h("alice"))
    assert r.status_code == 204, r.text


# Each request, given the cluster's uuid.
REQUESTS: dict[str, Callable[[Api, str], Awaitable[None]]] = {
    "cluster create": lambda api, uuid: post(
        api, "/v1/clusters", {"name": "other", "cluster_template_id": "swarm", "node_count": 1}
    ),
    "cluster resize": lambda api, uuid: post(
        api, f"/v1/clusters/{uuid}/actions/resize", {"node_count": 3}
    ),
    "cluster update": lambda api, uuid: patch(
        # the cluster's node_count counts every worker: 1 default, 1 in "extra"
        api,
        f"/v1/clusters/{uuid}",
        [{"op": "replace", "path": "/node_count", "value": 3}],
    ),
    "nodegroup create": lambda api, uuid: post(
        api, f"/v1/clusters/{uuid}/nodegroups", {"name": "big", "node_count": 2}
    ),
    "nodegroup update": lambda api, uuid: patch(
        api,
        f"/v1/clusters/{uuid}/nodegroups/extra",
        [{"op": "replace", "path": "/node_count", "value": 2}],
    ),
    "nodegroup delete": lambda api, uuid: delete(api, f"/v1/clusters/{uuid}/nodegroups/extra"),
}


@pytest.mark.parametrize("request_", sorted(REQUESTS))
async def test_a_kill_after_any_write_of_a_request_leaves_it_recorded_whole_or_not_at_all(
    api: Api, request_: str
) -> None:
    api.user("alice", "lab")
    await api.template("alice")
    uuid = await api.cluster("alice", "web", node_count=1)
    await post(api, f"/v1/clusters/{uuid}/nodegroups", {"name": "extra", "node_count": 1})
    await api.jobs.drain()
    before = read_state(api)
    # Only the request writes from here: its job waits until the worker is back.
    await api.jobs.stop()
    seen: list[State] = []

    def committed(session: Session) -> None:
        seen.append(read_state(api))

    event.listen(Session, "after_commit", committed)
    try:
        await REQUESTS[request_](api, uuid)
        after = read_state(api)
    finally:
        event.remove(Session, "after_commit", committed)
        await api.jobs.start()  # the fixture waits for every job submitted
    changed = [name for name in after if after[name] != before.get(name)]
    assert len(changed) == 1
    name = changed[0]
    status, _, _, groups = after[name]
    assert status.endswith("_IN_PROGRESS")
    if not request_.endswith("delete"):
        assert any(s.endswith("_IN_PROGRESS") for s, _ in groups.values()), groups
    torn = [state[name] for state in seen if state not in (before, after)]
    assert not torn, f"a kill could leave {torn} (before {before.get(name)}, after {after[name]})"

    await api.jobs.drain()
    assert not api.jobs.errors
    status, _, _, groups = read_state(api)[name]
    assert status.endswith("_COMPLETE")
    assert all(s.endswith("_COMPLETE") for s, _ in groups.values()), groups


async def test_of_two_concurrent_changes_one_is_recorded_and_a_failed_edit_writes_nothing(
    api: Api,
) -> None:
    api.user("alice", "lab")
    await api.template("alice")
    uuid = await api.cluster("alice", "web", node_count=1)
    name = (await api.show("alice", uuid))["stack_id"]
    store = api.svc.store
    before = read_state(api)

    def refused(spec: ClusterSpec) -> ClusterSpec:
        raise ApiError(404, "NodeGroup nope could not be found")

    with pytest.raises(ApiError):
        store.claim_desired(name, SETTLED, refused, status=UPDATE_IN_PROGRESS)
    assert read_state(api) == before  # not even the move to UPDATE_IN_PROGRESS

    # Two changes at once, each in its own thread (as two API processes would be):
    # the conditional UPDATE lets exactly one through.
    start = threading.Barrier(2)

    def change(count: int) -> ClusterRecord | None:
        start.wait()
        return store.claim_desired(
            name,
            SETTLED,
            resized(WORKER_GROUP, count),
            status=UPDATE_IN_PROGRESS,
            groups=[WORKER_GROUP],
        )

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(change, (2, 3)))
    (won,) = [r for r in results if r is not None]
    assert won.status == UPDATE_IN_PROGRESS
    status, _, workers, groups = read_state(api)[name]
    assert (status, groups[WORKER_GROUP][0]) == (UPDATE_IN_PROGRESS, UPDATE_IN_PROGRESS)
    assert workers == won.spec.group(WORKER_GROUP).node_count
    store.settle(name)  # nothing was submitted: the fixture's drain has nothing to wait for
