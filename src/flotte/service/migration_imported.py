"""What the machine verbs do differently for a machine flotte took in rather than made.

A machine imported from docker-machine or opened from a bundle carries
``record.data["imported"]``: where it came from, what ``rm`` does with it ("forget":
drop flotte's record and files, leave the host; "delete": remove the server or
instance through its driver) and whether it is use-only (flotte never starts, stops or
deletes it). Its engine trusts its own CA, so its endpoint keeps ``tls_dir``.

These helpers hold those rules in one place for :mod:`flotte.service.machines`.
"""

from __future__ import annotations

import dataclasses
import shutil
from typing import Any

from flotte import contexts
from flotte.errors import UsageError
from flotte.models import Endpoint
from flotte.service.installation import Installation
from flotte.state.node_rows import delete_node
from flotte.state.records import Node

FORGET, DELETE = "forget", "delete"


def imported(node: Node) -> dict[str, Any] | None:
    """The import note of ``node``, or None for a machine flotte made."""
    if node.record is None:
        return None
    note = node.record.data.get("imported")
    return dict(note) if isinstance(note, dict) else None


def forgets(node: Node) -> bool:
    """True when ``rm`` only drops flotte's record: the host is not flotte's to change."""
    note = imported(node)
    return note is not None and (note.get("read_only") or note.get("rm") != DELETE)


def use_only(node: Node) -> bool:
    note = imported(node)
    return bool(note and note.get("read_only"))


def refuse_change(node: Node, action: str) -> None:
    """UsageError for an action flotte may not take on an imported machine."""
    note = imported(node)
    if note is None:
        return
    if note.get("read_only"):
        why = note.get("note") or "it was shared with you for use only"
        raise UsageError(f"{action} refused: {why}")
    if action.startswith("regenerating"):
        raise UsageError(
            f"{action} {node.name} refused: its engine keeps the certificates of its own CA "
            f"(imported from {note.get('from', 'elsewhere')})",
            hint="renew them where that CA's key is, or create a flotte machine in its place",
        )


def refuse_shell(node: Node) -> None:
    if node.record is not None and node.record.data.get("no_ssh"):
        raise UsageError(f"{node.name} was imported with an engine URL only: it has no SSH")


def keep_tls(before: Endpoint | None, after: Endpoint) -> Endpoint:
    """``after`` (what a driver says after start) with the engine's own TLS kept."""
    if before is None or not before.tls_dir or after.tls_dir:
        return after
    return dataclasses.replace(after, tls_dir=before.tls_dir, docker_port=before.docker_port)


def write_context(inst: Installation, name: str, endpoint: Endpoint) -> None:
    """``docker --context flotte-NAME`` with the engine's own material or flotte's."""
    contexts.write(
        name,
        endpoint.docker_url,
        None if endpoint.tls_dir else inst.ca,
        f"flotte machine {name}",
        tls_dir=endpoint.tls_dir,
    )


def forget(inst: Installation, name: str) -> None:
    """Drop a machine from flotte: record, secrets, copied keys and TLS, context.

    The last node of a cluster shared through a bundle takes the cluster's context along.
    """
    node = inst.store.find_node(name)
    shared_cluster = (imported(node) or {}).get("cluster") if node is not None else None
    contexts.remove(name)
    inst.store.now(delete_node, name)
    if shared_cluster and not any(
        (imported(n) or {}).get("cluster") == shared_cluster for n in inst.store.nodes(lone=True)
    ):
        contexts.remove(shared_cluster)
    inst.options.forget("machines", name)
    shutil.rmtree(inst.paths.machines / name, ignore_errors=True)
