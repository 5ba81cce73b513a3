"""Where flotte keeps its files: flag > environment > ``~/.config`` / ``~/.local/share``.

``FLOTTE_HOME`` puts everything (state database, certificates, keys, locks) under one
directory, which is what tests and CI use. Secrets live under ``secrets/`` with mode
0700 directories and 0600 files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


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

    def ensure(self) -> Paths:
        for d in (self.data, self.config, self.locks):
            d.mkdir(parents=True, exist_ok=True)
        for d in (self.secrets, self.certs, self.machines):
            d.mkdir(parents=True, exist_ok=True)
            d.chmod(0o700)
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


def write_secret(path: Path, data: bytes) -> None:
    """Write a private file atomically with mode 0600 from its first byte."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def write_public(path: Path, data: bytes) -> None:
    """Write a non-secret file atomically (certificates, configs)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
