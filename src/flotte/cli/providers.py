"""``flotte providers``: list and show catalog entries, check user override files."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from flotte.cli.output import format_option, render_record, render_rows
from flotte.errors import UsageError

if TYPE_CHECKING:
    from flotte.catalog.models import Feature, Provider, Sourced

_LIST_COLUMNS = ("name", "kind", "apis", "jurisdiction", "cloud_act", "status", "regions")
_STATES = ("active", "closed", "unknown")


@click.group("providers")
def providers() -> None:
    """The provider catalog: facts, prices and their sources.

    Shipped entries can be overridden or extended with YAML files in
    <config>/catalog/ (see docs/catalog.md).
    """


@providers.command("list")
@click.option("--kind", "kinds", multiple=True, help="commercial, academic, federation or own.")
@click.option("--api", "apis", multiple=True, help="openstack, ec2, outscale, ovh, azure, gcp...")
@click.option("--status", "states", multiple=True, help="active, closed or unknown.")
@format_option()
def list_(kinds: tuple[str, ...], apis: tuple[str, ...], states: tuple[str, ...], fmt: str) -> None:
    """List providers with kind, APIs, jurisdiction, CLOUD Act exposure and status."""
    from flotte.catalog.advisor import KINDS
    from flotte.catalog.loader import load_catalog
    from flotte.catalog.models import APIS

    _check("--kind", kinds, KINDS)
    _check("--api", apis, APIS)
    _check("--status", states, _STATES)
    rows = []
    for p in load_catalog():
        if kinds and p.kind not in kinds:
            continue
        if apis and not set(apis).intersection(p.apis):
            continue
        if states and p.status.state not in states:
            continue
        rows.append(_list_row(p))
    if not rows and fmt == "table":
        given = [f"--kind {k}" for k in kinds] + [f"--api {a}" for a in apis]
        given += [f"--status {st}" for st in states]
        raise UsageError(
            f"no provider matches {' '.join(given)}",
            hint="`flotte providers list` shows every provider",
        )
    render_rows(rows, _LIST_COLUMNS, fmt)


@providers.command("show")
@click.argument("name")
@format_option()
def show(name: str, fmt: str) -> None:
    """Show every fact about one provider, each with its source and date."""
    from flotte.catalog.loader import load_catalog

    catalog = load_catalog()
    p = catalog.get(name)
    if fmt in ("json", "yaml"):
        doc = _with_dates(p.model_dump(mode="json", exclude_none=True), p)
        doc["files"] = list(catalog.origins.get(p.name, ()))
        render_record(doc, fmt)
        return
    record = _show_record(p, catalog.origins.get(p.name, ()))
    if fmt == "table":
        # One item per line reads better than the default comma-joined cell.
        record = {k: "\n".join(v) if isinstance(v, list) else v for k, v in record.items()}
    render_record(record, fmt)


@providers.command("validate")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
def validate(paths: tuple[Path, ...]) -> None:
    """Check user catalog files (default: every file in <config>/catalog/).

    Each file is merged onto the shipped catalog and validated; the first error
    is reported with its file, line and field.
    """
    from flotte.catalog.loader import default_user_dir, load_catalog, user_files, validate_file

    if not paths:
        directory = default_user_dir()
        files = user_files(directory)
        if not files:
            click.echo(f"no user catalog files in {directory}")
            return
        load_catalog(directory)  # validates every file together, as commands will
        for path in files:
            click.echo(f"ok {path}")
        return
    for path in paths:
        if not path.is_file():
            raise UsageError(f"{path}: no such file")
        names = validate_file(path)
        click.echo(f"ok {path}: {', '.join(names) or 'no provider'}")


def _with_dates(value: Any, p: Provider) -> Any:
    # Facts default to their source's date; spell it out so JSON readers need not.
    if isinstance(value, dict):
        out = {k: _with_dates(v, p) for k, v in value.items()}
        src = out.get("source")
        if isinstance(src, str) and "as_of" not in out and src in p.sources:
            out["as_of"] = p.sources[src].as_of.isoformat()
        return out
    if isinstance(value, list):
        return [_with_dates(v, p) for v in value]
    return value


def _check(flag: str, given: tuple[str, ...], known: tuple[str, ...]) -> None:
    for value in given:
        if value not in known:
            raise UsageError(f"{flag} {value!r}: choose from {', '.join(known)}")


def _status(p: Provider) -> str:
    if p.status.state == "closed":
        return f"closed {p.status.since}"
    return p.status.state


def _list_row(p: Provider) -> dict[str, Any]:
    return {
        "name": p.name,
        "kind": p.kind,
        "apis": list(p.apis),
        "jurisdiction": p.sovereignty.jurisdiction,
        "cloud_act": p.sovereignty.cloud_act.exposure,
        "status": _status(p),
        "regions": len(p.regions),
        "title": p.title,
        "driver": p.driver,
        "parent": f"{p.sovereignty.parent_company} ({p.sovereignty.parent_country})",
        "certifications": [c.name for c in p.certifications],
        "restricted": p.access.restricted,
    }


def _cite(p: Provider, fact: Sourced) -> str:
    conf = "" if fact.confidence == "verified" else f", {fact.confidence}"
    # Parentheses, not brackets: rich would read "[...]" as markup and drop it.
    return f"(source {fact.source}, {p.fact_date(fact)}{conf})"


def _feature(p: Provider, feat: Feature) -> str:
    value = {True: "yes", False: "no", None: "unknown"}[feat.available]
    note = f" — {feat.note}" if feat.note else ""
    return f"{value}{note} {_cite(p, feat)}"


def _show_record(p: Provider, origins: tuple[str, ...]) -> dict[str, Any]:
    sov = p.sovereignty
    act = sov.cloud_act
    status = _status(p) + (f" — {p.status.note}" if p.status.note else "")
    record: dict[str, Any] = {
        "name": p.name,
        "title": p.title,
        "kind": p.kind,
        "summary": p.summary,
        "apis": list(p.apis),
        "flotte driver": p.driver or "none (add hosts with the ssh driver)",
        "status": f"{status} {_cite(p, p.status)}",
        "jurisdiction": sov.jurisdiction,
        "parent company": f"{sov.parent_company} ({sov.parent_country})",
        "cloud act": f"{act.exposure} — {act.reason} {_cite(p, act)}",
        "certifications": [
            f"{c.name}" + (f" ({c.scope})" if c.scope else "") + f" {_cite(p, c)}"
            for c in p.certifications
        ]
        or "none recorded",
    }
    for name in ("image_upload", "bare_metal", "gpu", "managed_kubernetes", "registry"):
        record[name.replace("_", " ")] = _feature(p, getattr(p.features, name))
    access = "restricted: " if p.access.restricted else ""
    record["access"] = f"{access}{p.access.route} {_cite(p, p.access)}"
    if p.capacity:
        cap = p.capacity
        parts = [
            f"{cap.nodes} nodes" if cap.nodes else "",
            f"{cap.vcpus} vCPU" if cap.vcpus else "",
        ]
        parts.append(f"{cap.ram_gb:g} GB" if cap.ram_gb else "")
        note = f" ({cap.note})" if cap.note else ""
        record["capacity"] = f"{', '.join(x for x in parts if x)}{note} {_cite(p, cap)}"
    record["regions"] = [_region(p, r) for r in p.regions]
    record["flavors"] = [_flavor(p, f) for f in p.flavors] or "none in the catalog"
    if p.flavor_pattern:
        record["flavor naming"] = f"{p.flavor_pattern.regex} (e.g. {p.flavor_pattern.example})"
    if p.talk_2018:
        record["in the 2018 talk"] = p.talk_2018
    record["sources"] = [
        f"{key}: {s.title}" + (f" <{s.url}>" if s.url else "") + f" ({s.as_of})"
        for key, s in p.sources.items()
    ]
    record["files"] = list(origins)
    return record


def _region(p: Provider, r: Any) -> str:
    text = f"{r.name} ({r.location}, {r.country.upper()})"
    if r.endpoint:
        text += f" {r.endpoint}"
    if r.cloud_act:
        text += f" cloud act: {r.cloud_act.exposure} {_cite(p, r.cloud_act)}"
    if r.certifications:
        text += f" ({', '.join(r.certifications)})"
    return text


def _flavor(p: Provider, f: Any) -> str:
    size = (
        f"up to {f.vcpus or '?'}c/{f.ram_gb or '?'}G" if f.custom else f"{f.vcpus}c/{f.ram_gb:g}G"
    )
    if f.gpus:
        size += f"+{f.gpus} {f.gpu_model or 'GPU'}"
    if f.arch != "x86_64":
        size += f" {f.arch}"
    prices = sorted(f.prices, key=p.fact_date, reverse=True)
    if not prices:
        return f"{f.name} {size}: no price"
    newest = prices[0]
    where = f" in {', '.join(newest.regions)}" if newest.regions else ""
    more = f" (+{len(prices) - 1} other)" if len(prices) > 1 else ""
    return f"{f.name} {size}: {newest.eur_per_hour:g} EUR/h{where} {_cite(p, newest)}{more}"
