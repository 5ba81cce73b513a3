"""The dependency graph: order, cycles, reversal, dependants."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flotte.engine.graph import CycleError, Graph


def test_toposort_puts_requirements_first() -> None:
    g: Graph[str] = Graph()
    g.add("swarm", ["node-1", "node-2"])
    g.add("node-1", ["network"])
    g.add("node-2", ["network"])
    order = g.toposort()
    assert order.index("network") < order.index("node-1") < order.index("swarm")
    assert order.index("node-2") < order.index("swarm")
    assert set(order) == {"network", "node-1", "node-2", "swarm"}


def test_cycle_is_reported_with_its_steps() -> None:
    g: Graph[str] = Graph()
    g.add("a", ["b"])
    g.add("b", ["c"])
    g.add("c", ["a"])
    with pytest.raises(CycleError) as info:
        g.toposort()
    assert set(info.value.cycle) == {"a", "b", "c"}
    assert "dependency cycle" in str(info.value)


def test_reversed_and_dependants() -> None:
    g: Graph[str] = Graph()
    g.add("b", ["a"])
    g.add("c", ["b"])
    g.add("d", ["a"])
    assert g.dependants("a") == {"b", "c", "d"}
    assert g.dependants("c") == set()
    r = g.reversed()
    assert r.requires("a") == {"b", "d"}
    assert r.toposort()[-1] == "a"
    assert g.subgraph(["a", "b"]).requires("b") == {"a"}


@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 30)), max_size=80))
def test_toposort_respects_every_edge_of_a_dag(edges: list[tuple[int, int]]) -> None:
    g: Graph[int] = Graph()
    for a, b in edges:
        if a > b:  # edges only from higher to lower numbers: always acyclic
            g.add(a, [b])
        else:
            g.add(a)
            g.add(b)
    order = g.toposort()
    pos = {n: i for i, n in enumerate(order)}
    assert len(order) == len(g)
    for node in g:
        for dep in g.requires(node):
            assert pos[dep] < pos[node]
