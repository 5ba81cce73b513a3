"""The flotte CLI in forked children of one interpreter that has already imported it.

A fault campaign starts thousands of ``flotte`` commands; each new interpreter would
spend about a second of CPU importing SQLAlchemy, pydantic and the drivers before doing
anything. The test suite's zygote (``tests/fixtures/cli_zygote.py``) imports them once,
then forks one child per command: each child is a real process running the real
``flotte.cli.main.main`` with its own environment, stdin, stdout and stderr, so it can be
SIGKILLed at any moment like the ``flotte`` a user runs. Nothing in flotte is replaced.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fixtures.cli_zygote import Zygote


@dataclass
class Result:
    rc: int | None  # None: still running after the timeout (then killed)
    out: str
    err: str
    seconds: float


@dataclass
class Child:
    pid: int
    out: Path
    err: Path
    started: float


class CLI:
    """Start commands in the zygote; kill them; read what they printed."""

    def __init__(self, workdir: Path, preload: tuple[str, ...] = ()) -> None:
        self.workdir = workdir
        self.serial = 0
        self.zygote = Zygote(preload)

    def spawn(self, argv: list[str], env: dict[str, str]) -> Child:
        self.serial += 1
        out = self.workdir / f"cmd-{self.serial}.out"
        err = self.workdir / f"cmd-{self.serial}.err"
        return Child(self.zygote.spawn(argv, env, out, err), out, err, time.monotonic())

    def wait(self, child: Child, timeout: float, *, kill_late: bool = True) -> Result:
        """Wait for ``child``; when it still runs after ``timeout``: kill it (or, with
        ``kill_late=False``, leave it running and answer ``rc=None``)."""
        rc = self.zygote.wait(child.pid, timeout)
        if rc is None and kill_late:
            return self.kill(child)
        return self._result(child, rc)

    def kill(self, child: Child) -> Result:
        return self._result(child, self.zygote.kill(child.pid))

    @staticmethod
    def _result(child: Child, rc: int | None) -> Result:
        return Result(
            rc,
            child.out.read_text(errors="replace"),
            child.err.read_text(errors="replace"),
            time.monotonic() - child.started,
        )

    def run(self, argv: list[str], env: dict[str, str], timeout: float = 300) -> Result:
        return self.wait(self.spawn(argv, env), timeout)

    def close(self) -> None:
        self.zygote.close()
