"""A cluster as its page shows it, and the stream that keeps the page current.

Each node's phase comes from the executor's journal (intent before a step, outcome
after: ``create:NODE``, ``provision:NODE``, ``join:NODE``, ``remove:NODE``), its state
from the store. The page opens one server-sent-events stream per cluster; the server
reads the journal past the last entry it sent (one indexed query) a few times a second
and sends a snapshot only when something changed, so a browser never polls and a phase
reaches the page well within a second of being journaled.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from sqlalchemy import select

from flotte.api.magnum.views import when
from flotte.models import Role
from flotte.service import Service
from flotte.state.owned import ServeCluster
from flotte.state.tables import JournalEntry

TICK = 0.25  # seconds between two reads of the journal for one open page
KEEPALIVE = 15.0  # a comment line keeps proxies from closing a quiet stream
LIFETIME = 600.0  # the browser reconnects by itself (EventSource) after this
JOURNAL_SHOWN = 60
# step prefix -> (what the node is doing, what it did, what failed)
PHASES = {
    "create": ("creating", "created", "create failed"),
    "provision": ("starting its engine", "engine up", "engine failed"),
    "join": ("joining the swarm", "joined", "join failed"),
    "restart": ("restarting its engine", "engine restarted", "restart failed"),
    "remove": ("being removed", "removed", "remove failed"),
}


def journal_after(svc: Service, cluster: str, after: int, limit: int = 500) -> list[JournalEntry]:
    with svc.store.session() as s:
        query = (
            select(JournalEntry)
            .where(JournalEntry.scope == f"cluster:{cluster}", JournalEntry.id > after)
            .order_by(JournalEntry.id)
            .limit(limit)
        )
        return list(s.scalars(query))


def recent_journal(svc: Service, cluster: str) -> list[JournalEntry]:
    return svc.store.journal_entries(f"cluster:{cluster}", limit=JOURNAL_SHOWN)


def entry_view(e: JournalEntry) -> dict[str, Any]:
    return {
        "id": e.id,
        "at": when(e.at),
        "operation": e.operation,
        "step": e.step,
        "phase": e.phase,
        "detail": e.detail,
    }


def phases(entries: list[JournalEntry]) -> dict[str, str]:
    """Each node's latest phase, from journal entries in order."""
    out: dict[str, str] = {}
    for e in entries:
        kind, _, node = e.step.removeprefix("undo:").partition(":")
        labels = PHASES.get(kind)
        if labels is None or not node:
            continue
        out[node] = {"intent": labels[0], "done": labels[1]}.get(e.phase, labels[2])
    return out


def snapshot(svc: Service, found: ServeCluster, entries: list[JournalEntry]) -> dict[str, Any]:
    """What the cluster page shows, as JSON (the stream's payload and the page's data)."""
    record = svc.store.find_cluster(found.record.name)
    if record is None:
        return {"gone": True}
    nodes = svc.store.nodes(cluster=record.name)
    doing = phases(entries)
    health = record.health_status_reason or {}
    return {
        "gone": False,
        "status": record.status,
        "status_reason": record.status_reason or "",
        "health": record.health_status,
        "node_count": record.node_count,
        "master_count": record.master_count,
        "groups": [
            {
                "name": g.name,
                "role": g.spec.role,
                "count": g.spec.node_count,
                "status": g.status or record.status,
                "status_reason": g.status_reason or "",
            }
            for g in record.nodegroups
        ],
        "nodes": [
            {
                "name": n.name,
                "group": n.group,
                "role": "manager" if n.role == Role.MANAGER else "worker",
                "address": n.address,
                "state": n.status,
                "engine": n.engine_version,  # "" until its engine has answered
                "phase": doing.get(n.name, ""),
                "swarm": str(health.get(n.name, "")),
                "reason": n.status_reason,
            }
            for n in nodes
        ],
    }


async def stream(
    svc: Service,
    found: ServeCluster,
    since: int,
    disconnected: Callable[[], Any],
) -> AsyncIterator[str]:
    """Server-sent events: a ``snapshot`` whenever the cluster changed, with the journal
    entries journaled since the last one."""
    name = found.record.name
    seen = await asyncio.to_thread(journal_after, svc, name, 0, 100_000)
    last = seen[-1].id if seen else 0
    fresh = [e for e in seen if e.id > since]
    previous = ""
    started = quiet = time.monotonic()
    while time.monotonic() - started < LIFETIME:
        if await disconnected():
            return
        state = await asyncio.to_thread(snapshot, svc, found, seen)
        state["journal"] = [entry_view(e) for e in fresh[-JOURNAL_SHOWN:]]
        body = json.dumps(state, separators=(",", ":"))
        if body != previous or fresh:
            previous = body
            quiet = time.monotonic()
            yield f"id: {last}\nevent: snapshot\ndata: {body}\n\n"
            if state["gone"]:
                return
        elif time.monotonic() - quiet > KEEPALIVE:
            quiet = time.monotonic()
            yield ": keepalive\n\n"
        await asyncio.sleep(TICK)
        fresh = await asyncio.to_thread(journal_after, svc, name, last)
        if fresh:
            seen.extend(fresh)
            last = fresh[-1].id
