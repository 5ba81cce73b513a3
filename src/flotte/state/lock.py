"""One lock per cluster or machine, so two commands never work on it at once.

An advisory ``flock`` on a file under ``locks/``: the kernel drops it when the holder
dies, so a killed command never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flotte.errors import Busy


@contextmanager
def locked(directory: Path, kind: str, name: str, *, wait: float = 0.0) -> Iterator[None]:
    """Hold the lock on ``kind``/``name``; wait up to ``wait`` seconds, then raise Busy."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{kind}-{name}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + wait
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                    raise Busy(
                        f"{kind} {name!r} is busy: another flotte command (pid {holder}) "
                        "is working on it",
                        hint="wait for it to finish, or pass --wait SECONDS",
                    ) from None
                time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the flock
