"""Health checks and self-healing on the fake driver: the storm rules, failing twice, and
nothing done to a healthy cluster.

Faults are made by the test, out of band: it edits the fake cloud's file (under the
cloud's own lock) the way an outage or an operator would change a real cloud, and the
service only finds out by asking the driver. The clock is injected (``clock=``) so the
settle time between heals costs no waiting.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from flotte.errors import UsageError
from flotte.service import Service, health, views
from flotte.service.health_events import nodes_by_health, samples
from flotte.state.status import HEALTHY, UNHEALTHY

LABELS = {"auto_healing_enabled": "true"}


@pytest.fixture
def svc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Service]:
    monkeypatch.setenv("FLOTTE_FAKE_DIR", str(tmp_path / "cloud"))
    monkeypatch.delenv("FLOTTE_DATABASE_URL", raising=False)
    s = Service(tmp_path / "home")
    yield s
    s.close()


@contextmanager
def cloud() -> Iterator[dict[str, Any]]:
    """The fake cloud's records, edited by the test as an outside actor would."""
    directory = Path(os.environ["FLOTTE_FAKE_DIR"])
    with (directory / "cloud.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = directory / "cloud.json"
        data = json.loads(path.read_text())
        yield data
        path.write_text(json.dumps(data))


def node_res(data: dict[str, Any], name: str) -> tuple[str, dict[str, Any]]:
    return next(
        (rid, r)
        for rid, r in data["resources"].items()
        if r["kind"] == "node" and r["name"] == name
    )


def stop(*names: str) -> None:
    with cloud() as data:
        for name in names:
            node_res(data, name)[1]["state"] = "stopped"


def delete(*names: str) -> None:
    with cloud() as data:
        for name in names:
            del data["resources"][node_res(data, name)[0]]


def cloud_nodes(svc: Service, cluster: str) -> list[str]:
    driver = svc.driver("fake", {"fake_dir": os.environ["FLOTTE_FAKE_DIR"]})
    found = asyncio.run(driver.leftovers(svc.owner(cluster=cluster)))
    return sorted(x.split(" ", 1)[1] for x in found if x.startswith("node "))


def create(svc: Service, name: str, workers: int, **flags: object) -> None:
    spec, secrets = svc.resolve(
        name, driver="fake", node_count=workers, no_provision=True, flags=flags, labels=LABELS
    )
    asyncio.run(svc.clusters.create(spec, secrets))


class Clock:
    """Epoch seconds that move a minute per round: past the settle time of a heal."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def rounds(svc: Service, n: int, clock: Clock, step: float = 60.0) -> list[dict[str, Any]]:
    out = []
    for _ in range(n):
        out += asyncio.run(health.watch_round(svc, clock=clock))
        clock.now += step
    return out


def heal_runs(svc: Service, cluster: str) -> list[list[str]]:
    """The nodes each heal run removed, in order (from the journal)."""
    runs: list[list[str]] = []
    for e in svc.store.journal_entries(f"cluster:{cluster}"):
        if e.operation == "health" and e.step.startswith("heal:") and e.phase == "intent":
            runs.append([])
        if e.operation == "heal" and e.step.startswith("remove:") and e.phase == "done":
            runs[-1].append(e.step.removeprefix("remove:"))
    return runs


def test_check_records_health_and_reasons(svc: Service) -> None:
    create(svc, "hc", workers=2)
    h = asyncio.run(health.check(svc, "hc"))
    assert h.status == HEALTHY
    assert h.reason == {"hc-master-0": "ok", "hc-node-0": "ok", "hc-node-1": "ok"}
    assert h.calls["provider"] == 3  # no engines (--no-provision): the provider only
    stop("hc-node-0")
    delete("hc-node-1")
    h = asyncio.run(health.check(svc, "hc"))
    assert h.status == UNHEALTHY
    assert h.reason["hc-node-0"] == "node stopped"
    assert h.reason["hc-node-1"] == "node gone"
    assert {n.name: n.action for n in h.nodes if n.action} == {
        "hc-node-0": "replace",
        "hc-node-1": "replace",
    }
    record = svc.clusters.get("hc")
    assert record.health_status == UNHEALTHY
    assert record.health_status_reason == h.reason
    shown = asyncio.run(views.show(svc, "hc", with_health=False))
    assert shown["health_status"] == UNHEALTHY
    assert shown["health_status_reason"]["hc-node-1"] == "node gone"
    # --no-provision: no engine, so no version (JSON null, "-" in a table)
    assert [n["engine_version"] for n in shown["nodes"]] == [None, None, None]
    assert nodes_by_health(svc.store) == {"healthy": 1, "unhealthy": 2, "unknown": 0}
    entries = [(e.step, e.detail) for e in svc.store.journal_entries("cluster:hc")]
    assert ("health:UNHEALTHY", "hc-node-0: node stopped; hc-node-1: node gone") in entries


def test_manual_heal_replaces_and_leaves_nothing(svc: Service) -> None:
    create(svc, "mh", workers=2)
    delete("mh-node-0")
    shown: list[Any] = []
    result = asyncio.run(health.heal(svc, "mh", on_plan=shown.append))
    assert shown == [result.plan]
    assert result.replaced == {"mh-node-0": "mh-node-2"}
    assert result.after is not None and result.after.status == HEALTHY
    assert cloud_nodes(svc, "mh") == ["mh-master-0", "mh-node-1", "mh-node-2"]
    assert svc.clusters.get("mh").status_reason == "healed: replaced mh-node-0 by mh-node-2"
    assert asyncio.run(svc.clusters.converge("mh", dry_run=True)).empty
    dry = asyncio.run(health.heal(svc, "mh", dry_run=True))
    assert not dry.decision.acts and dry.plan is None


def test_storm_limits_when_three_of_four_workers_die(svc: Service) -> None:
    create(svc, "st", workers=4)
    stop("st-node-0", "st-node-1")
    delete("st-node-2")
    clock = Clock()
    first = rounds(svc, 1, clock)[0]
    # seen once: nothing is done on a single bad answer
    assert first["decision"]["replace"] == []
    assert set(first["decision"]["deferred"]) == {"st-node-0", "st-node-1", "st-node-2"}
    second = rounds(svc, 1, clock)[0]
    assert len(second["decision"]["replace"]) == 1
    waiting = second["decision"]["deferred"]
    assert len(waiting) == 2 and all(w.startswith("storm limit") for w in waiting.values())
    rounds(svc, 4, clock)
    assert svc.clusters.get("st").health_status == HEALTHY
    runs = heal_runs(svc, "st")
    assert [len(r) for r in runs] == [1, 1, 1]  # one replacement at a time, never more
    assert sorted(n for r in runs for n in r) == ["st-node-0", "st-node-1", "st-node-2"]
    assert len(cloud_nodes(svc, "st")) == 5  # the dead ones are gone, nothing leaked
    counters = {s.name: s.value for s in samples() if not s.labels}
    assert counters["flotte_heal_replacements_total"] >= 3


def test_a_node_that_fails_twice_is_left_unhealthy(svc: Service) -> None:
    # One spare node in the quota; the test then fills it out of band (another user of
    # the same account), so every replacement is refused by the cloud.
    create(svc, "ft", workers=2, fake_quota=4)
    with cloud() as data:
        data["resources"]["node-squatter"] = {
            "kind": "node",
            "name": "squatter",
            "state": "running",
            "address": "10.9.9.9",
            "tags": {"flotte:owner": svc.installation},
        }
    stop("ft-node-1")
    clock = Clock()
    out = rounds(svc, 8, clock)
    errors = [o["error"] for o in out if "error" in o]
    assert len(errors) == 2 and all("4 in use, 1 asked" in e for e in errors)
    runs = [e for e in svc.store.journal_entries("cluster:ft") if e.step == "heal:auto"]
    assert [e.phase for e in runs] == ["intent", "failed", "intent", "failed"]
    record = svc.clusters.get("ft")
    assert record.health_status == UNHEALTHY
    reason = record.health_status_reason["ft-node-1"]
    assert reason.startswith("node stopped; healed 2 times and bad again")
    assert "left for an operator" in reason
    # the operator frees the quota and heals by hand: that is tried again at once
    with cloud() as data:
        del data["resources"]["node-squatter"]
    result = asyncio.run(health.heal(svc, "ft", clock=clock))
    assert result.after is not None and result.after.status == HEALTHY


def test_no_heal_on_a_healthy_cluster_in_100_rounds(svc: Service) -> None:
    create(svc, "ok", workers=3)
    before = cloud_nodes(svc, "ok")
    with cloud() as data:
        snapshot = json.dumps(data, sort_keys=True)
    out = rounds(svc, 100, Clock(), step=5.0)
    assert {o.get("health_status") for o in out} == {HEALTHY}
    assert not any("decision" in o or "error" in o for o in out)
    assert cloud_nodes(svc, "ok") == before
    with cloud() as data:
        assert json.dumps(data, sort_keys=True) == snapshot
    ops = {e.operation for e in svc.store.journal_entries("cluster:ok")}
    assert "heal" not in ops
    changes = [e for e in svc.store.journal_entries("cluster:ok") if e.operation == "health"]
    assert len(changes) == 1  # UNKNOWN -> HEALTHY on the first round, then nothing


def test_watch_covers_only_labelled_clusters(svc: Service) -> None:
    create(svc, "yes", workers=1)
    spec, secrets = svc.resolve("no", driver="fake", node_count=1, no_provision=True)
    asyncio.run(svc.clusters.create(spec, secrets))
    assert health.watched(svc) == ["yes"]
    with pytest.raises(UsageError, match="has no auto-healing"):
        health.watched(svc, ["no"])
    delete("no-node-0")
    rounds(svc, 3, Clock())
    assert svc.clusters.get("no").health_status == "UNKNOWN"  # never checked by the watch
    assert [n.name for n in svc.store.nodes(cluster="no")] == ["no-master-0", "no-node-0"]
    assert [e for e in svc.store.journal_entries("cluster:no") if e.operation == "heal"] == []


def test_a_check_that_overlapped_a_finished_change_keeps_its_verdict(svc: Service) -> None:
    """CI stop 22: a show (or watch round) that read the cluster while it was being made
    recorded UNKNOWN, "no nodes", after the create had recorded HEALTHY. The change that
    finishes while a check looks is newer: the check's verdict is not recorded."""
    create(svc, "race", workers=1)
    svc.store.set_status("race", status="UPDATE_IN_PROGRESS")

    def a_resize_finishes_meanwhile() -> float:
        svc.store.set_status(
            "race",
            status="UPDATE_COMPLETE",
            health_status=HEALTHY,
            health_status_reason={"race-node-1": "ready"},
        )
        return 1_800_000_000.0

    stop("race-node-0")
    h = asyncio.run(health.check(svc, "race", clock=a_resize_finishes_meanwhile))
    assert h.status == UNHEALTHY  # what it saw, returned to its caller
    record = svc.clusters.get("race")
    assert (record.health_status, record.health_status_reason) == (
        HEALTHY,
        {"race-node-1": "ready"},
    )
    h = asyncio.run(health.check(svc, "race"))  # nothing changes under this one
    assert svc.clusters.get("race").health_status == UNHEALTHY == h.status
