"""Start, watch and stop devcloud's processes by recorded PID.

Each process is started in its own session with its output appended to
``logs/<name>.log``; its PID and kernel start time go to ``run/<name>.pid``. The
start time guards against PID reuse: a record only matches a live process whose
``/proc/PID/stat`` start time is the one recorded, so ``down`` never signals a
stranger. PID 1 on these machines does not reap orphans, so a dead process may
linger as a zombie: zombies count as stopped.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from flotte.devcloud.layout import Layout
from flotte.errors import FlotteError, TimeoutError_

# Popen objects of processes this Python process started, so that it can reap them.
_children: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class ProcRecord:
    name: str
    pid: int
    start_time: int
    argv: tuple[str, ...]


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, start time) of a process, or None when there is none."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name sits in parentheses and may itself contain spaces.
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[1]), int(fields[19])


def _reap(pid: int) -> None:
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        del _children[pid]


def alive(pid: int, start_time: int | None = None) -> bool:
    """True when ``pid`` runs (not a zombie) and, if given, started at ``start_time``."""
    _reap(pid)
    st = _stat(pid)
    if st is None or st[0] in ("Z", "X"):
        return False
    return start_time is None or st[2] == start_time


def read(layout: Layout, name: str) -> ProcRecord | None:
    try:
        data = json.loads(layout.pidfile(name).read_text())
    except (FileNotFoundError, ValueError):
        return None
    return ProcRecord(name, int(data["pid"]), int(data["start_time"]), tuple(data["argv"]))


def running(layout: Layout, name: str) -> ProcRecord | None:
    """The record of ``name`` when the process it names is still alive."""
    rec = read(layout, name)
    if rec is not None and alive(rec.pid, rec.start_time):
        return rec
    return None


def start(
    layout: Layout,
    name: str,
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> ProcRecord:
    """Start ``argv`` detached, log to ``logs/<name>.log``, and record its PID."""
    layout.logs.mkdir(parents=True, exist_ok=True)
    full_env = dict(os.environ)
    full_env.update(env or {})
    with open(layout.log(name), "ab") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(argv)}\n".encode())
        log.flush()
        child = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=cwd or layout.root,
            start_new_session=True,  # a Ctrl-C on `up` must not kill the services
            close_fds=True,
        )
    _children[child.pid] = child
    st = _stat(child.pid)
    rec = ProcRecord(name, child.pid, st[2] if st else 0, tuple(argv))
    layout.run.mkdir(parents=True, exist_ok=True)
    layout.pidfile(name).write_text(
        json.dumps({"pid": rec.pid, "start_time": rec.start_time, "argv": list(argv)})
    )
    return rec


def _descendants(pid: int) -> list[tuple[int, int]]:
    """(pid, start time) of every live descendant of ``pid``."""
    parents: dict[int, list[tuple[int, int]]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        st = _stat(int(entry))
        if st is not None and st[0] != "Z":
            parents.setdefault(st[1], []).append((int(entry), st[2]))
    found: list[tuple[int, int]] = []
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child[0])
    return found


def _wait_gone(pids: Sequence[tuple[int, int]], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(alive(p, t) for p, t in pids):
            return True
        time.sleep(0.1)
    return not any(alive(p, t) for p, t in pids)


def stop(layout: Layout, name: str, timeout: float = 20.0) -> bool:
    """Stop ``name`` and its descendants (TERM, then KILL); True if it was running."""
    rec = running(layout, name)
    if rec is None:
        layout.pidfile(name).unlink(missing_ok=True)
        return False
    tree = [(rec.pid, rec.start_time), *_descendants(rec.pid)]
    with contextlib.suppress(ProcessLookupError):
        os.kill(rec.pid, signal.SIGTERM)
    if not _wait_gone(tree[:1], timeout):
        for pid, started in tree:
            if alive(pid, started):
                os.kill(pid, signal.SIGKILL)
    # Workers a master failed to take down with it (gunicorn, erl helpers).
    if not _wait_gone(tree, 5.0):
        for pid, started in tree:
            if alive(pid, started):
                os.kill(pid, signal.SIGKILL)
        _wait_gone(tree, 5.0)
    layout.pidfile(name).unlink(missing_ok=True)
    return True


def memory_kib(pid: int) -> int:
    """Proportional set size of ``pid`` and its descendants, in KiB (0 if unreadable)."""
    total = 0
    for p in [pid, *(d for d, _ in _descendants(pid))]:
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
        except OSError:
            continue
    return total


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def wait_until(
    check: Callable[[], bool],
    *,
    what: str,
    timeout: float,
    layout: Layout | None = None,
    process: str | None = None,
    interval: float = 0.25,
) -> None:
    """Poll ``check`` until true; fail at once if ``process`` died, or on timeout."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        try:
            if check():
                return
        except Exception as err:  # a service still starting answers with errors
            last = err
        if layout is not None and process is not None and running(layout, process) is None:
            raise FlotteError(f"{process} failed to start: see {layout.log(process)}")
        if time.monotonic() > deadline:
            where = f": see {layout.log(process)}" if layout is not None and process else ""
            why = f" (last error: {str(last)[:200]})" if last is not None else ""
            raise TimeoutError_(f"{what} not ready after {timeout:.0f} s{why}{where}")
        time.sleep(interval)
