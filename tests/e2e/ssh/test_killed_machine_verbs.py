"""A lone machine's create or rm killed half way on an existing host: run again, it ends.

Both were found by the ssh fault campaign (``bench/faults.py --driver ssh``, seeds 4305
and 4449): the create, run again once its host was recorded, said "the ssh driver needs
a host"; the rm, run again once the host was given back, said the SSH key's copy did
not exist.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import time
from contextlib import closing
from pathlib import Path

import pytest
from ssh_helpers import snapshot

from fixtures.local import Flotte
from flotte.service import Service

pytestmark = pytest.mark.docker


def recorded(home: Path, name: str) -> bool:
    """True once the machine's row holds what its driver made (the host reached)."""
    db = home / "flotte.db"
    if not db.exists():
        return False
    try:
        with closing(sqlite3.connect(db, timeout=1)) as conn:
            row = conn.execute("SELECT record FROM machines WHERE name = ?", (name,)).fetchone()
    except sqlite3.OperationalError:  # the first use is making the tables
        return False
    return bool(row and row[0] and json.loads(row[0]))


def test_a_killed_machine_create_is_finished_by_running_it_again(
    flotte: Flotte, ssh_lab, ssh_host
) -> None:
    host = ssh_host("docker")
    before = snapshot(host)
    argv = ["machine", "create", "-d", "ssh", "--ssh-host", host.ip, "--ssh-key", str(ssh_lab.key)]
    child = subprocess.Popen(
        flotte.command(*argv, "box"),
        env=flotte.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not recorded(flotte.home, "box"):
        assert child.poll() is None, f"the create ended before the kill: {child.stderr.read()}"
        assert time.monotonic() < deadline, "the host was never recorded"
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait(30)

    again = flotte(*argv, "box")  # before: "the ssh driver needs a host"
    assert "flotte machine env box" in again.stdout
    assert flotte("machine", "status", "box").stdout.strip() == "Running"
    flotte("machine", "rm", "-y", "box")
    assert snapshot(host) == before


def test_a_machine_rm_killed_after_the_host_was_given_back_is_finished(
    flotte: Flotte, ssh_lab, ssh_host
) -> None:
    host = ssh_host("docker")
    before = snapshot(host)
    flotte(
        "machine", "create", "-d", "ssh", "--ssh-host", host.ip, "--ssh-key", str(ssh_lab.key),
        "box",
    )  # fmt: skip
    # What an rm killed between its driver step and its record leaves: the host given
    # back, the key's copy gone, the machine still recorded.
    svc = Service(str(flotte.home))
    node = svc.store.node("box")
    assert node.record is not None
    runner = svc.machines.runner(node)
    asyncio.run(runner.driver(node.driver).remove(node.record))
    assert snapshot(host) == before
    assert not (flotte.home / "secrets" / "machines" / "box" / "ssh_key").exists()

    flotte("machine", "rm", "-y", "box")  # before: "SSH key ... does not exist"
    assert "box" not in flotte("machine", "ls", "-q").stdout.split()
    assert snapshot(host) == before
