"""What a plan costs, per node group, from the catalog: advice shown beside the plan."""

from __future__ import annotations

from typing import Any

from flotte import drivers
from flotte.planner import Action, Plan
from flotte.service.options import field_keys
from flotte.specs import ClusterSpec, NodeGroupSpec, node_options

FLAVOR_KEYS = ("flavor_name", "flavor_id", "instance_type", "fake_flavor")


def _flavor(options: dict[str, Any]) -> str | None:
    for key, value in options.items():
        if value and key.endswith(FLAVOR_KEYS):
            return str(value)
    return None


def _provider(spec: ClusterSpec, group: NodeGroupSpec) -> str | None:
    return (
        group.labels.get("provider")
        or spec.labels.get("provider")
        or drivers.get(spec.driver_of(group)).capabilities.catalog_provider
    )


def _estimate(spec: ClusterSpec, group: NodeGroupSpec, count: int) -> tuple[float | None, str]:
    """EUR/day of ``count`` nodes of ``group`` and the estimate's summary (or why not)."""
    from flotte.catalog import estimate

    provider = _provider(spec, group)
    if not provider:
        return None, "no catalog provider: pass --labels provider=NAME to price it"
    flavor = _flavor(node_options(spec, group, field_keys(spec.driver_of(group))))
    try:
        # Without a flavor, the smallest offer that holds a node prices it.
        est = estimate(provider, flavor, 0 if flavor else 1, 0.0 if flavor else 1.0, count)
    except Exception as err:  # the estimate is advice; it never blocks a plan
        return None, f"unknown ({err})"
    return est.eur_day, est.summary()


def node_price(spec: ClusterSpec, group: NodeGroupSpec) -> float | None:
    """What one node of ``group`` costs per day, from the catalog (None: not priced)."""
    return _estimate(spec, group, 1)[0]


def group_costs(spec: ClusterSpec, plan: Plan | None = None) -> list[dict[str, Any]]:
    """One row per node group: nodes after the plan, provider, flavor, EUR/day or why not."""
    rows = []
    for group in spec.nodegroups:
        driver = spec.driver_of(group)
        row: dict[str, Any] = {
            "nodegroup": group.name,
            "nodes": group.node_count,
            "driver": driver,
            "provider": _provider(spec, group),
            "flavor": _flavor(node_options(spec, group, field_keys(driver))),
            "eur_day": None,
            "note": "",
        }
        if plan is not None:
            row["removing"] = sum(1 for s in plan.of(Action.REMOVE) if s.group == group.name)
            row["creating"] = sum(1 for s in plan.of(Action.CREATE) if s.group == group.name)
        if not row["provider"]:
            row["note"] = _estimate(spec, group, 0)[1]
        elif group.node_count:
            row["eur_day"], row["note"] = _estimate(spec, group, group.node_count)
        rows.append(row)
    return rows


def total(rows: list[dict[str, Any]]) -> float | None:
    known = [r["eur_day"] for r in rows if r["eur_day"] is not None]
    return round(sum(known), 2) if known else None
