"""Hosts that still carry an owner's marks: flotte's leftovers on existing servers.

flotte makes nothing on an existing server that a cloud API could list, so the driver
keeps its own index of the hosts it took for each owner (in its home, written before
anything changes on a host): ``leftovers`` and ``sweep`` probe those hosts and act on
the ones whose ``owner.json`` still names the owner.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

from flotte.config import write_secret
from flotte.drivers.ssh.marks import owned_by
from flotte.errors import FlotteError
from flotte.models import Owner
from flotte.provision.docker_host import unprovision
from flotte.provision.report import OWNER_FILE
from flotte.provision.sessions import SSHTarget, session


class HostIndex:
    """``<home>/ssh_hosts/<owner>.json``: node name -> how to log in to its host."""

    def __init__(self, home: Path) -> None:
        # "_" cannot be in a machine name, so this never meets a machine's directory
        self.directory = home / "ssh_hosts"

    def _path(self, owner: Owner) -> Path:
        return self.directory / f"{owner.scope.replace(':', '-')}.json"

    def _read(self, owner: Owner) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self._path(owner).read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def add(self, owner: Owner, node: str, target: SSHTarget, key: str | None) -> None:
        hosts = self._read(owner)
        entry = {"host": target.host, "port": target.port, "user": target.user, "key": key}
        if hosts.get(node) != entry:
            hosts[node] = entry
            write_secret(self._path(owner), json.dumps(hosts, indent=1).encode())

    def drop(self, owner: Owner, node: str | None = None) -> None:
        """Forget one node's host, or every host of ``owner``."""
        hosts = self._read(owner)
        if node is not None and hosts.pop(node, None) is None:
            return
        if node is not None and hosts:
            write_secret(self._path(owner), json.dumps(hosts, indent=1).encode())
            return
        with contextlib.suppress(FileNotFoundError):
            self._path(owner).unlink()

    def targets(self, owner: Owner, known_hosts: Path | None) -> list[SSHTarget]:
        out: dict[tuple[str, int], SSHTarget] = {}
        for entry in self._read(owner).values():
            with contextlib.suppress(KeyError, TypeError, ValueError):
                target = SSHTarget(
                    host=str(entry["host"]),
                    port=int(entry["port"]),
                    user=str(entry["user"]),
                    key=Path(entry["key"]) if entry.get("key") else None,
                    known_hosts=known_hosts,
                    attempts=1,
                    connect_timeout=5.0,
                )
                out[(target.host, target.port)] = target
        return list(out.values())


async def owned(candidates: list[SSHTarget], owner: Owner) -> list[SSHTarget]:
    """The hosts among ``candidates`` that carry ``owner``'s marks."""

    async def probe(t: SSHTarget) -> SSHTarget | None:
        try:
            async with session(t) as sess:
                raw = await sess.read(OWNER_FILE)
        except FlotteError:
            return None
        return t if owned_by(t.host, raw, owner) else None

    found = await asyncio.gather(*(probe(t) for t in candidates))
    return [t for t in found if t is not None]


async def sweep(candidates: list[SSHTarget], owner: Owner) -> int:
    targets = await owned(candidates, owner)
    for t in targets:
        await unprovision(t, owner=owner.tags())
    return len(targets)
