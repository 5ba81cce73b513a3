"""Rank where to deploy a cluster: pure functions over a loaded catalog.

For each provider and region the advisor takes the cheapest flavor that holds one
node, prices it with the newest price known at the reference date (``--as-of``),
and records why every provider or region it drops was dropped, so an empty answer
always explains itself. ``advise`` reads no files and takes the date from
``Request.today``, which keeps it fast and testable; ``estimate`` loads the
catalog itself only when it is not given one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from flotte.errors import UsageError

from .loader import Catalog
from .models import APIS, EU_COUNTRIES, CloudAct, Flavor, Price, Provider, Region
from .shapes import fits, flavor_key, largest, price_at

#: A price older than this (relative to the reference date) is flagged old.
OLD_AFTER = timedelta(days=548)  # 18 months
#: Month length used for monthly figures (AWS and most clouds bill 730 h a month).
HOURS_PER_MONTH = 730.0
_EXPOSURE_RANK = {"no": 0, "unclear": 1, "yes": 2}
FEATURES = ("image_upload", "bare_metal", "gpu", "managed_kubernetes", "registry")
KINDS = ("commercial", "academic", "federation", "own")

# Order in which exclusion causes are explained when nothing is left.
_CAUSES = {
    "kind": "kind filter",
    "api": "API filter",
    "status": "closed at the reference date",
    "jurisdiction": "jurisdiction filter",
    "cloud_act": "--no-cloud-act",
    "feature": "required feature missing or not stated",
    "gpu": "no GPU",
    "data": "no flavor in the catalog",
    "flavor": "no flavor large enough",
    "capacity": "not enough total capacity",
    "price": "no price known at the reference date",
    "budget": "over --max-eur-day",
}


def parse_as_of(text: str | None) -> date | None:
    """``latest``/None -> None; ``2018`` -> 2018-12-31; ``2018-06`` -> end of that month;
    ``2018-06-06`` -> that day. Anything else is a UsageError."""
    if text is None or text.strip().lower() in ("", "latest", "now", "today"):
        return None
    text = text.strip()
    try:
        if re.fullmatch(r"\d{4}", text):
            return date(int(text), 12, 31)
        if re.fullmatch(r"\d{4}-\d{2}", text):
            year, month = (int(x) for x in text.split("-"))
            if not 1 <= month <= 12:
                raise ValueError(f"month {month}")
            first_next = date(year + month // 12, month % 12 + 1, 1)
            return first_next - timedelta(days=1)
        return date.fromisoformat(text)
    except ValueError as err:
        raise UsageError(
            f"--as-of {text!r}: use latest, a year (2018), a month (2018-06) or a date (2018-06-06)"
        ) from err


@dataclass(frozen=True)
class Request:
    """What the user wants: ``nodes`` machines of ``vcpus``/``ram_gb`` each, and filters.
    ``as_of`` None means today's prices (``latest``). Invalid values raise UsageError."""

    nodes: int
    vcpus: int
    ram_gb: float
    gpu: bool = False
    jurisdiction: str | None = None
    no_cloud_act: bool = False
    apis: frozenset[str] = frozenset()
    kinds: frozenset[str] = frozenset()
    needs: frozenset[str] = frozenset()
    max_eur_day: float | None = None
    hours_per_day: float = 24.0
    as_of: date | None = None
    today: date = field(default_factory=date.today)

    def __post_init__(self) -> None:
        if self.nodes < 1:
            raise UsageError(f"--nodes must be at least 1 (got {self.nodes})")
        if self.vcpus < 1:
            raise UsageError(f"--vcpus must be at least 1 per node (got {self.vcpus})")
        if not self.ram_gb > 0:
            raise UsageError(f"--ram must be more than 0 GB per node (got {self.ram_gb:g})")
        if not 0 < self.hours_per_day <= 24:
            raise UsageError(f"--hours-per-day must be in (0, 24] (got {self.hours_per_day:g})")
        if self.max_eur_day is not None and self.max_eur_day < 0:
            raise UsageError(f"--max-eur-day cannot be negative (got {self.max_eur_day:g})")
        if self.jurisdiction is not None and not re.fullmatch(r"eu|[a-z]{2}", self.jurisdiction):
            raise UsageError(
                f"--jurisdiction {self.jurisdiction!r}: use eu or a two-letter country code"
            )
        for api in self.apis:
            if api not in APIS:
                raise UsageError(f"--api {api!r}: known APIs are {', '.join(APIS)}")
        for kind in self.kinds:
            if kind not in KINDS:
                raise UsageError(f"--kind {kind!r}: known kinds are {', '.join(KINDS)}")
        for need in self.needs:
            if need not in FEATURES:
                raise UsageError(f"--need {need!r}: known features are {', '.join(FEATURES)}")

    @property
    def reference_date(self) -> date:
        """The date prices and statuses are read at."""
        return self.as_of or self.today

    def describe(self) -> str:
        """The request in one phrase, for messages."""
        gpu = " + GPU" if self.gpu else ""
        when = f"as of {self.as_of}" if self.as_of else "latest prices"
        return f"{self.nodes} x {self.vcpus} vCPU / {self.ram_gb:g} GB{gpu}, {when}"


