"""Bad input: one clear line, a non-zero exit, and nothing changed."""

from __future__ import annotations

import json

import docker
import pytest

from fixtures.local import Flotte

pytestmark = pytest.mark.docker


def snapshot(flotte: Flotte, client: docker.DockerClient) -> tuple[object, ...]:
    machines = json.loads(flotte("machine", "ls", "-f", "json").stdout)
    clusters = json.loads(flotte("cluster", "list", "-f", "json").stdout)
    names = sorted(
        c.name for c in client.containers.list(all=True, filters={"label": "flotte.owner"})
    )
    nets = sorted(n.name for n in client.networks.list(filters={"label": "flotte.owner"}))
    return (machines, [(c["name"], c["status"], c["node_count"]) for c in clusters], names, nets)


def assert_one_line(res: object, *words: str) -> None:
    stderr = res.stderr  # type: ignore[attr-defined]
    assert res.returncode != 0, stderr  # type: ignore[attr-defined]
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.strip()]
    assert len(errors) == 1, stderr
    for word in words:
        assert word in errors[0], errors[0]


CASES = [
    (("machine", "create", "-d", "nope", "x"), ("unknown driver 'nope'",)),
    (("machine", "create", "Bad_Name"), ("invalid machine name",)),
    (("machine", "create", "good", "--engine-label", "novalue"), ("KEY=VALUE",)),
    (("cluster", "create", "c", "--driver", "local", "--master-count", "0"), ("--master-count",)),
    (("cluster", "create", "c", "--driver", "local", "--node-count", "-1"), ("--node-count",)),
    (("cluster", "create", "c", "--template", "ghost"), ("template 'ghost' not found",)),
    (("cluster", "create", "c", "--driver", "nope"), ("unknown driver",)),
    (("cluster", "create", "c", "--driver", "local", "--coe", "mesos"), ("unknown COE",)),
    (("cluster", "create", "c", "--driver", "local", "--timeout", "0"), ("--timeout",)),
    (("cluster", "create", "UPPER", "--driver", "local"), ("invalid cluster name 'UPPER'",)),
    (
        ("cluster", "create", "c", "--driver", "local", "--no-such-flag"),
        ("No such option", "--help"),
    ),
    (("machine", "create", "x", "--engine-opt", "--debug"), ("without dashes",)),
    (("cluster", "resize", "ghost", "--node-count", "1"), ("cluster 'ghost' not found",)),
    (("cluster", "delete", "ghost"), ("cluster 'ghost' not found",)),
    (("machine", "rm", "-y", "ghost"), ("machine 'ghost' not found",)),
    (("machine", "ls", "--filter", "color=red"), ("--filter",)),
    (("template", "create", "t", "--coe", "kubernetes-x"), ("unknown COE",)),
]


@pytest.mark.parametrize(("args", "words"), CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_input(
    flotte: Flotte,
    docker_engine: docker.DockerClient,
    args: tuple[str, ...],
    words: tuple[str, ...],
) -> None:
    before = snapshot(flotte, docker_engine)
    assert_one_line(flotte(*args, check=False), *words)
    assert snapshot(flotte, docker_engine) == before


def test_duplicate_names_and_foreign_nodes(
    flotte: Flotte, docker_engine: docker.DockerClient
) -> None:
    flotte("cluster", "create", "dup", "--driver", "local", "--node-count", "1")
    before = snapshot(flotte, docker_engine)
    assert_one_line(
        flotte("cluster", "create", "dup", "--driver", "local", check=False), "already exists"
    )
    assert_one_line(
        flotte("machine", "create", "dup", check=False), "already the name of a cluster"
    )
    assert_one_line(
        flotte(
            "cluster",
            "resize",
            "dup",
            "--node-count",
            "0",
            "--nodes-to-remove",
            "dup-node-7",
            check=False,
        ),
        "node 'dup-node-7' is not in cluster 'dup'",
    )
    assert_one_line(
        flotte(
            "cluster",
            "resize",
            "dup",
            "--node-count",
            "0",
            "--nodes-to-remove",
            "dup-master-0",
            check=False,
        ),
        "manager",
    )
    assert_one_line(
        flotte("machine", "rm", "-y", "dup-node-0", check=False), "node of cluster 'dup'"
    )
    assert snapshot(flotte, docker_engine) == before
    flotte("cluster", "delete", "dup")


def test_duplicate_machine(flotte: Flotte, docker_engine: docker.DockerClient) -> None:
    flotte("machine", "create", "twice")
    before = snapshot(flotte, docker_engine)
    assert_one_line(flotte("machine", "create", "twice", check=False), "already exists")
    assert snapshot(flotte, docker_engine) == before
    flotte("machine", "rm", "-y", "twice")


def test_engine_not_reachable(flotte: Flotte, docker_engine: docker.DockerClient) -> None:
    before = snapshot(flotte, docker_engine)
    env = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    res = flotte("machine", "create", "offline", check=False, env=env)
    assert_one_line(res, "cannot reach the local Docker engine")
    res = flotte("cluster", "create", "offline", "--driver", "local", check=False, env=env)
    assert_one_line(res, "cannot reach the local Docker engine")
    assert snapshot(flotte, docker_engine) == before


def test_busy_cluster(flotte: Flotte, docker_engine: docker.DockerClient) -> None:
    from flotte.state.lock import locked

    with locked(flotte.home / "locks", "cluster", "held"):
        res = flotte("cluster", "create", "held", "--driver", "local", check=False)
    assert res.returncode == 3
    assert_one_line(res, "cluster 'held' is busy")
    assert json.loads(flotte("cluster", "list", "-f", "json").stdout) == []
