"""Locks between flotte commands: one per cluster or machine, and first-use locks.

An advisory ``flock`` on a file: the kernel drops it when the holder dies, so a killed
command never leaves a stale lock behind.

The per-object lock files are removed when released, so ``locks/`` does not keep a file
for every name ever tried. Removing a lock file is only safe with a check on the other
side: a waiter may have opened the file just before its holder unlinked it, and would
then hold a lock on a file no one else can find. So a holder unlinks the file *while it
still holds the lock*, and whoever gets the lock checks that the path still names the
file it locked (same inode); if not, it starts over with the new file.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flotte.config import READ_ONLY_ERRNOS, private_dir
from flotte.errors import Busy

_POLL = 0.05


def _still_linked(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_ino, st.st_dev) == (mine.st_ino, mine.st_dev)


def _acquire(path: Path, deadline: float, flags: int = fcntl.LOCK_EX) -> int | None:
    """An fd holding ``flags`` on the file at ``path`` (made 0600), None on timeout."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        while True:
            try:
                fcntl.flock(fd, flags | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    return None
                time.sleep(_POLL)
        if _still_linked(fd, path):
            return fd
        os.close(fd)  # its holder removed it while we waited: lock the new file


@contextmanager
def locked(directory: Path, kind: str, name: str, *, wait: float = 0.0) -> Iterator[None]:
    """Hold the lock on ``kind``/``name``; wait up to ``wait`` seconds, then raise Busy."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / f"{kind}-{name}.lock"
    fd = _acquire(path, time.monotonic() + wait)
    if fd is None:
        raise Busy(
            f"{kind} {name!r} is busy: another flotte command (pid {_holder(path)}) "
            "is working on it",
            hint="wait for it to finish, or pass --wait SECONDS",
        )
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        # unlink before unlocking: a waiter that opened this file sees it is gone
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)  # closing releases the flock


def _holder(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip()[:32] or "?"
    except OSError:
        return "?"


def sweep(directory: Path) -> int:
    """Remove the lock files no one holds (left by older versions); returns how many."""
    removed = 0
    try:
        candidates = [p for p in directory.iterdir() if p.suffix == ".lock"]
    except OSError:
        return 0
    for path in candidates:
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue  # in use
        try:
            if _still_linked(fd, path):
                path.unlink()
                removed += 1
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


@contextmanager
def first_use(path: Path, *, shared: bool = False, wait: float = 120.0) -> Iterator[bool]:
    """Hold the long-lived lock file ``path`` (never removed) exclusively or shared.

    Yields False without locking when the lock file cannot be made (a read-only home):
    nothing can be written there, so there is nothing to serialise.
    """
    flags = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    try:
        private_dir(path.parent)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as err:
        if err.errno not in READ_ONLY_ERRNOS and err.errno != errno.ENOENT:
            raise
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            yield False
            return
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, flags | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise Busy(
                        f"{path} is held by another flotte command for more than {wait:.0f} s",
                        hint="wait for it to finish, then re-run",
                    ) from None
                time.sleep(_POLL)
        yield True
    finally:
        os.close(fd)
