"""A dependency graph of named steps: pure data, no I/O.

``requires[a]`` holds the steps that must finish before ``a`` starts. The graph can be
ordered (``toposort``), turned around for teardown (``reversed``), and asked who
depends on a step (``dependants``), which is how the executor skips the branch below a
failure while the rest goes on.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator
from typing import Generic, TypeVar

from flotte.errors import FlotteError

K = TypeVar("K", bound=Hashable)


class CycleError(FlotteError):
    """The graph has a cycle; ``cycle`` lists its steps in order."""

    def __init__(self, cycle: list[object]) -> None:
        super().__init__("dependency cycle: " + " -> ".join(map(str, cycle)))
        self.cycle = cycle


class Graph(Generic[K]):
    def __init__(self) -> None:
        self._requires: dict[K, set[K]] = {}

    def add(self, node: K, requires: Iterable[K] = ()) -> None:
        """Add ``node`` (if new) and make it wait for each of ``requires``."""
        self._requires.setdefault(node, set())
        for dep in requires:
            self.add_edge(node, dep)

    def add_edge(self, node: K, requires: K) -> None:
        self._requires.setdefault(node, set()).add(requires)
        self._requires.setdefault(requires, set())

    def __contains__(self, node: object) -> bool:
        return node in self._requires

    def __iter__(self) -> Iterator[K]:
        return iter(self._requires)

    def __len__(self) -> int:
        return len(self._requires)

    def requires(self, node: K) -> frozenset[K]:
        return frozenset(self._requires[node])

    def required_by(self, node: K) -> frozenset[K]:
        """Steps that directly wait for ``node``."""
        return frozenset(n for n, deps in self._requires.items() if node in deps)

    def dependants(self, node: K) -> set[K]:
        """Every step that waits for ``node``, directly or not."""
        reverse = self._reverse_edges()
        seen: set[K] = set()
        stack = [node]
        while stack:
            for child in reverse.get(stack.pop(), ()):
                if child not in seen:
                    seen.add(child)
                    stack.append(child)
        return seen

    def _reverse_edges(self) -> dict[K, set[K]]:
        reverse: dict[K, set[K]] = {n: set() for n in self._requires}
        for node, deps in self._requires.items():
            for dep in deps:
                reverse[dep].add(node)
        return reverse

    def reversed(self) -> Graph[K]:
        """The same steps with every edge turned around: teardown order."""
        out: Graph[K] = Graph()
        for node in self._requires:
            out.add(node)
        for node, deps in self._requires.items():
            for dep in deps:
                out.add_edge(dep, node)
        return out

    def subgraph(self, nodes: Iterable[K]) -> Graph[K]:
        keep = set(nodes)
        out: Graph[K] = Graph()
        for node in keep:
            out.add(node, (d for d in self._requires.get(node, ()) if d in keep))
        return out

    def toposort(self) -> list[K]:
        """Steps in an order where each comes after what it requires; CycleError if none."""
        order: list[K] = []
        state: dict[K, int] = {}  # 1 = on the current path, 2 = done
        for root in self._requires:
            if state.get(root):
                continue
            path: list[K] = []
            stack: list[tuple[K, Iterator[K]]] = [(root, iter(sorted_deps(self, root)))]
            state[root] = 1
            path.append(root)
            while stack:
                node, deps = stack[-1]
                for dep in deps:
                    mark = state.get(dep)
                    if mark == 1:
                        start = path.index(dep)
                        raise CycleError([*path[start:], dep])
                    if mark is None:
                        state[dep] = 1
                        path.append(dep)
                        stack.append((dep, iter(sorted_deps(self, dep))))
                        break
                else:
                    stack.pop()
                    path.pop()
                    state[node] = 2
                    order.append(node)
        return order


def sorted_deps(graph: Graph[K], node: K) -> list[K]:
    """Dependencies in a stable order, so plans print the same way every time."""
    deps = list(graph.requires(node))
    try:
        return sorted(deps)  # type: ignore[type-var]
    except TypeError:
        return deps
