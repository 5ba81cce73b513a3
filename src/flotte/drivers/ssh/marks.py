"""The owner record flotte leaves on a host (``owner.json``), and who may take a host."""

from __future__ import annotations

import json

from flotte.errors import AlreadyExists
from flotte.models import Owner
from flotte.provision.docker_host import OWNER_FILE
from flotte.provision.sessions import SSHTarget


def owner_record(owner: Owner, node: str) -> dict[str, str]:
    rec = {"installation": owner.installation, "node": node}
    if owner.machine:
        rec["machine"] = owner.machine
    if owner.cluster:
        rec["cluster"] = owner.cluster
    return rec


def check_owner(target: SSHTarget, raw: bytes | None, owner: Owner) -> None:
    """Refuse a host that is already a Docker host of another machine or installation."""
    if not raw:
        return
    try:
        there = json.loads(raw)
    except ValueError:
        return
    mine = owner.installation
    theirs = there.get("installation")
    same_owner = theirs == mine and (
        there.get("machine") == owner.machine and there.get("cluster") == owner.cluster
    )
    if not same_owner:
        what = there.get("machine") or there.get("cluster") or there.get("node") or "?"
        whose = "this flotte installation" if theirs == mine else "another flotte installation"
        raise AlreadyExists(
            f"{target.host} is already a Docker host of {whose} ({what})",
            hint=f"remove it there first (flotte machine rm {what}), "
            f"or delete {OWNER_FILE} on the host to take it over",
        )


def owned_by(raw: bytes | None, owner: Owner) -> bool:
    """True when the record on a host is ``owner``'s (any node of it)."""
    try:
        there = json.loads(raw or b"{}")
    except ValueError:
        return False
    want = {k: v for k, v in owner_record(owner, "").items() if k != "node"}
    return all(there.get(k) == v for k, v in want.items())
