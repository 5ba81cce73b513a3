""" "Where to deploy": the advisor (``catalog.advisor``) as a page, with the ranked
offers, every exclusion with its reason, and a bar chart of EUR/day per provider drawn
as inline SVG (no script, no library)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from flotte.api.web.render import html
from flotte.api.web.session import PREFIX, Seen
from flotte.errors import FlotteError

router = APIRouter(prefix=PREFIX, include_in_schema=False)
BAR_ROW = 26  # px per provider in the chart
LABEL_WIDTH = 150
CHART_WIDTH = 640


def chart(offers: list[dict[str, Any]]) -> dict[str, Any]:
    """Bars of each provider's cheapest offer, cheapest first, scaled to the largest."""
    best: dict[str, float] = {}
    for o in offers:
        best.setdefault(o["provider"], o["eur_day"])
    top = max(best.values(), default=0.0) or 1.0
    room = CHART_WIDTH - LABEL_WIDTH - 70
    bars = [
        {
            "provider": name,
            "eur_day": value,
            "y": i * BAR_ROW,
            "width": max(1.0, round(value / top * room, 1)),
        }
        for i, (name, value) in enumerate(best.items())
    ]
    return {"bars": bars, "height": max(BAR_ROW, len(bars) * BAR_ROW), "label": LABEL_WIDTH}


def _number(text: str, kind: type[int] | type[float], field: str) -> Any:
    try:
        return kind(text)
    except ValueError:
        raise FlotteError(f"{field} must be a number (got {text!r})") from None


@router.get("/advisor")
async def advisor(
    request: Request,
    seen: Seen,
    nodes: str = Query("8", max_length=8),
    vcpus: str = Query("2", max_length=8),
    ram: str = Query("7", max_length=12),
    jurisdiction: str = Query("", max_length=8),
    no_cloud_act: bool = Query(False),
    as_of: str = Query("latest", max_length=10),
    kind: str = Query("", max_length=16),
) -> Response:
    from flotte.catalog.advisor import KINDS, advise, parse_as_of
    from flotte.catalog.advisor import Request as Ask
    from flotte.catalog.loader import load_catalog

    values = {
        "nodes": nodes,
        "vcpus": vcpus,
        "ram": ram,
        "jurisdiction": jurisdiction,
        "no_cloud_act": no_cloud_act,
        "as_of": as_of,
        "kind": kind,
    }
    try:
        ask = Ask(
            nodes=_number(nodes, int, "--nodes"),
            vcpus=_number(vcpus, int, "--vcpus"),
            ram_gb=_number(ram, float, "--ram"),
            jurisdiction=jurisdiction.strip().lower() or None,
            no_cloud_act=no_cloud_act,
            as_of=parse_as_of(as_of),
            kinds=frozenset([kind.strip().lower()]) if kind.strip() else frozenset(),
        )
        advice = advise(load_catalog(), ask)
    except FlotteError as err:
        return html(
            request, "advisor.html", seen, status=400, values=values, error=err.message, kinds=KINDS
        )
    offers = [{"rank": i, **o.row()} for i, o in enumerate(advice.offers, 1)]
    return html(
        request,
        "advisor.html",
        seen,
        values=values,
        kinds=KINDS,
        error="",
        described=ask.describe(),
        reference=ask.reference_date.isoformat(),
        offers=offers,
        excluded=[e.row() for e in advice.excluded],
        warnings=list(advice.warnings),
        why=advice.why_empty() if not offers else "",
        chart=chart(offers),
    )