@dataclass(frozen=True)
class Offer:
    """One ranked answer: a provider, the regions sharing this price, the flavor chosen,
    and the cost for the whole cluster."""

    provider: str
    title: str
    kind: str
    regions: tuple[str, ...]
    flavor: str
    vcpus: int
    ram_gb: float
    gpus: int
    arch: str
    eur_node_hour: float
    eur_day: float
    eur_month: float
    price_as_of: date
    confidence: str
    old: bool
    price_source: str
    price_note: str | None
    restricted: bool
    access: str
    cloud_act: str
    jurisdiction: str
    driver: str | None

    def row(self) -> dict[str, Any]:
        """A flat record for table/JSON/YAML rendering."""
        return {
            "provider": self.provider,
            "kind": self.kind,
            "regions": list(self.regions),
            "flavor": self.flavor,
            "node": f"{self.vcpus}c/{self.ram_gb:g}G" + (f"+{self.gpus}gpu" if self.gpus else ""),
            "eur_node_hour": round(self.eur_node_hour, 4),
            "eur_day": round(self.eur_day, 2),
            "eur_month": round(self.eur_month, 2),
            "price_date": self.price_as_of.isoformat(),
            "confidence": self.confidence,
            "old": self.old,
            "cloud_act": self.cloud_act,
            "jurisdiction": self.jurisdiction,
            "access": ("restricted: " if self.restricted else "") + self.access,
            "driver": self.driver,
            "price_source": self.price_source,
            "price_note": self.price_note,
            "arch": self.arch,
        }


