"""Hosts that still carry an owner's record: flotte's leftovers on existing servers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping
from typing import Any

from flotte.drivers.ssh.connection import Targets
from flotte.drivers.ssh.marks import owned_by
from flotte.errors import FlotteError, UsageError
from flotte.models import Owner
from flotte.provision.docker_host import OWNER_FILE, unprovision
from flotte.provision.sessions import SSHTarget, session


def known_targets(targets: Targets, options: Iterable[Mapping[str, Any]]) -> list[SSHTarget]:
    out = []
    for opts in options:
        if opts.get("ssh_host"):
            with contextlib.suppress(UsageError):
                out.append(targets.from_options(opts, quick=True))
    return out


async def owned(candidates: list[SSHTarget], owner: Owner) -> list[SSHTarget]:
    """The hosts among ``candidates`` that carry ``owner``'s record."""

    async def probe(t: SSHTarget) -> SSHTarget | None:
        try:
            async with session(t) as sess:
                raw = await sess.read(OWNER_FILE)
        except FlotteError:
            return None
        return t if owned_by(raw, owner) else None

    found = await asyncio.gather(*(probe(t) for t in candidates))
    return [t for t in found if t is not None]


async def sweep(candidates: list[SSHTarget], owner: Owner) -> int:
    targets = await owned(candidates, owner)
    for t in targets:
        await unprovision(t)
    return len(targets)
