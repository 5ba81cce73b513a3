"""Running ``flotte`` as a measured child process, for bench/scale.py.

One command in a throw-away ``FLOTTE_HOME``: wall time, the child's own CPU seconds and
peak RSS (``os.wait4``, so nothing else on the machine is counted), and the rows it wrote
to its state database (bench/scale_child.py).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cpu_by_process

BENCH = Path(__file__).resolve().parent
FLOTTE = Path(sys.executable).with_name("flotte")


@dataclass
class Run:
    argv: list[str]
    returncode: int
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    db: dict[str, int]
    stdout: str
    stderr: str

    def check(self) -> Run:
        if self.returncode:
            raise RuntimeError(
                f"flotte {' '.join(self.argv)} exited {self.returncode}: {self.stderr[-2000:]}"
            )
        return self

    def figures(self) -> dict[str, Any]:
        return {
            "wall_s": round(self.wall_s, 3),
            "cpu_s": round(self.cpu_s, 3),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            **self.db,
        }


def _wait(proc: subprocess.Popen[bytes]) -> tuple[int, resource.struct_rusage]:
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage


def flotte(
    argv: list[str], env: Mapping[str, str], *, counted: bool = True, timeout: float = 1800
) -> Run:
    """Run ``flotte ARGV``; ``counted`` goes through scale_child.py to count DB writes.

    Uncounted runs start the installed ``flotte`` script itself, as a user would: that is
    what the CLI start-up figures time.
    """
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = Path(f.name)
    cmd = [sys.executable, str(BENCH / "scale_child.py"), str(out), *argv]
    if not counted:
        cmd = [str(FLOTTE), *argv]
    run = measure(cmd, env, timeout)
    run.argv = argv
    if counted and out.stat().st_size:
        run.db = json.loads(out.read_text())
    out.unlink(missing_ok=True)
    return run


def first_use(env: Mapping[str, str]) -> dict[str, Any]:
    """Make the state database of ``env``'s FLOTTE_HOME, as a user's first command does;
    its figures. The commands measured after it count their own work only: the schema is
    made once per installation (0.8-1.3 s of CPU measured, which a 200-node create's CPU
    per node would carry as 4-6 ms)."""
    return flotte(["machine", "ls"], env, counted=False).check().figures()


def python(argv: list[str], env: Mapping[str, str], timeout: float = 1800) -> Run:
    """Run a Python script of the bench with this interpreter, measured the same way."""
    return measure([sys.executable, *argv], env, timeout)


def measure(cmd: list[str], env: Mapping[str, str], timeout: float) -> Run:
    started = time.monotonic()
    with tempfile.TemporaryFile() as so, tempfile.TemporaryFile() as se:
        proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=so, stderr=se)
        # Popen.poll() would reap the child and lose its rusage: only wait4 reaps it.
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() > deadline:
                proc.kill()
                _, usage = _wait(proc)
                break
            time.sleep(0.01)
        wall = time.monotonic() - started
        so.seek(0)
        se.seek(0)
        stdout, stderr = so.read().decode(), se.read().decode()
    return Run(
        argv=cmd,
        returncode=proc.returncode or 0,
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        peak_rss_mb=usage.ru_maxrss / 1024,
        db={},
        stdout=stdout,
        stderr=stderr,
    )


def load() -> dict[str, float]:
    """The machine's load averages, reported with every figure taken under them."""
    one, five, fifteen = os.getloadavg()
    return {"load_1m": round(one, 2), "load_5m": round(five, 2), "load_15m": round(fifteen, 2)}


CpuMark = tuple[tuple[float, float], dict[int, tuple[str, float]]]


def cpu_mark() -> CpuMark:
    """The machine's busy and total CPU seconds, and each process's, now."""
    return cpu_by_process.machine_cpu(), cpu_by_process.sample()


def cpu_since(mark: CpuMark, nodes: int) -> dict[str, Any]:
    """What the machine's cores did since ``mark``: how busy they were, and whose CPU
    it was by kind of process (devcloud's services are long-lived, so sampling at the
    two ends catches theirs; a process that ended meanwhile, such as flotte's CLI, is
    missed: its own figure is apart)."""
    (busy0, all0), before = mark
    (busy1, all1), now = cpu_by_process.machine_cpu(), cpu_by_process.sample()
    busy = busy1 - busy0
    kinds = cpu_by_process.used_by_kind(before, now)
    return {
        "busy_s": round(busy, 1),
        "busy_fraction": round(busy / max(all1 - all0, 1e-9), 3),
        "busy_ms_per_node": round(1000 * busy / max(nodes, 1), 1),
        "by_kind_s": {k: round(v, 1) for k, v in sorted(kinds.items(), key=lambda x: -x[1])[:12]},
    }
