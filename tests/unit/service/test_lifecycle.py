"""Use cases end to end on the fake driver: plan, run, record, resume, roll back, leak nothing.

The fake driver keeps its cloud in a file; ``leftovers`` lists what it holds for an
owner, which is how these tests count leaks (the contract suite does the same against
every real driver with independent clients).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from sqlalchemy import text

from flotte.errors import AlreadyExists, Busy, PlanError, PlanFailed, QuotaExceeded, UsageError
from flotte.planner import Action
from flotte.service import Service
from flotte.state.status import (
    CREATE_COMPLETE,
    CREATE_IN_PROGRESS,
    UPDATE_COMPLETE,
    UPDATE_IN_PROGRESS,
)


@pytest.fixture
def svc(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Service:
    monkeypatch.setenv("FLOTTE_FAKE_DIR", str(tmp_path / "cloud"))
    if database_url.startswith("sqlite"):
        monkeypatch.delenv("FLOTTE_DATABASE_URL", raising=False)  # the installation's own
    else:
        monkeypatch.setenv("FLOTTE_DATABASE_URL", database_url)
    s = Service(tmp_path / "home")
    yield s
    s.close()


def leftovers(svc: Service, cluster: str) -> list[str]:
    driver = svc.driver("fake", {"fake_dir": os.environ["FLOTTE_FAKE_DIR"]})
    return asyncio.run(driver.leftovers(svc.owner(cluster=cluster)))


def create(svc: Service, name: str, workers: int = 2, **flags: object) -> None:
    spec, secrets = svc.resolve(
        name, driver="fake", node_count=workers, no_provision=True, flags=flags
    )
    asyncio.run(svc.clusters.create(spec, secrets))


def test_create_resize_nodegroups_delete_leave_nothing(svc: Service) -> None:
    create(svc, "c")
    assert svc.clusters.get("c").status == CREATE_COMPLETE
    assert len(leftovers(svc, "c")) == 4  # a network and three nodes
    asyncio.run(svc.clusters.resize("c", 4))
    asyncio.run(svc.nodegroups.create("c", "big", node_count=2, flags={"fake_flavor": "f.big"}))
    names = sorted(n.name for n in svc.machines.all())
    assert names == [
        "c-big-0", "c-big-1", "c-master-0", "c-node-0", "c-node-1", "c-node-2", "c-node-3",
    ]  # fmt: skip
    asyncio.run(svc.clusters.resize("c", 1, nodes_to_remove=["c-node-0", "c-node-2", "c-node-3"]))
    assert sorted(n.name for n in svc.machines.all() if n.group == "default-worker") == ["c-node-1"]
    asyncio.run(svc.nodegroups.update("c", "big", node_count=1))
    assert svc.clusters.get("c").status == UPDATE_COMPLETE
    asyncio.run(svc.nodegroups.delete("c", "big"))
    assert not svc.clusters.get("c").spec.has_group("big")
    assert len(leftovers(svc, "c")) == 3
    asyncio.run(svc.clusters.delete("c"))
    assert leftovers(svc, "c") == []
    assert svc.machines.all() == []


def test_printed_plan_is_the_plan_that_runs(svc: Service) -> None:
    spec, _ = svc.resolve("p", driver="fake", node_count=1, no_provision=True)
    seen = []
    ran = asyncio.run(svc.clusters.create(spec, on_plan=seen.append))
    assert seen == [ran] and seen[0] is ran
    entries = svc.store.journal_entries("cluster:p")
    done = {e.step for e in entries if e.phase == "done"}
    assert done == {s.id for s in ran.steps}


def test_dry_run_changes_nothing(svc: Service) -> None:
    spec, _ = svc.resolve("d", driver="fake", node_count=3, no_provision=True)
    p = asyncio.run(svc.clusters.create(spec, dry_run=True))
    assert len(p.of(Action.CREATE)) == 4
    assert svc.store.find_cluster("d") is None and leftovers(svc, "d") == []


def test_failed_create_rolls_back_everything(svc: Service) -> None:
    with pytest.raises(PlanFailed, match="rolled back"):
        create(svc, "f", fake_fail="f-node-1")
    assert svc.store.find_cluster("f") is None
    assert leftovers(svc, "f") == []


def test_killed_create_resumes_and_adopts(svc: Service) -> None:
    spec, _ = svc.resolve(
        "k", driver="fake", node_count=4, no_provision=True, flags={"fake_latency": 1.0}
    )

    async def killed() -> None:
        task = asyncio.create_task(svc.clusters.create(spec))
        # check 1 s, prepare 1 s, then each create makes its node half a second before
        # it answers: cancelled in between, like a SIGKILL. Watched, not timed, so a
        # loaded machine's slower check or prepare does not move the kill point.
        fake = svc.driver("fake", {"fake_dir": os.environ["FLOTTE_FAKE_DIR"]})
        while not any(x.startswith("node") for x in await fake.leftovers(svc.owner(cluster="k"))):
            assert not task.done(), "the create finished before any node was seen"
            await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(killed())
    assert svc.clusters.get("k").status == CREATE_IN_PROGRESS
    made = [x for x in leftovers(svc, "k") if x.startswith("node")]
    assert made  # the fake cloud made nodes the store never heard back about
    again = asyncio.run(svc.clusters.create(spec))
    assert again.summary()["resume"] >= 1
    assert svc.clusters.get("k").status == CREATE_COMPLETE
    nodes = sorted(x for x in leftovers(svc, "k") if x.startswith("node"))
    assert nodes == ["node k-master-0", *(f"node k-node-{i}" for i in range(4))]
    assert asyncio.run(svc.clusters.converge("k", dry_run=True)).empty


def test_quota_is_refused_before_anything_is_made(svc: Service) -> None:
    with pytest.raises(QuotaExceeded, match="holds 2"):
        create(svc, "q", workers=2, fake_quota=2)
    assert svc.store.find_cluster("q") is None and leftovers(svc, "q") == []


def test_node_group_bad_input_changes_nothing(svc: Service) -> None:
    create(svc, "b", workers=1)
    before = svc.clusters.get("b").spec
    cases = [
        (lambda: svc.nodegroups.create("b", "default-worker"), AlreadyExists, "already exists"),
        (lambda: svc.nodegroups.create("b", "x", role="boss"), UsageError, "master or worker"),
        (
            lambda: svc.nodegroups.create("b", "x", min_node_count=3, max_node_count=2),
            UsageError,
            "above max_node_count",
        ),
        (
            lambda: svc.nodegroups.create("b", "x", node_count=5, max_node_count=2),
            UsageError,
            "outside",
        ),
        (lambda: svc.nodegroups.delete("b", "default-master"), UsageError, "default node group"),
        (lambda: svc.nodegroups.update("b", "nope", node_count=1), UsageError, "no node group"),
        (
            lambda: svc.clusters.resize("b", 0, nodegroup="default-master"),
            UsageError,
            "at least 1",
        ),
        (
            lambda: svc.clusters.resize("b", 1, nodes_to_remove=["b-master-0"]),
            UsageError,
            "is a manager of node group default-master",
        ),
        (
            lambda: svc.clusters.resize(
                "b", 1, nodegroup="default-master", nodes_to_remove=["b-master-0"]
            ),
            PlanError,
            "leaves",
        ),
        (lambda: svc.nodegroups.create("b", "Bad_Name"), UsageError, "invalid node group name"),
    ]
    for call, error, words in cases:
        with pytest.raises(error, match=words):
            asyncio.run(call())
    assert svc.clusters.get("b").spec == before
    assert len(leftovers(svc, "b")) == 3


def test_busy_cluster_refuses_node_group_change(svc: Service) -> None:
    create(svc, "busy", workers=1)
    with svc.lock("cluster", "busy"), pytest.raises(Busy, match="busy"):
        asyncio.run(svc.nodegroups.create("busy", "more"))
    assert not svc.clusters.get("busy").spec.has_group("more")


def test_node_name_clash_with_a_machine_is_refused(svc: Service) -> None:
    spec, secrets = svc.machines.spec("web-master-0", "fake", {}, _engine(), no_provision=True)
    asyncio.run(svc.machines.create(spec, secrets))
    with pytest.raises(AlreadyExists, match=r"clash|take the name"):
        create(svc, "web", workers=0)
    assert svc.store.find_cluster("web") is None
    assert svc.machines.get("web-master-0").cluster is None


def test_machine_lifecycle_on_the_fake_cloud(svc: Service) -> None:
    spec, secrets = svc.machines.spec("m", "fake", {}, _engine(), no_provision=True)
    asyncio.run(svc.machines.create(spec, secrets))
    assert svc.machines.get("m").record is not None
    asyncio.run(svc.machines.action("m", "stop"))
    assert str(asyncio.run(svc.machines.state(svc.machines.get("m")))) == "Stopped"
    asyncio.run(svc.machines.remove("m"))
    assert asyncio.run(svc.driver("fake").leftovers(svc.owner(machine="m"))) == []


def test_only_the_chosen_drivers_options_and_no_secret_at_rest(svc: Service) -> None:
    planted = "pl4nted-s3cret-value"
    flags = {"openstack_password": planted, "openstack_username": "u", "fake_flavor": "f.x"}
    spec, secrets = svc.machines.spec("m2", "fake", flags, _engine(), no_provision=True)
    assert "openstack_password" not in spec.options and "openstack_username" not in spec.options
    assert secrets == {}
    t = svc.templates.create(
        "os", {"driver": "openstack", "driver_options": {"openstack_password": planted}}
    )
    assert planted not in str(t.view())
    assert svc.templates.secret_keys("os") == ["openstack_password"]
    if svc.store.url.startswith("sqlite"):
        assert planted.encode() not in Path(svc.paths.database).read_bytes()
    secret_file = svc.paths.secrets / "templates" / "os" / "options.json"
    assert planted in secret_file.read_text()
    assert secret_file.stat().st_mode & 0o077 == 0
    with svc.store.engine.connect() as db:
        assert planted not in str(db.execute(text("select * from templates")).fetchall())


def _engine():  # type: ignore[no-untyped-def]
    from flotte.models import EngineOptions

    return EngineOptions()


def test_change_killed_before_its_status_is_finished_by_a_rerun(svc: Service) -> None:
    create(svc, "u", workers=1)
    asyncio.run(svc.clusters.resize("u", 2))
    # Killed after its last step, before its status was written (fault campaign, seed
    # 1101): the cluster says UPDATE_IN_PROGRESS with everything already made.
    svc.store.set_cluster("u", status=UPDATE_IN_PROGRESS, status_reason="")
    svc.store.set_groups_status("u", UPDATE_IN_PROGRESS, groups=["default-worker"])
    again = asyncio.run(svc.clusters.resize("u", 2))
    assert again.empty
    cluster = svc.clusters.get("u")
    assert cluster.status == UPDATE_COMPLETE
    assert {g.name: g.status for g in cluster.nodegroups}["default-worker"] == UPDATE_COMPLETE
