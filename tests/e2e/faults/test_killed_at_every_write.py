"""A cluster change killed after any of its writes is finished by running it again.

Found by the fault campaign (fake driver, seed 1101): a change killed after its last
step, before its status was written, left the cluster ``UPDATE_IN_PROGRESS`` for good,
since the re-run plans nothing. A kill at a random time rarely lands in such a window,
so here the kill is placed exactly: a forked child runs the real CLI and SIGKILLs itself
right after the K-th transaction that wrote to the state database, for every K the
command has. Each time, the same command run again must leave every status settled
(``*_COMPLETE``, nothing ``*_IN_PROGRESS``), the node groups as asked and the fake cloud
holding exactly the nodes recorded.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import shutil
import signal
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

WRITES = ("INSERT", "UPDATE", "DELETE")

# Imported once here, not in each forked child (a second of CPU each on this machine).
for module in (
    "flotte.cli.main",
    "flotte.cli.cluster",
    "flotte.cli.nodegroup",
    "flotte.drivers.fake",
):
    importlib.import_module(module)


def _cli_in_child(argv: list[str], env: dict[str, str], out: Path, kill_after: int) -> None:
    """In a forked child: run ``flotte ARGV``, SIGKILLed after its ``kill_after``-th
    committed write (0: never); never returns."""
    code = 1
    try:
        wrote, commits = [False], [0]

        def statement(conn: Any, cursor: Any, sql: str, *args: Any) -> None:
            if sql.lstrip().upper().startswith(WRITES):
                wrote[0] = True

        def committed(session: Session) -> None:
            if wrote[0]:
                wrote[0] = False
                commits[0] += 1
                if commits[0] == kill_after:
                    os.kill(os.getpid(), signal.SIGKILL)

        event.listen(Engine, "before_cursor_execute", statement)
        event.listen(Session, "after_commit", committed)
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        # pytest's capture replaced sys.stdout and sys.stderr: write to the file itself
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 - the child's own
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
        os.environ.clear()
        os.environ.update(env)
        from flotte.cli.main import main

        try:
            main(argv)
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


class Home:
    """A flotte installation on the fake cloud, its commands run in forked children."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.cloud = directory / "cloud"
        self.env = {
            k: v for k, v in os.environ.items() if not k.startswith(("FLOTTE_", "OS_", "AWS_"))
        }
        self.env.update(
            FLOTTE_HOME=str(directory / "home"), FLOTTE_FAKE_DIR=str(self.cloud), COLUMNS="200"
        )
        self.runs = 0

    def run(self, *argv: str, kill_after: int = 0) -> tuple[int, str]:
        self.runs += 1
        out = self.dir / f"out-{self.runs}.txt"
        pid = os.fork()
        if pid == 0:
            _cli_in_child(list(argv), self.env, out, kill_after)
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status), out.read_text(errors="replace")

    def ok(self, *argv: str) -> None:
        rc, out = self.run(*argv)
        assert rc == 0, f"flotte {' '.join(argv)} exited {rc}: {out}"

    @contextlib.contextmanager
    def db(self) -> Iterator[sqlite3.Connection]:
        with contextlib.closing(sqlite3.connect(self.dir / "home" / "flotte.db")) as conn:
            yield conn

    def statuses(self) -> dict[str, str]:
        """Every status recorded, read with sqlite3: ``cluster`` and ``group NAME``."""
        with self.db() as conn:
            found = {
                f"cluster {n}": s for n, s in conn.execute("SELECT name, status FROM clusters")
            }
            found.update(
                (f"group {n}", s) for n, s in conn.execute("SELECT name, status FROM nodegroups")
            )
        return found

    def recorded_nodes(self) -> list[str]:
        with self.db() as conn:
            return sorted(r[0] for r in conn.execute("SELECT name FROM machines"))

    def cloud_nodes(self) -> list[str]:
        data = json.loads((self.cloud / "cloud.json").read_text())
        return sorted(r["name"] for r in data["resources"].values() if r["kind"] == "node")


# Each change from the same start (a master, a worker, a node group "extra" of one):
# its command and the nodes it leaves.
BASE = ["k-extra-0", "k-master-0", "k-node-0"]
CHANGES = {
    "resize-up": (("cluster", "resize", "k", "--node-count", "2"), [*BASE, "k-node-1"]),
    "resize-down": (("cluster", "resize", "k", "--node-count", "0"), BASE[:2]),
    "nodegroup-create": (
        ("cluster", "nodegroup", "create", "k", "more", "--node-count", "1"),
        [*BASE, "k-more-0"],
    ),
    "nodegroup-update": (
        ("cluster", "nodegroup", "update", "k", "extra", "--node-count", "2"),
        [*BASE, "k-extra-1"],
    ),
    "nodegroup-delete": (("cluster", "nodegroup", "delete", "k", "extra"), BASE[1:]),
}
# What a re-run may answer when the killed run had finished everything but its status.
DONE_ALREADY = ("already exists", "has no node group")


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_change_killed_after_any_write_is_finished_by_its_rerun(
    tmp_path: Path, change: str
) -> None:
    argv, nodes = CHANGES[change]
    # The start is made once, then copied back in place before each kill (at the same
    # path: the installation records where its fake cloud is).
    home, start = Home(tmp_path / "run"), tmp_path / "start"
    home.ok("cluster", "create", "k", "--driver", "fake", "--node-count", "1", "--no-provision")
    home.ok("cluster", "nodegroup", "create", "k", "extra", "--node-count", "1")
    shutil.copytree(home.dir, start)
    kill_after = 0
    while True:
        kill_after += 1
        shutil.rmtree(home.dir)
        shutil.copytree(start, home.dir)
        rc, out = home.run(*argv, kill_after=kill_after)
        if rc != -signal.SIGKILL:
            assert rc == 0, out
            break  # the command has fewer writes than that: every point was tried
        left = home.statuses()
        rc, out = home.run(*argv)
        where = f"killed after write {kill_after} (left {left}), then re-run"
        assert rc == 0 or any(line in out for line in DONE_ALREADY), f"{where}: {out}"
        assert "Traceback" not in out, f"{where}: {out}"
        settled = home.statuses()
        assert not [s for s in settled.values() if not s.endswith("_COMPLETE")], (
            f"{where}: {settled}"
        )
        assert settled["cluster k"] == "UPDATE_COMPLETE", f"{where}: {settled}"
        assert home.recorded_nodes() == sorted(nodes), where
        assert home.cloud_nodes() == sorted(nodes), where
    assert kill_after > 5  # the kills did land in the change, at many points
