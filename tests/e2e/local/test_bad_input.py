"""Bad input: one clear line, a non-zero exit, and nothing changed."""

from __future__ import annotations

import json
from pathlib import Path

import docker
import pytest

from fixtures.local import Flotte
from flotte.models import OWNER_KEY

pytestmark = pytest.mark.docker


def snapshot(flotte: Flotte, client: docker.DockerClient) -> tuple[object, ...]:
    machines = json.loads(flotte("machine", "ls", "-f", "json").stdout)
    clusters = json.loads(flotte("cluster", "list", "-f", "json").stdout)
    # this installation's only: other tests may share the engine
    mine = {"label": f"{OWNER_KEY}={flotte.installation}"}
    names = sorted(
        c.name for c in client.containers.list(ignore_removed=True, all=True, filters=mine)
    )
    nets = sorted(n.name for n in client.networks.list(filters=mine))
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


async def test_local_privileged_is_checked_before_the_engine_is_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``check`` refuses a bad --local-privileged on its own, so a dry run refuses it too,
    even where no engine answers (DOCKER_HOST points at nothing here)."""
    from flotte.drivers.base import DriverContext, GroupSpec
    from flotte.drivers.local import LocalDriver
    from flotte.errors import UsageError
    from flotte.models import NodeSpec, Owner, Role
    from flotte.pki import CertificateAuthority

    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/nothing.sock")
    owner = Owner(machine="m", installation="i")
    for where in ("driver", "node"):
        options = {"local_privileged": "maybe"}
        ctx = DriverContext(
            home=tmp_path,
            ca=CertificateAuthority(tmp_path / "certs"),
            installation="i",
            options=options if where == "driver" else {},
        )
        node = NodeSpec("m", Role.MACHINE, owner, "local", options if where == "node" else {})
        with pytest.raises(UsageError, match="--local-privileged 'maybe': use auto, yes or no"):
            await LocalDriver(ctx).check(GroupSpec(name="m", owner=owner, nodes=(node,)))
