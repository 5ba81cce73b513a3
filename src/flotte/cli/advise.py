"""``flotte advise``: rank offers for a cluster shape by cost, with sovereignty filters.

Only click and the catalog (PyYAML, pydantic) load at start-up; rich loads when a
table is printed, so the command starts in well under half a second.
"""

from __future__ import annotations

from typing import Any

import click

from flotte.cli.output import format_option, render_record, render_rows
from flotte.errors import FlotteError

_OFFER_COLUMNS = (
    "rank",
    "provider",
    "regions",
    "flavor",
    "node",
    "eur_node_hour",
    "eur_day",
    "eur_month",
    "price_date",
    "confidence",
    "cloud_act",
    "access",
)
# Short headers for the terminal table; JSON/YAML keep the descriptive keys.
_TABLE_HEADERS = {
    "rank": "#",
    "provider": "provider",
    "regions": "where",
    "flavor": "flavor",
    "eur_node_hour": "€/node-h",
    "eur_day": "€/day",
    "eur_month": "€/month",
    "price_date": "priced",
    "confidence": "conf",
    "cloud_act": "cloud act",
}


class NoOffer(FlotteError):
    """Nothing survived the filters; the message says which filter removed what."""


@click.command("advise")
@click.option("--nodes", type=int, default=1, show_default=True, help="Number of nodes.")
@click.option("--vcpus", type=int, required=True, help="vCPUs per node.")
@click.option("--ram", "ram_gb", type=float, required=True, help="RAM per node, in GB.")
@click.option("--gpu", is_flag=True, help="Each node needs at least one GPU.")
@click.option("--jurisdiction", help="Keep providers and regions under this law: eu, fr, de...")
@click.option(
    "--no-cloud-act", is_flag=True, help="Keep only offers not exposed to the US CLOUD Act."
)
@click.option(
    "--api", "apis", multiple=True, help="Keep providers with this API (openstack, ec2...)."
)
@click.option("--kind", "kinds", multiple=True, help="commercial, academic, federation or own.")
@click.option(
    "--need",
    "needs",
    multiple=True,
    help="Required feature: image_upload, bare_metal, gpu, managed_kubernetes, registry.",
)
@click.option("--max-eur-day", type=float, help="Drop offers costing more per day.")
@click.option(
    "--hours-per-day",
    type=float,
    default=24.0,
    show_default=True,
    help="Hours the cluster runs each day.",
)
@click.option(
    "--as-of",
    default="latest",
    show_default=True,
    help="Prices and statuses at: latest, a year (2018), a month or a date.",
)
@click.option("--explain", is_flag=True, help="Also list every excluded provider and why.")
@click.option("--limit", type=int, help="Show only the first N offers.")
@format_option()
def advise(
    nodes: int,
    vcpus: int,
    ram_gb: float,
    gpu: bool,
    jurisdiction: str | None,
    no_cloud_act: bool,
    apis: tuple[str, ...],
    kinds: tuple[str, ...],
    needs: tuple[str, ...],
    max_eur_day: float | None,
    hours_per_day: float,
    as_of: str,
    explain: bool,
    limit: int | None,
    fmt: str,
) -> None:
    """Rank where to run NODES nodes of VCPUS / RAM each, cheapest first.

    Each provider and region gets its cheapest flavor that holds one node;
    costs are for the whole cluster. Academic clouds show as free but
    restricted, with their access route. Example:

    \b
        flotte advise --nodes 8 --vcpus 16 --ram 64 --jurisdiction eu --no-cloud-act
    """
    from flotte.catalog.advisor import Request, parse_as_of
    from flotte.catalog.advisor import advise as run
    from flotte.catalog.loader import load_catalog

    request = Request(
        nodes=nodes,
        vcpus=vcpus,
        ram_gb=ram_gb,
        gpu=gpu,
        jurisdiction=jurisdiction.lower() if jurisdiction else None,
        no_cloud_act=no_cloud_act,
        apis=frozenset(a.lower() for a in apis),
        kinds=frozenset(k.lower() for k in kinds),
        # Magnum and Ironic spell it "baremetal"; the catalog "bare_metal".
        needs=frozenset(
            n.lower().replace("-", "_").replace("baremetal", "bare_metal") for n in needs
        ),
        max_eur_day=max_eur_day,
        hours_per_day=hours_per_day,
        as_of=parse_as_of(as_of),
    )
    if limit is not None and limit < 1:
        raise click.BadParameter("must be at least 1", param_hint="--limit")
    advice = run(load_catalog(), request)
    offers = advice.offers[:limit] if limit else advice.offers
    rows = [{"rank": i, **o.row()} for i, o in enumerate(offers, 1)]
    excluded = [e.row() for e in advice.excluded]
    if fmt in ("json", "yaml"):
        doc: dict[str, Any] = {
            "request": request.describe(),
            "reference_date": request.reference_date.isoformat(),
            "offers": rows,
            "excluded": excluded,
            "warnings": list(advice.warnings),
        }
        if not offers:
            doc["explanation"] = advice.why_empty()
        render_record(doc, fmt)
    elif offers and fmt == "table":
        click.echo(f"{request.describe()} (reference date {request.reference_date})")
        render_rows([_compact(r) for r in rows], list(_TABLE_HEADERS.values()), fmt)
    elif offers:
        render_rows(rows, _OFFER_COLUMNS, fmt)
    if not offers:
        raise NoOffer(advice.why_empty(), hint="--explain lists each exclusion")
    if fmt != "table":
        return
    restricted = {o.provider: o.access for o in offers if o.restricted}
    if restricted:
        click.echo("* restricted access:")
    for name, route in restricted.items():
        click.echo(f"  {name}: {route}")
    for warning in advice.warnings:
        click.echo(f"warning: {warning}", err=True)
    if explain and excluded:
        click.echo("\nExcluded:")
        for row in excluded:
            row["regions"] = _regions(row["regions"])
        render_rows(excluded, ("provider", "regions", "cause", "detail"), fmt)
    elif excluded:
        names = len({e["provider"] for e in excluded})
        click.echo(f"\n{names} provider(s) excluded in whole or part; --explain shows why.")


def _regions(names: list[str]) -> str:
    return names[0] + (f" +{len(names) - 1}" if len(names) > 1 else "") if names else ""


def _compact(row: dict[str, Any]) -> dict[str, Any]:
    # An 80-column terminal cannot hold every field: shorten the wide ones.
    out = {_TABLE_HEADERS[k]: row[k] for k in _TABLE_HEADERS}
    out["where"] = _regions(row["regions"])
    out["priced"] = row["price_date"][:7]
    out["conf"] = "old" if row["old"] else row["confidence"]
    if row["access"].startswith("restricted"):
        out["provider"] += "*"  # footnoted below the table with the access route
    out["€/node-h"] = f"{row['eur_node_hour']:.4f}"
    out["€/day"] = f"{row['eur_day']:.2f}"
    out["€/month"] = f"{row['eur_month']:.0f}"
    return out
