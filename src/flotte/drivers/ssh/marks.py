"""The owner marks flotte leaves on a host (``owner.json``), and who may take a host.

A host's file is remote data: whatever it holds, reading it gives one clear line
naming the host, never a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping

from flotte.errors import AlreadyExists, ProvisionError
from flotte.models import CLUSTER_KEY, MACHINE_KEY, NODE_KEY, OWNER_KEY, Owner
from flotte.provision.report import OWNER_FILE, owner_marks, same_owner


def marks_on(host: str, raw: bytes | None) -> dict[str, str] | None:
    """The marks in a host's owner.json (None: no file), or ProvisionError naming the host."""
    try:
        return owner_marks(raw)
    except ValueError as err:
        raise ProvisionError(
            f"{host}: {OWNER_FILE} is not an owner record flotte wrote",
            hint=f"look at it there; delete {OWNER_FILE} to let flotte take the host",
        ) from err


def check_owner(host: str, raw: bytes | None, owner: Owner) -> None:
    """Refuse a host that is already a Docker host of another machine or installation."""
    there = marks_on(host, raw)
    if there is None or owner_level(there) == owner.tags():
        return
    what = there.get(MACHINE_KEY) or there.get(CLUSTER_KEY) or there.get(NODE_KEY) or "?"
    mine = there.get(OWNER_KEY) == owner.installation
    whose = "this flotte installation" if mine else "another flotte installation"
    raise AlreadyExists(
        f"{host} is already a Docker host of {whose} ({what})",
        hint=f"remove it there first (flotte machine rm {what}), "
        f"or delete {OWNER_FILE} on the host to take it over",
    )


def owner_level(marks: Mapping[str, str]) -> dict[str, str]:
    """Only the marks that say who owns the host (not which node or role it is)."""
    return Owner.from_tags(marks).tags()


def owned_by(host: str, raw: bytes | None, owner: Owner) -> bool:
    """True when the record on a host is ``owner``'s (any node of it); False for none
    or an unreadable one (sweep leaves what it cannot read alone)."""
    try:
        there = owner_marks(raw)
    except ValueError:
        return False
    return there is not None and same_owner(owner.tags(), there)
