"""Health events: a log line per change, counters for ``/metrics``, an optional webhook.

Counters are plain numbers kept by this process (no dependency on prometheus-client):
``flotte.metrics`` turns ``samples(store)`` into metric families at each scrape. The
node gauge is read from the store (every cluster's recorded ``health_status_reason``),
so any process of an installation reports the same figures.

A webhook (``flotte watch --notify URL``) receives each event as a JSON POST from a
background task: a slow or failing endpoint costs a log line, never a heal.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flotte.errors import UsageError
from flotte.state.store import Store

log = logging.getLogger("flotte.health")
WEBHOOK_TIMEOUT = 5.0

# name -> help; every counter is labelled as listed in LABELS
COUNTERS = {
    "flotte_health_checks_total": "Cluster health checks, by the health found",
    "flotte_health_changes_total": "Changes of a cluster's health_status, by the new status",
    "flotte_heal_replacements_total": "Nodes replaced by healing",
    "flotte_heal_restarts_total": "Node engines restarted by healing",
    "flotte_heal_failures_total": "Heals whose plan failed",
    "flotte_heal_given_up_total": "Nodes left UNHEALTHY after failed heals",
    "flotte_heal_deferred_total": "Nodes a round left for later (storm limits, settling)",
    "flotte_health_webhook_failures_total": "Webhook POSTs that failed",
}
LABELS = {
    "flotte_health_checks_total": ("status",),
    "flotte_health_changes_total": ("status",),
}

_lock = threading.Lock()
_counts: dict[tuple[str, tuple[str, ...]], float] = {}


def count(name: str, amount: float = 1.0, **labels: str) -> None:
    if name not in COUNTERS:
        raise KeyError(name)
    key = (name, tuple(labels.get(k, "") for k in LABELS.get(name, ())))
    with _lock:
        _counts[key] = _counts.get(key, 0.0) + amount


@dataclass(frozen=True)
class Sample:
    """One value of one metric, as a Prometheus exposition line would carry it."""

    name: str
    kind: str  # counter | gauge
    help: str
    labels: dict[str, str]
    value: float


def samples(store: Store | None = None) -> list[Sample]:
    """Every counter of this process, and nodes by health from the store."""
    out: list[Sample] = []
    with _lock:
        counts = dict(_counts)
    for name, help_ in COUNTERS.items():
        keys = LABELS.get(name, ())
        found = [(labels, v) for (n, labels), v in counts.items() if n == name]
        for labels, value in found or ([(tuple("" for _ in keys), 0.0)] if not keys else []):
            out.append(Sample(name, "counter", help_, dict(zip(keys, labels, strict=True)), value))
    if store is not None:
        for health, value in sorted(nodes_by_health(store).items()):
            out.append(
                Sample(
                    "flotte_nodes_by_health",
                    "gauge",
                    "Cluster nodes by their last recorded health",
                    {"health": health},
                    float(value),
                )
            )
    return out


def nodes_by_health(store: Store) -> dict[str, int]:
    """healthy / unhealthy / unknown nodes, from each cluster's recorded reason map."""
    out = {"healthy": 0, "unhealthy": 0, "unknown": 0}
    members = {(n.cluster, n.name) for n in store.nodes() if n.cluster}
    for cluster in store.clusters():
        for node, reason in cluster.health_status_reason.items():
            if (cluster.name, node) not in members:
                continue  # "swarm", "nodegroup:..." and nodes since gone
            out[health_word(reason)] += 1
    return out


def health_word(reason: str) -> str:
    """healthy / unhealthy / unknown, from a node's entry of the reason map."""
    if reason == "ok":
        return "healthy"
    return "unknown" if reason.startswith("unknown") else "unhealthy"


def check_url(url: str) -> str:
    """A webhook URL must be http(s) with a host; one clear line otherwise."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"--notify {shown(url)!r} is not an http:// or https:// URL",
            hint="give the URL that receives a JSON POST per health event",
        )
    return url


def shown(url: str) -> str:
    """The URL without credentials, path or query (they may carry a token)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}" if parts.scheme else url[:40]


class Notifier:
    """Logs each event and POSTs it to ``url`` in the background."""

    def __init__(self, url: str | None = None) -> None:
        self.url = check_url(url) if url else None
        self._tasks: set[asyncio.Task[None]] = set()
        self.sent = 0
        self.failed = 0

    def emit(self, event: Mapping[str, Any], line: str, *, level: int = logging.INFO) -> None:
        log.log(level, line)
        if self.url is None:
            return
        try:
            task = asyncio.get_running_loop().create_task(self._post(dict(event)))
        except RuntimeError:  # no loop (a synchronous caller): post in a thread
            threading.Thread(target=self._post_blocking, args=(dict(event),), daemon=True).start()
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, event: dict[str, Any]) -> None:
        await asyncio.to_thread(self._post_blocking, event)

    def _post_blocking(self, event: dict[str, Any]) -> None:
        assert self.url is not None
        body = json.dumps(event, default=str).encode()
        req = urllib.request.Request(
            self.url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=WEBHOOK_TIMEOUT) as resp:
                resp.read(1024)
            self.sent += 1
        except (urllib.error.URLError, OSError, ValueError) as err:
            self.failed += 1
            count("flotte_health_webhook_failures_total")
            why = getattr(err, "reason", None) or err
            if isinstance(err, urllib.error.HTTPError):
                why = f"HTTP {err.code}"
            log.warning(
                "webhook %s failed (%s): the event is dropped, healing goes on",
                shown(self.url),
                why,
            )

    async def drain(self, timeout: float = WEBHOOK_TIMEOUT + 1) -> None:
        """Wait (a little) for the POSTs still under way, at the end of a watch."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
