"""What a plan costs, per node group, from the catalog: advice shown beside the plan."""

from __future__ import annotations

from typing import Any

from flotte import drivers
from flotte.planner import Action, Plan
from flotte.service.options import field_keys
from flotte.specs import ClusterSpec, node_options

FLAVOR_KEYS = ("flavor_name", "flavor_id", "instance_type", "fake_flavor")


def _flavor(options: dict[str, Any]) -> str | None:
    for key, value in options.items():
        if value and key.endswith(FLAVOR_KEYS):
            return str(value)
    return None


def group_costs(spec: ClusterSpec, plan: Plan | None = None) -> list[dict[str, Any]]:
    """One row per node group: nodes after the plan, provider, flavor, EUR/day or why not."""
    from flotte.catalog import estimate

    rows = []
    for group in spec.nodegroups:
        driver = spec.driver_of(group)
        options = node_options(spec, group, field_keys(driver))
        provider = (
            group.labels.get("provider")
            or spec.labels.get("provider")
            or drivers.get(driver).capabilities.catalog_provider
        )
        flavor = _flavor(options)
        row: dict[str, Any] = {
            "nodegroup": group.name,
            "nodes": group.node_count,
            "driver": driver,
            "provider": provider,
            "flavor": flavor,
            "eur_day": None,
            "note": "",
        }
        if plan is not None:
            row["removing"] = sum(1 for s in plan.of(Action.REMOVE) if s.group == group.name)
            row["creating"] = sum(1 for s in plan.of(Action.CREATE) if s.group == group.name)
        if not provider:
            row["note"] = "no catalog provider: pass --labels provider=NAME to price it"
        elif group.node_count:
            try:
                # Without a flavor, the smallest offer that holds a node prices it.
                est = estimate(
                    provider, flavor, 0 if flavor else 1, 0.0 if flavor else 1.0, group.node_count
                )
                row["eur_day"] = est.eur_day
                row["note"] = est.summary()
            except Exception as err:  # the estimate is advice; it never blocks a plan
                row["note"] = f"unknown ({err})"
        rows.append(row)
    return rows


def total(rows: list[dict[str, Any]]) -> float | None:
    known = [r["eur_day"] for r in rows if r["eur_day"] is not None]
    return round(sum(known), 2) if known else None
