"""The flotte CLI in forked children of one interpreter that has already imported it.

A fault campaign starts thousands of ``flotte`` commands; on this shared 2-core machine
each new interpreter spends about a second of CPU importing SQLAlchemy, pydantic and the
drivers before doing anything. A *zygote* (this file run with ``--serve``) imports them
once, then forks one child per command: each child is a real process running the real
``flotte.cli.main.main`` with its own environment, stdin, stdout and stderr, so it can be
SIGKILLed at any moment like the ``flotte`` a user runs. Nothing in flotte is replaced.

Protocol (JSON lines on the zygote's stdin/stdout): ``{"spawn": [...argv], "env": {...},
"out": PATH, "err": PATH}`` answers ``{"pid": N}``; ``{"wait": N, "timeout": S}`` answers
``{"rc": CODE}`` (``null`` when the child still runs after S seconds; -9 when killed).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

PRELOAD = (
    "flotte.cli.main",
    "flotte.cli.cluster",
    "flotte.cli.machine",
    "flotte.cli.nodegroup",
    "flotte.service",
    "flotte.drivers.fake",
)


def _child(argv: list[str], env: dict[str, str], out: str, err: str) -> None:
    """In the forked child: become ``flotte ARGV`` and never return."""
    code = 1
    try:
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        for fd, path in ((1, out), (2, err)):
            target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(target, fd)
            os.close(target)
        os.environ.clear()
        os.environ.update(env)
        sys.argv = ["flotte", *argv]
        from flotte.cli.main import main

        try:
            main(argv)
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        except BaseException:
            traceback.print_exc()
            code = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _wait(pid: int, timeout: float) -> int | None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return -255  # reaped already: asked twice
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            return None
        time.sleep(0.02)


def serve(preload: list[str]) -> None:
    for module in preload:
        importlib.import_module(module)
    # Everything a command may import later, now: a checkout that changes under a long
    # campaign (a rebase) must not mix old modules with new ones in one child.
    import pkgutil

    import flotte

    for info in pkgutil.walk_packages(flotte.__path__, "flotte."):
        if info.name.startswith(("flotte.devcloud", "flotte.api", "flotte.state.migrations")):
            continue
        with contextlib.suppress(Exception):
            importlib.import_module(info.name)
    reply = sys.stdout
    reply.write(json.dumps({"ready": True}) + "\n")
    reply.flush()
    for line in sys.stdin:
        request: dict[str, Any] = json.loads(line)
        if "spawn" in request:
            reply.flush()
            pid = os.fork()
            if pid == 0:
                _child(request["spawn"], request["env"], request["out"], request["err"])
            answer: dict[str, Any] = {"pid": pid}
        else:
            answer = {"rc": _wait(int(request["wait"]), float(request["timeout"]))}
        reply.write(json.dumps(answer) + "\n")
        reply.flush()


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
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", *PRELOAD, *preload],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self._ask_line()  # {"ready": true} once every module is imported

    def _ask_line(self, request: dict[str, Any] | None = None) -> dict[str, Any]:
        stdin: IO[str] | None = self.proc.stdin
        stdout: IO[str] | None = self.proc.stdout
        assert stdin is not None and stdout is not None
        if request is not None:
            stdin.write(json.dumps(request) + "\n")
            stdin.flush()
        line = stdout.readline()
        if not line:
            raise RuntimeError("the flotte zygote died")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def spawn(self, argv: list[str], env: dict[str, str]) -> Child:
        self.serial += 1
        out = self.workdir / f"cmd-{self.serial}.out"
        err = self.workdir / f"cmd-{self.serial}.err"
        answer = self._ask_line({"spawn": argv, "env": env, "out": str(out), "err": str(err)})
        return Child(int(answer["pid"]), out, err, time.monotonic())

    def wait(self, child: Child, timeout: float, *, kill_late: bool = True) -> Result:
        """Wait for ``child``; when it still runs after ``timeout``: kill it (or, with
        ``kill_late=False``, leave it running and answer ``rc=None``)."""
        rc = self._ask_line({"wait": child.pid, "timeout": timeout})["rc"]
        if rc is None and kill_late:
            return self.kill(child)
        return Result(
            rc,
            child.out.read_text(errors="replace"),
            child.err.read_text(errors="replace"),
            time.monotonic() - child.started,
        )

    def kill(self, child: Child) -> Result:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signal.SIGKILL)
        rc = self._ask_line({"wait": child.pid, "timeout": 30})["rc"]
        return Result(
            rc,
            child.out.read_text(errors="replace"),
            child.err.read_text(errors="replace"),
            time.monotonic() - child.started,
        )

    def run(self, argv: list[str], env: dict[str, str], timeout: float = 300) -> Result:
        return self.wait(self.spawn(argv, env), timeout)

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


if __name__ == "__main__" and sys.argv[1:2] == ["--serve"]:
    serve(sys.argv[2:])
