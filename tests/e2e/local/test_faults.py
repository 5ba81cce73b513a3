"""Killed and failing creates: re-running converges, delete and rollback leave nothing."""

from __future__ import annotations

import json
import subprocess
import time

import docker
import pytest

from fixtures.local import Flotte
from flotte.drivers.local.names import short_id
from flotte.models import CLUSTER_KEY

pytestmark = pytest.mark.docker


def containers(client: docker.DockerClient, cluster: str) -> list[str]:
    return sorted(
        c.name
        for c in client.containers.list(
            ignore_removed=True, all=True, filters={"label": f"{CLUSTER_KEY}={cluster}"}
        )
    )


@pytest.mark.parametrize(
    ("step", "phase"),
    [
        ("prepare", "done"),  # network made, no node yet
        ("create:", "intent"),  # killed while the first containers are being made
        ("provision:", "done"),  # some engines up, swarm not formed
        ("swarm:init", "done"),  # swarm formed, workers not joined
    ],
)
def test_killed_create_resumes(
    flotte: Flotte, docker_engine: docker.DockerClient, step: str, phase: str
) -> None:
    proc = flotte.spawn("cluster", "create", "crash", "--driver", "local", "--node-count", "2")
    flotte.kill_when(proc, "cluster:crash", step, phase)

    listed = json.loads(flotte("cluster", "list", "-f", "json").stdout)
    assert [c["status"] for c in listed] == ["CREATE_IN_PROGRESS"]

    out = flotte("cluster", "create", "crash", "--driver", "local", "--node-count", "2")
    assert "CREATE_COMPLETE" in out.stdout
    # Exactly the three nodes: nothing made twice by the first, killed run.
    sid = short_id(flotte.installation)
    assert containers(docker_engine, "crash") == [
        f"flotte-crash-master-0-{sid}",
        f"flotte-crash-node-0-{sid}",
        f"flotte-crash-node-1-{sid}",
    ]
    # recorded by the resumed create itself, as a new cluster's (a plain show reads it)
    show = json.loads(flotte("cluster", "show", "crash", "-f", "json").stdout)
    assert show["health_status"] == "HEALTHY"
    show = json.loads(flotte("cluster", "show", "crash", "--health", "-f", "json").stdout)
    assert sorted(n["hostname"] for n in show["swarm_nodes"]) == [
        "crash-master-0",
        "crash-node-0",
        "crash-node-1",
    ]

    flotte("cluster", "delete", "crash")
    assert flotte.owned(docker_engine, cluster="crash") == []


def test_delete_after_a_killed_create_leaves_nothing(
    flotte: Flotte, docker_engine: docker.DockerClient
) -> None:
    proc = flotte.spawn("cluster", "create", "half", "--driver", "local", "--node-count", "3")
    flotte.kill_when(proc, "cluster:half", "create:", "done")
    flotte("cluster", "delete", "half")
    assert flotte.owned(docker_engine, cluster="half") == []
    assert json.loads(flotte("cluster", "list", "-f", "json").stdout) == []


def test_killed_machine_create_resumes(flotte: Flotte, docker_engine: docker.DockerClient) -> None:
    proc = flotte.spawn("machine", "create", "m-crash")
    flotte.kill_when(proc, "machine:m-crash", "create", "done")
    flotte("machine", "create", "m-crash")
    assert len(flotte.owned(docker_engine, machine="m-crash")) == 2  # container + volume
    flotte("machine", "rm", "-y", "m-crash")
    assert flotte.owned(docker_engine, machine="m-crash") == []


def test_failing_node_rolls_back(flotte: Flotte, docker_engine: docker.DockerClient) -> None:
    # dockerd refuses an unknown flag, so the node's engine dies as it starts.
    res = flotte("machine", "create", "sick", "--engine-opt", "no-such-flag=1", check=False)
    assert res.returncode == 1
    lines = [line for line in res.stderr.splitlines() if line.startswith("Error:")]
    assert (
        len(lines) == 1 and "unknown flag: --no-such-flag" in lines[0] and "rolled back" in lines[0]
    )
    assert "Traceback" not in res.stderr
    assert flotte.owned(docker_engine, machine="sick") == []
    assert json.loads(flotte("machine", "ls", "-f", "json").stdout) == []


