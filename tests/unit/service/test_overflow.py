"""Overflow on the fake driver: two "providers" are two fake clouds (two directories),
each node group with its own driver instance, options and quota.

The fake cloud refuses for real (its quota counts what its file holds), both in its
``check`` and while creating, so these tests exercise the pre-check, the refusal in the
middle of a run and the re-plan, and count leaks in both clouds.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from flotte.errors import PlanError, UsageError
from flotte.planner import Action
from flotte.service import Service
from flotte.state.status import CREATE_COMPLETE, UPDATE_COMPLETE


@pytest.fixture
def svc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Service:
    monkeypatch.setenv("FLOTTE_FAKE_DIR", str(tmp_path / "lab"))
    monkeypatch.delenv("FLOTTE_DATABASE_URL", raising=False)
    s = Service(tmp_path / "home")
    yield s
    s.close()


def cloud(svc: Service, directory: str, cluster: str) -> list[str]:
    driver = svc.driver("fake", {"fake_dir": directory})
    return [
        x for x in asyncio.run(driver.leftovers(svc.owner(cluster=cluster))) if x.startswith("node")
    ]


def two_sites(svc: Service, tmp_path: Path, lab_quota: int = 3, name: str = "o") -> str:
    """A cluster on the lab cloud (quota ``lab_quota`` nodes) with a partner group."""
    partner = str(tmp_path / "partner")
    spec, secrets = svc.resolve(name, driver="fake", node_count=0, no_provision=True)
    asyncio.run(svc.clusters.create(spec, secrets))
    lab = spec.group("default-worker")
    data = {**lab.model_dump(), "options": {"fake_quota": lab_quota}}
    from flotte.specs import NodeGroupSpec

    spec2 = svc.clusters.get(name).spec.with_group(NodeGroupSpec.model_validate(data))
    svc.store.set_desired(spec2)
    asyncio.run(svc.nodegroups.create(name, "partner", node_count=0, flags={"fake_dir": partner}))
    return partner


def test_workers_fill_the_lab_then_overflow_onto_the_partner(svc: Service, tmp_path: Path) -> None:
    partner = two_sites(svc, tmp_path)
    seen = []
    asyncio.run(svc.overflow.resize("o", 4, ["default-worker", "partner"], on_plan=seen.append))
    lab = os.environ["FLOTTE_FAKE_DIR"]
    # The lab's quota of 3 holds the manager and 2 workers; the partner takes 2.
    assert len(cloud(svc, lab, "o")) == 3
    assert len(cloud(svc, partner, "o")) == 2
    created = {s.node: s.group for s in seen[-1].of(Action.CREATE)}
    assert sorted(created.values()) == ["default-worker"] * 2 + ["partner"] * 2
    view = svc.clusters.get("o")
    assert view.status == UPDATE_COMPLETE
    reasons = {g.name: g.status_reason for g in view.nodegroups}
    assert "quota" in reasons["default-worker"] and "overflow: 2" in reasons["default-worker"]
    assert "overflow: 2" in reasons["partner"]
    # Shrink: the partner (last in the order) goes first.
    asyncio.run(svc.overflow.resize("o", 2, []))
    assert cloud(svc, partner, "o") == []
    assert len(cloud(svc, lab, "o")) == 3
    # Named nodes go first even in the lab.
    asyncio.run(svc.overflow.resize("o", 3, []))
    assert len(cloud(svc, partner, "o")) == 1
    asyncio.run(svc.overflow.resize("o", 2, [], nodes_to_remove=["o-node-0"]))
    names = sorted(n.name for n in svc.machines.all())
    assert "o-node-0" not in names and "o-partner-0" in names
    asyncio.run(svc.clusters.delete("o"))
    assert cloud(svc, lab, "o") == [] and cloud(svc, partner, "o") == []


def test_a_refusal_while_creating_moves_the_rest_without_leaking(
    svc: Service, tmp_path: Path
) -> None:
    """The lab's quota passes the check, then the creates running at the same time
    fill it: the refused node is taken out, the partner takes the rest."""
    partner = str(tmp_path / "partner")
    lab = os.environ["FLOTTE_FAKE_DIR"]
    from flotte.specs import ClusterSpec

    spec = ClusterSpec.model_validate(
        {
            "name": "r",
            "driver": "fake",
            "no_provision": True,
            "nodegroups": [
                {"name": "default-master", "role": "master", "node_count": 1},
                {"name": "steady", "role": "worker", "node_count": 2},
                {"name": "default-worker", "node_count": 0, "options": {"fake_quota": 4}},
                {
                    "name": "partner",
                    "node_count": 0,
                    "driver": None,
                    "options": {"fake_dir": partner},
                },
            ],
            "overflow": {"nodegroups": ["default-worker", "partner"], "node_count": 5},
        }
    )
    asyncio.run(svc.overflow.run(spec, {}))
    assert svc.clusters.get("r").status == CREATE_COMPLETE
    in_lab = cloud(svc, lab, "r")
    assert len(in_lab) == 4  # the quota counts every node of the lab's cloud
    groups = {n.name: n.group for n in svc.machines.all()}
    over = [g for g in groups.values() if g in ("default-worker", "partner")]
    assert len(over) == 5
    assert len(cloud(svc, partner, "r")) == over.count("partner") >= 4
    assert all(n.record is not None for n in svc.store.nodes(cluster="r"))
    asyncio.run(svc.clusters.delete("r"))
    assert cloud(svc, lab, "r") == [] and cloud(svc, partner, "r") == []


def test_bad_overflow_input_is_one_line_and_makes_nothing(svc: Service, tmp_path: Path) -> None:
    partner = two_sites(svc, tmp_path, name="b")
    before = sorted(n.name for n in svc.machines.all())
    with pytest.raises(UsageError, match="does not exist"):
        asyncio.run(svc.overflow.resize("b", 3, ["default-worker", "nope"]))
    with pytest.raises(UsageError, match="master group"):
        asyncio.run(svc.overflow.resize("b", 3, ["default-master"]))
    with pytest.raises(UsageError, match="twice"):
        asyncio.run(svc.overflow.resize("b", 3, ["partner", "partner"]))
    with pytest.raises(PlanError, match="only 3 of 9"):
        # The lab holds 3 with the manager; the partner at most 1.
        from flotte.specs import NodeGroupSpec

        spec = svc.clusters.get("b").spec
        g = {**spec.group("partner").model_dump(), "max_node_count": 1}
        svc.store.set_desired(spec.with_group(NodeGroupSpec.model_validate(g)))
        asyncio.run(svc.overflow.resize("b", 9, ["default-worker", "partner"]))
    assert sorted(n.name for n in svc.machines.all()) == before
    assert cloud(svc, partner, "b") == []


def test_budget_stops_overflow_onto_a_priced_group(svc: Service, tmp_path: Path) -> None:
    two_sites(svc, tmp_path, lab_quota=2, name="p")
    from flotte.specs import NodeGroupSpec

    spec = svc.clusters.get("p").spec
    g = {**spec.group("partner").model_dump(), "labels": {"provider": "aws"}}
    svc.store.set_desired(spec.with_group(NodeGroupSpec.model_validate(g)))
    plan = asyncio.run(
        svc.overflow.resize("p", 1, ["default-worker", "partner"], max_eur_day=1000.0, dry_run=True)
    )
    assert plan.desired is not None and plan.desired.group("default-worker").node_count == 1
    with pytest.raises(PlanError, match="over budget"):
        asyncio.run(svc.overflow.resize("p", 3, ["default-worker", "partner"], max_eur_day=0.01))
    assert len(svc.machines.all()) == 1
