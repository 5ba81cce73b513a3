"""The overflow placement is pure: property tests over any limits and totals."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from flotte.errors import PlanError
from flotte.service.overflow_policy import GroupLimit, place


@st.composite
def limit(draw: st.DrawFn, name: str) -> GroupLimit:
    now = draw(st.integers(0, 5))
    extra = draw(st.one_of(st.none(), st.integers(0, 3)))
    price = draw(st.one_of(st.none(), st.floats(0, 50)))
    return GroupLimit(name, now, None if extra is None else now + extra, "", price)


limits_st = st.integers(1, 4).flatmap(
    lambda n: st.tuples(*(limit(name) for name in "abcd"[:n])).map(list)
)


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(limits_st, st.integers(0, 30), st.one_of(st.none(), st.floats(1, 500)))
@example([GroupLimit("a", 0, None, "", 2.2e-311)], 1, 1.0)  # the budget over it is infinite
def test_placement_adds_up_respects_caps_and_budget_or_says_why(
    limits: list[GroupLimit], total: int, budget: float | None
) -> None:
    try:
        placed = place(total, limits, max_eur_day=budget)
    except PlanError as err:
        assert "\n" not in str(err)
        return
    assert sum(placed.counts.values()) == total
    have = sum(g.now for g in limits)
    for g in limits:
        count = placed.counts[g.name]
        if total >= have:
            assert count >= g.now  # growing never moves a node
            assert g.cap is None or count <= max(g.cap, g.now)
        else:
            assert count <= g.now  # shrinking never adds one
    if total > have:
        # Filled in order: a group gets new nodes only when every earlier one is full
        # (cap) or priced out.
        for i, g in enumerate(limits):
            if placed.counts[g.name] > g.now:
                for earlier in limits[:i]:
                    full = earlier.cap is not None and placed.counts[earlier.name] >= earlier.cap
                    assert full or (earlier.eur_node_day or 0) > 0
    if total < have:
        # The last groups lose nodes first.
        lost = [g.now - placed.counts[g.name] for g in limits]
        for i in range(len(limits) - 1):
            if lost[i] > 0:
                assert all(placed.counts[g.name] == 0 for g in limits[i + 1 :])


def test_examples() -> None:
    lab, partner, aws = (
        GroupLimit("lab", 0, 2, "quota"),
        GroupLimit("partner"),
        GroupLimit("aws", 0, None, "", 17.86),
    )
    assert place(4, [lab, partner, aws]).counts == {"lab": 2, "partner": 2, "aws": 0}
    capped = GroupLimit("partner", 0, 1, "max_node_count 1")
    got = place(4, [lab, capped, aws], max_eur_day=20)
    assert got.counts == {"lab": 2, "partner": 1, "aws": 1} and got.eur_day == 17.86
    with pytest.raises(PlanError, match="over budget"):
        place(5, [lab, capped, aws], max_eur_day=20)
    with pytest.raises(PlanError, match="below the price of one node of aws"):
        place(1, [aws], max_eur_day=5)
    shrink = [GroupLimit("lab", 2, 2), GroupLimit("partner", 2), GroupLimit("aws", 1)]
    assert place(2, shrink).counts == {"lab": 2, "partner": 0, "aws": 0}
    assert place(4, shrink, removing={"lab": 1}).counts == {"lab": 1, "partner": 2, "aws": 1}