@dataclass(frozen=True)
class Exclusion:
    """Why a provider (or some of its regions) gave no offer; ``cause`` is a key of
    the explanation table, ``detail`` the sentence shown to the user."""

    provider: str
    cause: str
    detail: str
    regions: tuple[str, ...] = ()

    def row(self) -> dict[str, Any]:
        """A flat record for rendering."""
        return {
            "provider": self.provider,
            "regions": list(self.regions),
            "cause": _CAUSES.get(self.cause, self.cause),
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Advice:
    """The ranked offers, every exclusion, and warnings about old prices."""

    request: Request
    offers: tuple[Offer, ...]
    excluded: tuple[Exclusion, ...]
    warnings: tuple[str, ...]

    def why_empty(self) -> str:
        """A one-paragraph explanation of which filters removed which providers."""
        by_cause: dict[str, list[str]] = {}
        for ex in self.excluded:
            names = by_cause.setdefault(ex.cause, [])
            if ex.provider not in names:
                names.append(ex.provider)
        parts = []
        for cause, label in _CAUSES.items():
            found = by_cause.get(cause)
            if found:
                extra = f" +{len(found) - 6}" if len(found) > 6 else ""
                shown = ", ".join(found[:6]) + extra
                parts.append(f"{label}: {shown}")
        detail = "; ".join(parts) if parts else "the catalog is empty"
        return f"no offer for {self.request.describe()} — {detail}"


def advise(catalog: Catalog | Iterable[Provider], request: Request) -> Advice:
    """Rank every provider's cheapest fitting offer per region for ``request``."""
    offers: list[Offer] = []
    excluded: list[Exclusion] = []
    providers = list(catalog.providers.values() if isinstance(catalog, Catalog) else catalog)
    for provider in providers:
        _advise_one(provider, request, offers, excluded)
    # Cost first; at equal cost, open access, a fresh price and less CLOUD Act exposure win.
    offers.sort(
        key=lambda o: (
            o.eur_day,
            o.restricted,
            o.old,
            _EXPOSURE_RANK[o.cloud_act],
            o.provider,
            o.regions,
        )
    )
    warnings = [
        f"{o.provider} {o.flavor}: price dates from {o.price_as_of}, "
        f"{_months(o.price_as_of, request.reference_date)} months before "
        f"{request.reference_date}; check the provider's current list"
        for o in offers
        if o.old
    ]
    by_name = {p.name: p for p in providers}
    for name in dict.fromkeys(o.provider for o in offers):
        status = by_name[name].status
        if status.state == "unknown":
            warnings.append(f"{name}: status unknown ({status.note or 'no recent source'})")
    return Advice(request, tuple(offers), tuple(excluded), tuple(dict.fromkeys(warnings)))


def _advise_one(p: Provider, req: Request, offers: list[Offer], out: list[Exclusion]) -> None:
    ref = req.reference_date

    region_drops: dict[tuple[str, str], list[str]] = {}

    def drop(cause: str, detail: str, regions: Iterable[str] = ()) -> None:
        out.append(Exclusion(p.name, cause, detail, tuple(regions)))

    def drop_region(cause: str, detail: str, region: Region) -> None:
        # Regions dropped for the same reason become one exclusion listing them all.
        region_drops.setdefault((cause, detail), []).append(region.name)

    if req.kinds and p.kind not in req.kinds:
        return drop("kind", f"kind is {p.kind}")
    if req.apis and not req.apis.intersection(p.apis):
        return drop("api", f"APIs are {', '.join(p.apis)}")
    if p.closed_at(ref):
        note = f" ({p.status.note})" if p.status.note else ""
        return drop("status", f"closed since {p.status.since}{note}")
    # Own hardware sits wherever you are: jurisdiction filters do not apply to it.
    if (
        req.jurisdiction
        and p.kind != "own"
        and not _in_zone(p.sovereignty.jurisdiction, req.jurisdiction)
    ):
        return drop(
            "jurisdiction",
            f"under {p.sovereignty.jurisdiction.upper()} law "
            f"({p.sovereignty.parent_company}, {p.sovereignty.parent_country.upper()})",
        )
    for need in sorted(req.needs):
        feat = getattr(p.features, need)
        if feat.available is not True:
            state = "not offered" if feat.available is False else "not stated in the sources"
            return drop("feature", f"{need.replace('_', ' ')}: {state}")
    if req.gpu and p.features.gpu.available is False:
        return drop("gpu", "offers no GPUs")
    metal = "bare_metal" in req.needs
    fitting = [f for f in p.flavors if fits(f, req.vcpus, req.ram_gb, req.gpu, metal)]
    if not fitting:
        if metal and not any(f.bare_metal for f in p.flavors):
            # The provider rents whole servers, but a VM's price is not theirs.
            return drop("data", "bare metal: no bare-metal flavor in the catalog yet")
        if req.gpu and not any(f.gpus for f in p.flavors):
            extra = (
                "; the provider offers GPUs: add a GPU flavor in an override file"
                if p.features.gpu.available
                else ""
            )
            return drop("gpu", f"no GPU flavor in the catalog{extra}")
        if not p.flavors:
            return drop("data", "no flavor in the catalog yet (add one in an override file)")
        return drop("flavor", f"largest flavor is {largest(p.flavors)}")
    short = _capacity_short(p, req)
    if short:
        return drop("capacity", short)

    candidates: dict[tuple[Any, ...], list[tuple[Region, Flavor, Price]]] = {}
    for region in p.regions:
        if req.jurisdiction and p.kind != "own" and not _in_zone(region.country, req.jurisdiction):
            drop_region("jurisdiction", f"located in {region.country.upper()}", region)
            continue
        exposure = _exposure(p, region)
        if req.no_cloud_act and exposure.exposure != "no":
            drop_region(
                "cloud_act", f"CLOUD Act exposure {exposure.exposure}: {exposure.reason}", region
            )
            continue
        best: tuple[Flavor, Price] | None = None
        for fl in fitting:
            price = price_at(p, fl, region, ref)
            if price and (best is None or flavor_key(price, fl) < flavor_key(best[1], best[0])):
                best = (fl, price)
        if best is None:
            names = ", ".join(f.name for f in fitting[:4])
            near = _nearest_priced(p, region, ref, req)
            drop_region(
                "price", f"no price known at {ref} for a fitting flavor ({names}){near}", region
            )
            continue
        fl, price = best
        day = price.eur_per_hour * req.nodes * req.hours_per_day
        if req.max_eur_day is not None and day > req.max_eur_day:
            drop_region("budget", f"{day:.2f} EUR/day with {fl.name} > {req.max_eur_day:g}", region)
            continue
        key = (fl.name, price.eur_per_hour, p.fact_date(price), exposure.exposure)
        candidates.setdefault(key, []).append((region, fl, price))
    for (cause, detail), dropped in region_drops.items():
        drop(cause, detail, dropped)
    for group in candidates.values():
        offers.append(_offer(p, req, group))


def _offer(p: Provider, req: Request, group: list[tuple[Region, Flavor, Price]]) -> Offer:
    region, fl, price = group[0]
    when = p.fact_date(price)
    day = price.eur_per_hour * req.nodes * req.hours_per_day
    exposure = _exposure(p, region)
    return Offer(
        provider=p.name,
        title=p.title,
        kind=p.kind,
        regions=tuple(r.name for r, _, _ in group),
        flavor=fl.name,
        vcpus=fl.vcpus if fl.vcpus and not fl.custom else req.vcpus,
        ram_gb=fl.ram_gb if fl.ram_gb and not fl.custom else req.ram_gb,
        gpus=fl.gpus,
        arch=fl.arch,
        eur_node_hour=price.eur_per_hour,
        eur_day=day,
        eur_month=day * HOURS_PER_MONTH / 24,
        price_as_of=when,
        confidence=price.confidence,
        old=req.reference_date - when > OLD_AFTER,
        price_source=p.sources[price.source].title,
        price_note=price.note,
        restricted=p.access.restricted,
        access=p.access.route,
        cloud_act=exposure.exposure,
        jurisdiction=p.sovereignty.jurisdiction,
        driver=p.driver,
    )


def _exposure(p: Provider, region: Region) -> CloudAct:
    return region.cloud_act or p.sovereignty.cloud_act


def _in_zone(country: str, zone: str) -> bool:
    return country in EU_COUNTRIES if zone == "eu" else country == zone


def _capacity_short(p: Provider, req: Request) -> str | None:
    cap = p.capacity
    if cap is None:
        return None
    note = f" ({cap.note})" if cap.note else ""
    if cap.nodes is not None and req.nodes > cap.nodes:
        return f"holds {cap.nodes} nodes, {req.nodes} asked{note}"
    if cap.vcpus is not None and req.nodes * req.vcpus > cap.vcpus:
        return f"{cap.vcpus} vCPU in total, {req.nodes * req.vcpus} asked{note}"
    if cap.ram_gb is not None and req.nodes * req.ram_gb > cap.ram_gb:
        return f"{cap.ram_gb:g} GB RAM in total, {req.nodes * req.ram_gb:g} asked{note}"
    return None


def _nearest_priced(p: Provider, region: Region, ref: date, req: Request) -> str:
    # The talk's shapes differ by a GB or so (56 vs 64 GB for 8 VMs): say when a
    # priced flavor just misses, so the user can relax the request knowingly.
    priced = [
        f
        for f in p.flavors
        if not f.custom and f.vcpus and f.ram_gb and price_at(p, f, region, ref) is not None
    ]
    if not priced:
        return ""
    near = max(priced, key=lambda f: (f.vcpus or 0, f.ram_gb or 0))
    return f"; largest priced flavor: {near.name}, {near.vcpus} vCPU / {near.ram_gb:g} GB"


def _months(earlier: date, later: date) -> int:
    return (later.year - earlier.year) * 12 + later.month - earlier.month
