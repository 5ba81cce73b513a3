"""flotte's own known_hosts file: trust on first use, shared with ``ssh``.

OpenSSH format, so ``ssh -o UserKnownHostsFile=`` reads it too: a host's key is
recorded the first time flotte reaches it and any later different key is refused.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Any

import asyncssh


def host_pattern(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


class KnownHosts:
    """flotte's known_hosts file: one ``pattern keytype base64`` line per key.

    Writes take an exclusive ``flock`` so parallel provisioning of many hosts (and
    several flotte processes) append without losing lines.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def _lines(self) -> list[str]:
        try:
            return self.path.read_text().splitlines()
        except FileNotFoundError:
            return []

    def keys_for(self, host: str, port: int) -> list[asyncssh.SSHKey]:
        pattern = host_pattern(host, port)
        keys = []
        for line in self._lines():
            parts = line.split()
            if len(parts) >= 3 and not line.startswith("#") and pattern in parts[0].split(","):
                with contextlib.suppress(asyncssh.KeyImportError):
                    keys.append(asyncssh.import_public_key(f"{parts[1]} {parts[2]}"))
        return keys

    @contextlib.contextmanager
    def _locked(self) -> Any:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
        finally:
            os.close(fd)

    def add(self, host: str, port: int, key: asyncssh.SSHKey) -> None:
        kind, blob = key.export_public_key("openssh").decode().split()[:2]
        line = f"{host_pattern(host, port)} {kind} {blob}"
        with self._locked():
            if line not in self._lines():
                with self.path.open("a") as f:
                    f.write(f"{line}\n")

    def forget(self, host: str, port: int) -> int:
        """Drop every key of ``host:port`` (after a reinstall); returns how many went."""
        pattern = host_pattern(host, port)
        with self._locked():
            lines = self._lines()
            kept = [ln for ln in lines if not (ln.split() and ln.split()[0] == pattern)]
            self.path.write_text("".join(f"{ln}\n" for ln in kept))
        return len(lines) - len(kept)
