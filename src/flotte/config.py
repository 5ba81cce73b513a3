"""Where flotte keeps its files: flag > environment > ``~/.config`` / ``~/.local/share``.

``FLOTTE_HOME`` puts everything (state database, certificates, keys, locks) under one
directory, which is what tests and CI use. Every directory flotte makes is 0700 and every
secret file 0600 from its first byte. Files are replaced atomically through a temporary
file with a name of its own, so two commands writing the same file at once never
rename each other's half-written temporary file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

# errno values meaning "this file system or directory cannot be written by us"
READ_ONLY_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})


@dataclass(frozen=True)
class Paths:
    """The directories of one flotte installation."""

    data: Path
    config: Path

    @property
    def database(self) -> Path:
        return self.data / "flotte.db"

    @property
    def secrets(self) -> Path:
        return self.data / "secrets"

    @property
    def certs(self) -> Path:
        return self.secrets / "certs"

    @property
    def machines(self) -> Path:
        return self.secrets / "machines"

    @property
    def locks(self) -> Path:
        return self.data / "locks"

    @property
    def known_hosts(self) -> Path:
        return self.secrets / "known_hosts"

    def cluster_ca(self, cluster: str) -> Path:
        """Where flotte serve puts a cluster's own CA (``certs/`` and ``ca/`` inside)."""
        return self.secrets / "cluster-ca" / cluster

    def ensure(self) -> Paths:
        """Make the directories (0700); a read-only home that already has them is fine."""
        for d in (self.data, self.config, self.locks, self.secrets, self.certs, self.machines):
            private_dir(d)
        return self


def paths(home: str | os.PathLike[str] | None = None) -> Paths:
    """Resolve the installation's directories (explicit argument wins, then FLOTTE_HOME)."""
    root = home or os.environ.get("FLOTTE_HOME")
    if root:
        base = Path(root).expanduser()
        return Paths(data=base, config=base / "config")
    xdg_data = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    xdg_config = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config"))
    return Paths(data=xdg_data / "flotte", config=xdg_config / "flotte")


def private_dir(path: Path) -> Path:
    """Make ``path`` (and missing parents) with mode 0700, or tighten it when it is ours.

    Safe when many processes do it at once. A directory that cannot be made or changed
    (a read-only home, someone else's directory) is left as it is: reading still works,
    and whatever needs to write there says what is wrong.
    """
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as err:
        if err.errno not in READ_ONLY_ERRNOS:
            raise
        return path
    with contextlib.suppress(OSError):
        st = path.stat()
        if st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) & 0o077:
            path.chmod(stat.S_IMODE(st.st_mode) & 0o700)
    return path


def writable(path: Path) -> bool:
    """True when files can be made in the directory ``path`` (False on a read-only mount)."""
    try:
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            return False
    except OSError:
        return False
    return os.access(path, os.W_OK | os.X_OK)


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # mkstemp makes the file 0600 with a unique name: concurrent writers never share it
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        try:
            if mode != 0o600:
                os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _sync_dir(path.parent)


def _sync_dir(directory: Path) -> None:
    # the rename itself is durable only once the directory is
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_secret(path: Path, data: bytes) -> None:
    """Write a private file atomically with mode 0600 from its first byte."""
    _write(path, data, 0o600)


def write_public(path: Path, data: bytes) -> None:
    """Write a non-secret file atomically (certificates, configs), mode 0644."""
    _write(path, data, 0o644)