def test_failing_cluster_rolls_back_or_is_kept(
    flotte: Flotte, docker_engine: docker.DockerClient
) -> None:
    bad = ("--local-image", "flotte-no-such-image:0")
    res = flotte(
        "cluster", "create", "nope", "--driver", "local", "--node-count", "1", *bad, check=False
    )
    assert res.returncode == 1 and "rolled back" in res.stderr and "Traceback" not in res.stderr
    assert flotte.owned(docker_engine, cluster="nope") == []
    assert json.loads(flotte("cluster", "list", "-f", "json").stdout) == []

    res = flotte(
        "cluster",
        "create",
        "kept",
        "--driver",
        "local",
        "--node-count",
        "1",
        "--no-rollback",
        *bad,
        check=False,
    )
    assert res.returncode == 1 and "--no-rollback" in res.stderr
    listed = json.loads(flotte("cluster", "list", "-f", "json").stdout)
    assert [(c["name"], c["status"]) for c in listed] == [("kept", "CREATE_FAILED")]
    flotte("cluster", "delete", "kept")
    assert flotte.owned(docker_engine, cluster="kept") == []


def addresses(docker_engine: docker.DockerClient, cluster: str) -> dict[str, str]:
    """Each node container's address on its cluster's network."""
    out = {}
    for name in containers(docker_engine, cluster):
        nets = docker_engine.containers.get(name).attrs["NetworkSettings"]["Networks"]
        out[name] = next(v["IPAddress"] for n, v in nets.items() if n.startswith("flotte-"))
    return out


def test_resize_brings_back_nodes_whose_dockerd_died(
    flotte: Flotte, docker_engine: docker.DockerClient
) -> None:
    """The fault campaign's local runs (seeds 3008, 3014, 3024): a node's dockerd killed
    stops its container; re-running a change used to fail the same way, or to join new
    nodes through whatever engine answered at the dead manager's address."""
    flotte("cluster", "create", "dead", "--driver", "local", "--node-count", "1")
    before = addresses(docker_engine, "dead")
    for node in containers(docker_engine, "dead"):  # the manager's and the worker's
        docker_engine.containers.get(node).exec_run(["sh", "-c", "pkill -9 dockerd"])
    for node in containers(docker_engine, "dead"):
        container = docker_engine.containers.get(node)
        container.wait(timeout=30)  # stopped with its dockerd, as in the campaign

    out = flotte("cluster", "resize", "dead", "2")
    assert "2 to restart" in out.stdout and "UPDATE_COMPLETE" in out.stdout
    running = docker_engine.containers.list(
        ignore_removed=True, filters={"label": f"{CLUSTER_KEY}=dead"}
    )
    assert len(running) == 3
    # Docker hands a restarted container the first free address: restarted together,
    # the two used to swap theirs (CI stop 22) and the worker called itself its manager.
    after = addresses(docker_engine, "dead")
    assert {n: after[n] for n in before} == before
    deadline = time.monotonic() + 60
    while True:  # the restarted worker rejoins on its own, within seconds
        listed = subprocess.run(
            ["docker", "--context", "flotte-dead", "node", "ls", "--format", "{{.Hostname}} {{.Status}}"],
            capture_output=True, text=True, env=flotte.env, timeout=60, check=False,
        )  # fmt: skip
        nodes = sorted(line for line in listed.stdout.split("\n") if line) or [listed.stderr]
        if nodes == ["dead-master-0 Ready", "dead-node-0 Ready", "dead-node-1 Ready"]:
            break
        assert time.monotonic() < deadline, nodes
        time.sleep(1)
    flotte("cluster", "delete", "dead")
    assert flotte.owned(docker_engine, cluster="dead") == []
