"""Where overflowing workers go: a pure function from limits to node counts per group.

``place`` is given, for each node group of the overflow list in order, how many nodes
it has now, the most it may hold and why (its ``max_node_count``, its provider's quota,
a create its provider refused), and what one node costs per day. It fills the groups in
order and returns the count of each group with the reason, so ``--dry-run`` shows the
same placement the run makes. Shrinking empties the last group first (the overflow
order is cheapest or nearest first). No I/O: the caller measures the limits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from flotte.errors import PlanError


@dataclass(frozen=True)
class GroupLimit:
    """What one overflow group can take."""

    name: str
    now: int = 0  # nodes it has (or is asked to keep)
    cap: int | None = None  # most nodes it may hold; None: no limit known
    why_capped: str = ""  # e.g. "max_node_count 3", "quota: 2 instances"
    eur_node_day: float | None = None  # one node's price; None: not priced (own hosts)


@dataclass(frozen=True)
class Placement:
    """Node counts per group and why each got what it got."""

    counts: dict[str, int]
    reasons: dict[str, str] = field(default_factory=dict)
    eur_day: float | None = None  # the overflow groups' cost after placement

    def changed(self, current: Mapping[str, int]) -> bool:
        return any(current.get(k, 0) != v for k, v in self.counts.items())


def _fmt(eur: float) -> str:
    return f"{eur:.2f} EUR/day"


def place(
    total: int,
    limits: Sequence[GroupLimit],
    *,
    max_eur_day: float | None = None,
    fixed_eur_day: float = 0.0,
    removing: Mapping[str, int] | None = None,
) -> Placement:
    """Counts for ``limits`` (in overflow order) that add up to ``total`` workers.

    ``fixed_eur_day`` is what the rest of the cluster costs (managers, other groups);
    with ``max_eur_day`` the whole cluster stays within the budget. ``removing`` counts
    nodes named to go per group: they go first when shrinking. Raises ``PlanError`` (one
    line, before anything is made) when the groups cannot hold ``total``.
    """
    if total < 0:
        raise PlanError(f"--node-count cannot be negative (got {total})")
    named = dict(removing or {})
    counts = {g.name: max(g.now - named.get(g.name, 0), 0) for g in limits}
    reasons: dict[str, str] = {}
    have = sum(counts.values())
    if have > total:
        # Shrink from the last group of the list first: the most expensive or farthest.
        excess = have - total
        for g in reversed(limits):
            take = min(excess, counts[g.name])
            if take:
                counts[g.name] -= take
                excess -= take
                reasons[g.name] = f"{take} removed (last in the overflow order go first)"
    budget = math.inf if max_eur_day is None else max_eur_day
    spent = fixed_eur_day + sum(counts[g.name] * (g.eur_node_day or 0.0) for g in limits)
    if spent > budget + 1e-9 and have <= total:
        raise PlanError(
            f"the cluster already costs {_fmt(spent)}, above the budget --max-eur-day "
            f"{budget:g}: raise the budget or shrink first"
        )
    missing = total - sum(counts.values())
    refused: list[str] = []
    for g in limits:
        if missing <= 0:
            break
        room = missing if g.cap is None else max(g.cap - counts[g.name], 0)
        price = g.eur_node_day or 0.0
        if price <= 0 or math.isinf(budget):
            affordable = room
        else:
            # a price far below a cent makes the quotient infinite: then money is no limit
            share = (budget - spent + 1e-9) // price
            affordable = room if math.isinf(share) else int(share)
        take = min(missing, room, max(affordable, 0))
        if take:
            counts[g.name] += take
            spent += take * price
            missing -= take
            reasons[g.name] = f"{take} added ({'filled' if take == room else 'first with room'})"
        if missing > 0:
            if take >= room or (g.cap is not None and counts[g.name] >= g.cap):
                why = f"{g.name} full ({g.why_capped or f'at most {g.cap}'})"
            else:
                why = f"{g.name} over budget ({_fmt(price)} a node, {budget:g} EUR/day in all)"
            refused.append(why)
            reasons[g.name] = "; ".join(x for x in (reasons.get(g.name), why) if x)
    if missing > 0:
        placed = total - missing
        first = limits[0] if limits else None
        if (
            first is not None
            and max_eur_day is not None
            and (first.eur_node_day or 0) > max_eur_day - fixed_eur_day
        ):
            raise PlanError(
                f"--max-eur-day {max_eur_day:g} is below the price of one node of "
                f"{first.name} ({_fmt(first.eur_node_day or 0)} on top of "
                f"{_fmt(fixed_eur_day)} for the rest): raise the budget"
            )
        raise PlanError(
            f"only {placed} of {total} worker(s) fit: {'; '.join(refused)}",
            hint="add a node group to --overflow, raise a limit or lower --node-count",
        )
    priced = [g for g in limits if g.eur_node_day is not None]
    cost = (
        round(sum(counts[g.name] * (g.eur_node_day or 0.0) for g in priced), 2) if priced else None
    )
    return Placement(counts, reasons, cost)
