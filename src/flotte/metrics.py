"""Prometheus metrics of ``flotte serve`` at ``/metrics`` (prometheus-client).

- ``flotte_http_requests_total{method,route,status}`` and
  ``flotte_http_request_duration_seconds{method,route}``: every API request, by route
  template (``/v1/clusters/{ident}``), so a name in a path never makes a new series;
- ``flotte_job_duration_seconds{kind,outcome}``: each job a worker of this process ran;
- ``flotte_clusters{status}``: clusters of the database by status, read at each scrape.

``install(app, store)`` is the API's one hook: it adds the counting middleware and
the ``/metrics`` route. Each process exposes its own counters; a Prometheus server
scrapes every API process (a worker-only process serves no HTTP).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from flotte.state.store import Store
from flotte.state.tables import Cluster

REGISTRY = CollectorRegistry()
REQUESTS = Counter(
    "flotte_http_requests", "API requests", ["method", "route", "status"], registry=REGISTRY
)
REQUEST_SECONDS = Histogram(
    "flotte_http_request_duration_seconds",
    "API request durations",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
JOB_SECONDS = Histogram(
    "flotte_job_duration_seconds",
    "Durations of the jobs this process ran, by kind and outcome",
    ["kind", "outcome"],
    buckets=(0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600),
    registry=REGISTRY,
)


def observe_job(kind: str, outcome: str, seconds: float) -> None:
    JOB_SECONDS.labels(kind=kind, outcome=outcome).observe(seconds)


class ClustersByStatus(Collector):
    """Counts clusters by status in the database when scraped."""

    def __init__(self) -> None:
        self.store: Store | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("flotte_clusters", "Clusters by status", labels=["status"])
        if self.store is not None:
            with self.store.session() as s:
                rows = s.execute(select(Cluster.status, func.count()).group_by(Cluster.status))
                for status, count in rows:
                    family.add_metric([status], count)
        yield family


_CLUSTERS = ClustersByStatus()
REGISTRY.register(_CLUSTERS)


class HealthSamples(Collector):
    """Health checks and heals of this process, and nodes by health from the database
    (``flotte.service.health_events``), when scraped."""

    def __init__(self) -> None:
        self.store: Store | None = None

    def collect(self) -> Iterator[Metric]:
        from flotte.service.health_events import samples

        families: dict[str, Metric] = {}
        for s in samples(self.store):
            if s.name not in families:
                kind = CounterMetricFamily if s.kind == "counter" else GaugeMetricFamily
                families[s.name] = kind(s.name, s.help, labels=list(s.labels))
            families[s.name].add_metric(list(s.labels.values()), s.value)  # type: ignore[attr-defined]
        yield from families.values()


_HEALTH = HealthSamples()
REGISTRY.register(_HEALTH)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class RequestMetrics:
    """ASGI middleware: counts and times each HTTP request by its route template."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            template = getattr(route, "path_format", None) or getattr(route, "path", None)
            # Unmatched paths (404s) share one series, whatever was asked.
            label = str(template) if template else "unmatched"
            method = str(scope.get("method", ""))
            REQUESTS.labels(method, label, str(status)).inc()
            REQUEST_SECONDS.labels(method, label).observe(time.perf_counter() - started)


def render() -> tuple[bytes, str]:
    """The metrics page: its body and content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def install(app: Any, store: Store) -> None:
    """Count ``app``'s requests and serve ``/metrics`` (a FastAPI or Starlette app)."""
    from starlette.requests import Request
    from starlette.responses import Response

    _CLUSTERS.store = store
    _HEALTH.store = store

    async def metrics_page(request: Request) -> Response:
        body, content_type = render()
        return Response(body, media_type=content_type)

    app.add_middleware(RequestMetrics)
    app.add_route("/metrics", metrics_page, include_in_schema=False)
