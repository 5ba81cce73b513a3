"""``machine ls``, ``cluster list`` and ``cluster show`` print the same lines whether
they read the state with sqlite3 (the database current) or through the store
(``FLOTTE_DATABASE_URL`` naming the same file makes them take the store's path)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from flotte.cli.main import cli
from flotte.models import Endpoint, EngineOptions
from flotte.service import Service
from flotte.state.node_rows import set_node

COMMANDS = [
    ["machine", "ls"],
    ["machine", "ls", "-f", "json"],
    ["machine", "ls", "-q"],
    ["machine", "ls", "--filter", "state=Stopped"],
    ["cluster", "list"],
    ["cluster", "list", "-f", "json"],
    ["cluster", "show", "c"],
    ["cluster", "show", "c", "-f", "json"],
    ["cluster", "show", "c", "-f", "yaml"],
]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two machines (one stopped) and a cluster with a failed node and recorded health."""
    root = tmp_path_factory.mktemp("paths")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLOTTE_FAKE_DIR", str(root / "cloud"))
        mp.delenv("FLOTTE_DATABASE_URL", raising=False)
        svc = Service(root / "home")
        for name in ("m1", "m2"):
            spec, secrets = svc.machines.spec(name, "fake", {}, EngineOptions(), no_provision=True)
            asyncio.run(svc.machines.create(spec, secrets))
        asyncio.run(svc.machines.action("m2", "stop"))
        # an engine that does not answer (a loopback port nothing listens on): the
        # DOCKER and ERRORS columns ask it on both paths
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        node = svc.store.node("m1")
        svc.store.now(set_node, "m1", record=node.record, endpoint=Endpoint("127.0.0.1", port))
        spec, secrets = svc.resolve("c", driver="fake", node_count=2, no_provision=True)
        asyncio.run(svc.clusters.create(spec, secrets))
        svc.store.now(set_node, "c-node-1", status="FAILED", status_reason="it broke")
        svc.store.set_cluster("c", health_status="UNHEALTHY", health_status_reason={"x": "y"})
        svc.close()
    return root


@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_both_paths_print_the_same(argv: list[str], home: Path) -> None:
    env = {"FLOTTE_HOME": str(home / "home"), "FLOTTE_FAKE_DIR": str(home / "cloud")}
    database = home / "home" / "flotte.db"
    fast = CliRunner().invoke(cli, argv, env={**env, "FLOTTE_DATABASE_URL": None})
    stored = CliRunner().invoke(
        cli, argv, env={**env, "FLOTTE_DATABASE_URL": f"sqlite:///{database}"}
    )
    assert fast.exit_code == 0, fast.output
    assert stored.exit_code == 0, stored.output
    assert fast.output.splitlines() == stored.output.splitlines()
    shown = {line.split()[0].strip('",') for line in fast.output.splitlines() if line.strip()}
    if argv[0] == "cluster":
        assert "UNHEALTHY" in fast.output
    elif "--filter" in argv:
        assert "m2" in shown and "m1" not in shown and "Stopped" in fast.output
    elif "-q" in argv:
        assert shown == {"m1", "m2", "c-master-0", "c-node-0", "c-node-1"}
    else:
        assert "Stopped" in fast.output and "it broke" in fast.output
        assert "Unknown" in fast.output  # m1's engine was asked


def test_show_of_an_unknown_cluster_says_so_on_both_paths(home: Path) -> None:
    env = {"FLOTTE_HOME": str(home / "home"), "FLOTTE_FAKE_DIR": str(home / "cloud")}
    database = home / "home" / "flotte.db"
    for url in (None, f"sqlite:///{database}"):
        res = CliRunner().invoke(
            cli, ["cluster", "show", "nope"], env={**env, "FLOTTE_DATABASE_URL": url}
        )
        assert res.exit_code != 0
        assert "cluster 'nope' not found" in str(res.exception or res.output)


def test_show_reads_the_recorded_health_and_checks_with_health(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plain ``show`` asks no provider (Magnum's ``coe cluster show`` reads the record);
    ``--health`` checks every node now, records the verdict and lists the swarm."""
    import json

    monkeypatch.setenv("FLOTTE_FAKE_DIR", str(tmp_path / "cloud"))
    monkeypatch.delenv("FLOTTE_DATABASE_URL", raising=False)
    svc = Service(tmp_path / "home")
    spec, secrets = svc.resolve("h", driver="fake", node_count=1, no_provision=True)
    asyncio.run(svc.clusters.create(spec, secrets))
    svc.close()
    env = {"FLOTTE_HOME": str(tmp_path / "home"), "FLOTTE_FAKE_DIR": str(tmp_path / "cloud")}

    def show(*extra: str) -> dict[str, object]:
        res = CliRunner().invoke(cli, ["cluster", "show", "h", "-f", "json", *extra], env=env)
        assert res.exit_code == 0, res.output
        return dict(json.loads(res.output))

    assert show()["health_status"] == "UNKNOWN"  # never checked
    checked = show("--health")
    assert checked["health_status"] == "HEALTHY"
    assert checked["health_status_reason"] == {"h-master-0": "ok", "h-node-0": "ok"}
    assert show() == checked  # recorded by the check, read back as is
