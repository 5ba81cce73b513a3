"""The import graph: no cycle, and no layer imports upward (DESIGN.md's arrows)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[3] / "src"

# A module under the first prefix may never import one under the second.
FORBIDDEN = [
    ("flotte.drivers", "flotte.service"),
    ("flotte.drivers", "flotte.cli"),
    ("flotte.drivers", "flotte.api"),
    ("flotte.provision", "flotte.service"),
    ("flotte.coe", "flotte.service"),
    ("flotte.state", "flotte.service"),
    ("flotte.state", "flotte.drivers"),
    ("flotte.planner", "flotte.drivers"),
    ("flotte.planner", "flotte.service"),
    ("flotte.planner", "flotte.state.store"),
    ("flotte.engine", "flotte.drivers"),
    ("flotte.engine", "flotte.service"),
    ("flotte.service", "flotte.cli"),
    ("flotte.service", "flotte.api"),
    ("flotte.specs", "flotte.drivers"),
]


def graph() -> dict[str, set[str]]:
    modules = {}
    for path in SRC.rglob("*.py"):
        name = ".".join(path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = path
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                for alias in node.names:
                    for candidate in (f"{base}.{alias.name}", base):
                        if candidate in modules and candidate != name:
                            deps.add(candidate)
                            break
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name in modules and a.name != name}
        edges[name] = deps
    return edges


def test_no_import_cycle() -> None:
    edges = graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for dep in sorted(edges[module]):
            inside = dep.startswith(module + ".") or module.startswith(dep + ".")
            if state.get(dep) == 1 and not inside:
                cycle = [*stack[stack.index(dep) :], dep]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        state[module] = 2
        stack.pop()

    for module in sorted(edges):
        if module not in state:
            visit(module)


def test_no_layer_imports_upward() -> None:
    bad = [
        f"{module} imports {dep}"
        for module, deps in graph().items()
        for dep in deps
        for low, high in FORBIDDEN
        if (module == low or module.startswith(low + "."))
        and (dep == high or dep.startswith(high + "."))
    ]
    assert bad == []


# Modules another change is editing right now; split when it has landed.
PENDING_SPLIT: set[str] = set()


def test_modules_stay_under_500_lines() -> None:
    long = {
        str(p.relative_to(SRC)): n
        for p in SRC.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 500
    }
    assert set(long) <= PENDING_SPLIT, long
