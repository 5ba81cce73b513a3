"""Node groups, spec files and plans on a real Swarm of local nodes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import docker
import pytest
import yaml

from fixtures.local import Flotte

pytestmark = pytest.mark.docker


def swarm(flotte: Flotte, cluster: str) -> dict[str, dict[str, object]]:
    """Hostname -> (state, engine labels) as the swarm itself reports them."""
    out = subprocess.run(
        ["docker", "--context", f"flotte-{cluster}", "node", "ls", "-q"],
        capture_output=True,
        text=True,
        env=flotte.env,
        check=True,
    ).stdout.split()
    inspected = json.loads(
        subprocess.run(
            ["docker", "--context", f"flotte-{cluster}", "node", "inspect", *out],
            capture_output=True,
            text=True,
            env=flotte.env,
            check=True,
        ).stdout
    )
    return {
        n["Description"]["Hostname"]: {
            "state": n["Status"]["State"],
            "role": n["Spec"]["Role"],
            "labels": n["Description"].get("Engine", {}).get("Labels", {}),
        }
        for n in inspected
    }


def one_line(res: subprocess.CompletedProcess[str], *words: str) -> str:
    assert res.returncode != 0, res.stdout
    assert "Traceback" not in res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, res.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def test_node_groups_grow_shrink_and_go(flotte: Flotte, docker_engine: docker.DockerClient) -> None:
    flotte("cluster", "create", "ng", "--driver", "local", "--node-count", "1")
    out = flotte(
        "cluster",
        "nodegroup",
        "create",
        "ng",
        "extra",
        "--node-count",
        "2",
        "--labels",
        "tier=extra",
        "--max-nodes",
        "3",
    ).stdout
    assert "ng-extra-0" in out and "UPDATE_COMPLETE" in out
    nodes = swarm(flotte, "ng")
    assert sorted(nodes) == ["ng-extra-0", "ng-extra-1", "ng-master-0", "ng-node-0"]
    assert all(n["state"] == "ready" for n in nodes.values())
    assert nodes["ng-extra-1"]["labels"].get("tier") == "extra"  # type: ignore[union-attr]
    assert "tier" not in nodes["ng-node-0"]["labels"]  # type: ignore[operator]

    groups = json.loads(flotte("cluster", "nodegroup", "list", "ng", "-f", "json").stdout)
    assert [(g["name"], g["node_count"]) for g in groups] == [
        ("default-master", 1),
        ("default-worker", 1),
        ("extra", 2),
    ]
    # The plan a resize would run is what it runs: shown first, then done.
    planned = json.loads(
        flotte(
            "cluster",
            "resize",
            "ng",
            "--nodegroup",
            "extra",
            "--node-count",
            "1",
            "--dry-run",
            "-o",
            "json",
        ).stdout
    )
    assert [s["id"] for s in planned["steps"]] == ["remove:ng-extra-1"]
    flotte("cluster", "resize", "ng", "--nodegroup", "extra", "--node-count", "1")
    assert sorted(swarm(flotte, "ng")) == ["ng-extra-0", "ng-master-0", "ng-node-0"]
    # the other groups were not touched
    assert swarm(flotte, "ng")["ng-node-0"]["state"] == "ready"

    one_line(
        flotte("cluster", "nodegroup", "update", "ng", "extra", "--node-count", "5", check=False),
        "outside",
    )
    flotte("cluster", "nodegroup", "delete", "ng", "extra")
    assert sorted(swarm(flotte, "ng")) == ["ng-master-0", "ng-node-0"]
    assert not [c for c in flotte.owned(docker_engine, cluster="ng") if "extra" in c]
    flotte("cluster", "delete", "ng")
    assert flotte.owned(docker_engine, cluster="ng") == []


def test_apply_twice_changes_nothing_and_export_recreates(
    flotte: Flotte, docker_engine: docker.DockerClient, tmp_path: Path
) -> None:
    spec = {
        "apiVersion": "flotte/v1",
        "kind": "Cluster",
        "name": "app",
        "driver": "local",
        "labels": {"team": "physics"},
        "nodegroups": [
            {"name": "default-master", "role": "master", "node_count": 1},
            {"name": "default-worker", "role": "worker", "node_count": 1},
            {"name": "batch", "role": "worker", "node_count": 1, "labels": {"kind": "batch"}},
        ],
    }
    path = tmp_path / "app.yaml"
    path.write_text(yaml.safe_dump(spec))
    first = flotte("apply", "-f", str(path))
    assert "CREATE_COMPLETE" in first.stdout
    assert sorted(swarm(flotte, "app")) == ["app-batch-0", "app-master-0", "app-node-0"]
    again = flotte("apply", "-f", str(path))
    assert "no changes" in again.stdout

    exported = tmp_path / "exported.yaml"
    flotte("cluster", "export", "app", "-o", str(exported))
    assert (
        json.loads(flotte("apply", "-f", str(exported), "--dry-run", "-o", "json").stdout)["steps"]
        == []
    )
    data = yaml.safe_load(exported.read_text())
    data["nodegroups"][2]["node_count"] = 2
    exported.write_text(yaml.safe_dump(data))
    grown = flotte("apply", "-f", str(exported))
    assert "app-batch-1" in grown.stdout and "UPDATE_COMPLETE" in grown.stdout
    assert swarm(flotte, "app")["app-batch-1"]["state"] == "ready"
    flotte("cluster", "delete", "app")
    assert flotte.owned(docker_engine, cluster="app") == []


def test_plan_and_spec_file_errors(flotte: Flotte, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: web\ndriver: local\nnodegroups:\n"
        "  - name: default-master\n    role: master\n    node_count: 1\n"
        "  - name: default-worker\n    node_count: -2\n"
    )
    line = one_line(flotte("apply", "-f", str(bad), check=False), "bad.yaml:8", "node_count")
    assert "greater than or equal to 0" in line
    bad.write_text("name: web\ndriver: local\nflavour: big\nnodegroups: []\n")
    one_line(flotte("apply", "-f", str(bad), check=False), "bad.yaml:3", "flavour")
    bad.write_text("name: web\ndriver: local\nnodegroups:\n  - &g {name: a}\n  - *g\n")
    one_line(flotte("apply", "-f", str(bad), check=False), "aliases")
    bad.write_text(
        "name: web\ndriver: local\noptions: {openstack_password: x}\n"
        "nodegroups: [{name: m, role: master, node_count: 1}]\n"
    )
    one_line(flotte("apply", "-f", str(bad), check=False), "secret")
    one_line(flotte("apply", "-f", str(tmp_path / "none.yaml"), check=False), "no such file")
    # a plan of a cluster that does not exist, and a plan with a cost
    one_line(flotte("cluster", "plan", "ghost", check=False), "not found")
    planned = json.loads(
        flotte(
            "cluster",
            "create",
            "p",
            "--driver",
            "local",
            "--node-count",
            "2",
            "--dry-run",
            "-o",
            "json",
        ).stdout
    )
    assert planned["summary"]["create"] == 3
    assert planned["cost"]["eur_day"] == 0.0
    assert json.loads(flotte("cluster", "list", "-f", "json").stdout) == []
