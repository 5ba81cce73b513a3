"""Two installations on one engine: the same machine name in each, neither sees the other."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import docker
import pytest

from fixtures.local import Flotte, labelled, sweep
from flotte.drivers.local.names import short_id
from flotte.models import OWNER_KEY

pytestmark = pytest.mark.docker


def docker_cli(flotte: Flotte, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, env=flotte.env, timeout=60
    )


def hostname(flotte: Flotte, context: str) -> str:
    """The engine's own name for its host, asked through the machine's Docker context."""
    # `docker info` exits 0 with an empty name when the server half does not answer in
    # time (a loaded machine): ask `version` first, which fails then.
    for _ in range(10):
        if docker_cli(flotte, "--context", context, "version").returncode == 0:
            break
        time.sleep(3)
    res = docker_cli(flotte, "--context", context, "info", "--format", "{{.Name}}")
    assert res.returncode == 0 and res.stdout.strip(), res.stderr
    return res.stdout.strip()


def test_two_homes_same_machine_name(
    flotte: Flotte, docker_engine: docker.DockerClient, tmp_path: Path
) -> None:
    other = replace(
        flotte,
        home=tmp_path / "home2",
        env={**flotte.env, "FLOTTE_HOME": str(tmp_path / "home2"),
             "DOCKER_CONFIG": str(tmp_path / "docker2")},
    )  # fmt: skip
    try:
        flotte("machine", "create", "same")
        other("machine", "create", "same")
        a, b = flotte.installation, other.installation
        assert a != b
        # Each installation's container carries its id; both engines answer as "same".
        for who, inst in ((flotte, a), (other, b)):
            mine = labelled(docker_engine, {OWNER_KEY: inst})
            assert f"container flotte-same-{short_id(inst)}" in mine
            assert f"volume flotte-same-{short_id(inst)}-docker" in mine
            assert hostname(who, "flotte-same") == "same"
        addresses = {w("machine", "ip", "same").stdout.strip() for w in (flotte, other)}
        assert len(addresses) == 2  # two nodes, not one adopted twice

        # rm in one home leaves the other's machine, network and engine alone.
        flotte("machine", "rm", "-y", "same")
        assert labelled(docker_engine, {OWNER_KEY: a}) == []
        assert other("machine", "status", "same").stdout.strip() == "Running"
        assert hostname(other, "flotte-same") == "same"
        other("machine", "rm", "-y", "same")
        assert labelled(docker_engine, {OWNER_KEY: b}) == []
    finally:
        db = other.home / "flotte.db"
        if db.exists():
            with contextlib.closing(sqlite3.connect(db)) as conn:
                row = conn.execute("SELECT value FROM meta WHERE key='installation'").fetchone()
            if row:
                sweep(docker_engine, {OWNER_KEY: row[0]})
