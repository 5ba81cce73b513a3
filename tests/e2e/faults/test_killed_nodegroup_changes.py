"""A node group change killed half-way is finished by running the same command again.

Found by the fault campaign (``bench/faults.py --driver fake``, seed 7): a killed
``nodegroup delete`` left the cluster UPDATE_IN_PROGRESS with the group's nodes still in
the cloud, and running it again answered "has no node group" (its removal from the
desired spec was recorded before the kill); a killed ``nodegroup create`` was answered
"already exists" the same way, with its nodes never made.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest

from fixtures.local import Flotte

# Each fake cloud call takes this long: the window in which the journal shows a step
# begun but not done, wide enough for a loaded machine's polling to land in it.
LATENCY = "1"


@pytest.fixture
def fake(tmp_path: Path) -> tuple[Flotte, Path]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOTTE_", "OS_", "AWS_"))}
    cloud = tmp_path / "cloud"
    env.update(FLOTTE_HOME=str(tmp_path / "home"), FLOTTE_FAKE_DIR=str(cloud), COLUMNS="200")
    return Flotte(home=tmp_path / "home", env=env), cloud


def cloud_nodes(cloud: Path, cluster: str) -> list[str]:
    data = json.loads((cloud / "cloud.json").read_text())
    return sorted(
        r["name"]
        for r in data["resources"].values()
        if r["kind"] == "node" and r["tags"].get("flotte:cluster") == cluster
    )


def status(flotte: Flotte, cluster: str) -> dict[str, object]:
    shown = json.loads(flotte("cluster", "show", cluster, "-f", "json").stdout)
    return {
        "status": shown["status"],
        "groups": {g["name"]: g["node_count"] for g in shown["nodegroups"]},
    }


def test_killed_nodegroup_delete_is_finished_by_its_rerun(fake: tuple[Flotte, Path]) -> None:
    flotte, cloud = fake
    name = f"ngd{uuid.uuid4().hex[:6]}"
    flotte(
        "cluster", "create", name, "--driver", "fake", "--node-count", "1",
        "--no-provision", "--fake-latency", LATENCY,
    )  # fmt: skip
    flotte("cluster", "nodegroup", "create", name, "extra", "--node-count", "2")
    proc = flotte.spawn("cluster", "nodegroup", "delete", name, "extra")
    flotte.kill_when(proc, f"cluster:{name}", "remove:", "intent")
    assert status(flotte, name)["status"] == "UPDATE_IN_PROGRESS"
    assert any("-extra-" in n for n in cloud_nodes(cloud, name))

    flotte("cluster", "nodegroup", "delete", name, "extra")
    assert status(flotte, name) == {
        "status": "UPDATE_COMPLETE",
        "groups": {"default-master": 1, "default-worker": 1},
    }
    assert cloud_nodes(cloud, name) == [f"{name}-master-0", f"{name}-node-0"]
    # and now it is gone for good: the usual line
    again = flotte("cluster", "nodegroup", "delete", name, "extra", check=False)
    assert again.returncode != 0 and "has no node group 'extra'" in again.stderr
    flotte("cluster", "delete", name)
    assert cloud_nodes(cloud, name) == []


def test_killed_nodegroup_create_is_finished_by_its_rerun(fake: tuple[Flotte, Path]) -> None:
    flotte, cloud = fake
    name = f"ngc{uuid.uuid4().hex[:6]}"
    flotte(
        "cluster", "create", name, "--driver", "fake", "--node-count", "1",
        "--no-provision", "--fake-latency", LATENCY,
    )  # fmt: skip
    add = ("cluster", "nodegroup", "create", name, "extra", "--node-count", "2")
    proc = flotte.spawn(*add)
    flotte.kill_when(proc, f"cluster:{name}", f"create:{name}-extra-", "intent")
    assert status(flotte, name)["status"] == "UPDATE_IN_PROGRESS"

    flotte(*add)
    assert status(flotte, name) == {
        "status": "UPDATE_COMPLETE",
        "groups": {"default-master": 1, "default-worker": 1, "extra": 2},
    }
    assert cloud_nodes(cloud, name) == sorted(
        [f"{name}-master-0", f"{name}-node-0", f"{name}-extra-0", f"{name}-extra-1"]
    )
    # a finished group is not made twice: the usual line
    again = flotte(*add, check=False)
    assert again.returncode != 0 and "already exists" in again.stderr
    flotte("cluster", "delete", name)
    assert cloud_nodes(cloud, name) == []
