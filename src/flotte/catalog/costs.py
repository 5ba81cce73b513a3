"""What ``count`` nodes cost on one provider: the figure ``--dry-run`` and plans show."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from flotte.errors import NotFound

from .advisor import HOURS_PER_MONTH, OLD_AFTER, Request
from .loader import Catalog
from .models import Flavor, Price, Region
from .shapes import fits, flavor_key, largest, price_at, shape


@dataclass(frozen=True)
class Estimate:
    """The cost of ``count`` nodes of one flavor on one provider. When no price is
    known the euro fields are None and ``note`` says why."""

    provider: str
    flavor: str
    region: str | None
    count: int
    vcpus: int
    ram_gb: float
    eur_node_hour: float | None
    eur_day: float | None
    eur_month: float | None
    price_as_of: date | None
    confidence: str | None
    old: bool
    note: str

    @property
    def known(self) -> bool:
        """True when a price was found."""
        return self.eur_node_hour is not None

    def __str__(self) -> str:
        return self.summary()

    def summary(self) -> str:
        """One line for a dry-run: what, where, how much, how sure."""
        where = f"{self.provider}" + (f" ({self.region})" if self.region else "")
        what = f"{self.count} x {self.flavor} on {where}"
        if self.eur_day is None or self.eur_month is None:
            return f"{what}: cost unknown ({self.note})"
        flag = ", old" if self.old else ""
        return (
            f"{what}: {self.eur_day:.2f} EUR/day, {self.eur_month:.0f} EUR/month "
            f"(price of {self.price_as_of}, {self.confidence}{flag})"
        )


def estimate(
    provider: str,
    flavor: str | None,
    vcpus: int,
    ram_gb: float,
    count: int,
    hours_per_day: float = 24,
    *,
    region: str | None = None,
    catalog: Catalog | None = None,
    today: date | None = None,
) -> Estimate:
    """Estimate the cost of ``count`` nodes on ``provider``: of ``flavor`` when given
    (listed or built from the provider's naming rule), else of the cheapest flavor
    holding ``vcpus``/``ram_gb``. Unknown provider, flavor or region raise NotFound;
    a known shape without a price returns an Estimate whose ``known`` is False."""
    if catalog is None:
        from .loader import load_catalog

        catalog = load_catalog()
    # With a named flavor the shape comes from the catalog, so vcpus/ram may be 0.
    request = Request(
        nodes=count,
        vcpus=vcpus if flavor is None else max(vcpus, 1),
        ram_gb=ram_gb if flavor is None else max(ram_gb, 1.0),
        hours_per_day=hours_per_day,
        today=today or date.today(),
    )
    prov = catalog.get(provider)
    regions = prov.regions
    if region is not None:
        found = prov.region(region)
        if found is None:
            known = ", ".join(r.name for r in prov.regions)
            raise NotFound(f"provider {prov.name} has no region '{region}'", hint=f"known: {known}")
        regions = [found]
    if flavor is not None:
        chosen = prov.flavor(flavor)
        if chosen is None:
            known = ", ".join(f.name for f in prov.flavors) or "none listed"
            raise NotFound(f"provider {prov.name} has no flavor '{flavor}'", hint=f"known: {known}")
        candidates = [chosen]
    else:
        candidates = [
            f for f in prov.flavors if fits(f, request.vcpus, request.ram_gb, request.gpu)
        ]
        if not candidates:
            raise NotFound(
                f"provider {prov.name} has no flavor with {vcpus} vCPU / {ram_gb:g} GB",
                hint=f"largest: {largest(prov.flavors)}",
            )
    ref = request.reference_date
    best: tuple[float, Flavor, Region, Price] | None = None
    for reg in regions:
        for fl in candidates:
            price = price_at(prov, fl, reg, ref)
            if price and (best is None or flavor_key(price, fl) < flavor_key(best[3], best[1])):
                best = (price.eur_per_hour, fl, reg, price)
    closed = f"; {prov.name} closed on {prov.status.since}" if prov.closed_at(ref) else ""
    if best is None:
        fl = candidates[0]
        shape_vcpus, shape_ram = shape(fl, vcpus, ram_gb)
        return Estimate(
            provider=prov.name,
            flavor=fl.name,
            region=region,
            count=count,
            vcpus=shape_vcpus,
            ram_gb=shape_ram,
            eur_node_hour=None,
            eur_day=None,
            eur_month=None,
            price_as_of=None,
            confidence=None,
            old=False,
            note=f"no price for {fl.name} in the catalog; add one in an override file{closed}",
        )
    eur, fl, reg, price = best
    when = prov.fact_date(price)
    day = eur * count * hours_per_day
    shape_vcpus, shape_ram = shape(fl, vcpus, ram_gb)
    return Estimate(
        provider=prov.name,
        flavor=fl.name,
        region=reg.name,
        count=count,
        vcpus=shape_vcpus,
        ram_gb=shape_ram,
        eur_node_hour=eur,
        eur_day=day,
        eur_month=day * HOURS_PER_MONTH / 24,
        price_as_of=when,
        confidence=price.confidence,
        old=ref - when > OLD_AFTER,
        note=(price.note or prov.sources[price.source].title) + closed,
    )
