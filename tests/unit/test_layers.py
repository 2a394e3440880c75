"""The layers of `gateway/`, read from the syntax trees of its source (nothing is imported, so a
module that would fail to import is still checked): no import cycles, pure code free of I/O, and
the packages at the bottom importing nothing above them.

Every import counts, wherever it stands: at module level, inside a function, or under
`if TYPE_CHECKING:`. A deferred or typing-only import still ties the two modules together.
"""

from __future__ import annotations

import ast
import itertools
from collections import deque
from collections.abc import Iterator
from functools import cache
from pathlib import Path

from tests.conftest import ROOT

# Code that computes without I/O: no network, no event loop, no clock, no environment, no
# randomness. A package here covers every module in it. Pure code may import, of the gateway,
# only other pure code, so that nothing impure comes in through the back door.
PURE = (
    "gateway.wire",
    "gateway.compat",
    "gateway.translate",
    "gateway.routing",
    "gateway.config",
    "gateway.admission.plan",
    "gateway.admission.pricing",
    "gateway.admission.tool_fees",
    "gateway.admission.decision",
    "gateway.admission.local_buckets",
    "gateway.admission.auth_backoff",
    "gateway.admission.usage_breakdown",
    "gateway.observability.record",
    "gateway.observability.trace_attributes",
    "gateway.observability.trace_settings",
    "gateway.observability.trace_context",
    "gateway.observability.otlp_json",
    "gateway.teams.records",
    "gateway.upstream.resilience",
    "gateway.cache.key",
    "gateway.cache.decision",
    "gateway.cache.entry",
    "gateway.cache.capture",
    "gateway.cache.replay",
)
# Of the pure packages above, the `__init__`s that are not: they check the modules mypyc
# compiled against their sources (`gateway.compiled`), reading files and the environment.
IMPURE_INITS = frozenset({"gateway.routing"})
# What pure code may not import (any import of the module or of something inside it).
IO_MODULES = (
    "asyncio",
    "redis",
    "starlette",
    "uvicorn",
    "httptools",
    "aiohttp",
    "httpx",
    "socket",
    "time",
    "os",
    "random",
)
# Packages and modules that may import, of the gateway, only the modules named here (and
# their own). The simulator stands in for OpenAI and shares only the wire format and config;
# config is the bottom layer everything reads.
CONFINED: dict[str, tuple[str, ...]] = {
    "gateway.simulator": ("gateway.wire", "gateway.config"),
    "gateway.objects": ("gateway.wire", "gateway.config"),
    "gateway.translate": ("gateway.wire", "gateway.config"),
    "gateway.config": (),
    "gateway.wire": (),
}


# The layer diagram of `gateway/__init__.py`, bottom row first: a package (or top-level module)
# imports from its own row and the rows below, never from a row above.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("gateway.wire", "gateway.config", "gateway.eventloop", "gateway.compiled"),
    (
        "gateway.teams",
        "gateway.objects",
        "gateway.compat",
        "gateway.translate",
        "gateway.simulator",
    ),
    ("gateway.routing",),
    ("gateway.observability",),
    ("gateway.upstream", "gateway.admission", "gateway.cache"),
    ("gateway.runtime",),
    ("gateway.server",),
    ("gateway.endpoints", "gateway.admin"),
    ("gateway.app",),
    ("gateway.cli", "gateway.__main__"),
)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted((ROOT / "gateway").rglob("*.py"))}


def within(name: str, unit: str) -> bool:
    """Whether module `name` is `unit` or lies inside package `unit`."""
    return name == unit or name.startswith(unit + ".")


def imports(name: str) -> Iterator[tuple[str, int]]:
    """Every module `name` imports, as an absolute name, with the line of the import."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    yield from imports_in(ast.parse(path.read_text(), str(path)), package)


def imports_in(tree: ast.AST, package: str) -> Iterator[tuple[str, int]]:
    """The imports anywhere in `tree`, a module of `package`. For `from package import name`,
    the submodule when there is one, else the package."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            for alias in node.names:
                submodule = f"{module}.{alias.name}"
                yield (submodule if submodule in MODULES else module), node.lineno


@cache
def graph() -> dict[str, dict[str, int]]:
    """Module -> the gateway modules it imports -> the first line that imports each."""
    edges: dict[str, dict[str, int]] = {}
    for name in MODULES:
        edges[name] = {}
        for target, line in imports(name):
            if target in MODULES and target != name:
                edges[name].setdefault(target, line)
    return edges


def strongly_connected(edges: dict[str, dict[str, int]]) -> list[set[str]]:
    """Tarjan's groups of modules that all reach each other."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                group.add(member)
                if member == node:
                    break
            groups.append(group)

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return groups


def shortest_cycle(edges: dict[str, dict[str, int]], group: set[str]) -> list[str]:
    """A shortest cycle through the group's first module, as the modules in import order."""
    start = min(group)
    parents: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in sorted(set(edges[node]) & group):
            if nxt == start:
                path = [node]
                while path[-1] != start:
                    path.append(parents[path[-1]])
                return [*reversed(path), start]
            if nxt not in parents:
                parents[nxt] = node
                queue.append(nxt)
    raise AssertionError(f"no cycle through {start}")  # a group always has one


def is_pure(name: str) -> bool:
    return name not in IMPURE_INITS and any(within(name, unit) for unit in PURE)


def test_the_tables_name_real_modules() -> None:
    # A stale name would exempt what it meant to check.
    named = [
        *PURE,
        *IMPURE_INITS,
        *CONFINED,
        *(allowed for rule in CONFINED.values() for allowed in rule),
    ]
    assert [unit for unit in named if not any(within(m, unit) for m in MODULES)] == []
    assert "gateway.app" in MODULES and graph()["gateway.app"]


def test_relative_deferred_and_typing_imports_are_read_as_absolute_names() -> None:
    tree = ast.parse(
        "from . import errors\n"
        "from ..config import Config\n"
        "def f():\n"
        "    from .sse import encode\n"
        "if TYPE_CHECKING:\n"
        "    import gateway.runtime.gateway\n"
    )
    assert sorted(imports_in(tree, "gateway.wire")) == [
        ("gateway.config", 2),
        ("gateway.runtime.gateway", 6),
        ("gateway.wire.errors", 1),
        ("gateway.wire.sse", 4),
    ]


def test_a_cycle_is_found_and_named_in_import_order() -> None:
    edges = {"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3, "d": 4}, "d": {}}
    assert sorted(sorted(group) for group in strongly_connected(edges)) == [["a", "b", "c"], ["d"]]
    assert shortest_cycle(edges, {"a", "b", "c"}) == ["a", "b", "c", "a"]


def test_no_import_cycles() -> None:
    edges = graph()
    cycles = []
    for group in strongly_connected(edges):
        if len(group) > 1:
            path = shortest_cycle(edges, group)
            steps = [f"{a}:{edges[a][b]}" for a, b in itertools.pairwise(path)]
            others = sorted(group - set(path))
            cycles.append(
                " -> ".join([*steps, path[-1]])
                + (f"; in the same knot: {', '.join(others)}" if others else "")
            )
    assert cycles == [], "import cycles (module:line importing the next):\n" + "\n".join(cycles)


def test_pure_code_does_no_io() -> None:
    found = [
        f"{name}:{line} imports {target}"
        for name in MODULES
        if is_pure(name)
        for target, line in imports(name)
        if any(within(target, module) for module in IO_MODULES)
    ]
    assert found == [], "pure code importing I/O:\n" + "\n".join(found)


def test_pure_code_imports_only_pure_gateway_code() -> None:
    edges = graph()
    found = [
        f"{name}:{line} imports {target}"
        for name in MODULES
        if is_pure(name)
        for target, line in edges[name].items()
        if not is_pure(target)
    ]
    assert found == [], "pure code importing impure gateway modules:\n" + "\n".join(found)


def test_confined_packages_import_only_what_they_may() -> None:
    edges = graph()
    found = [
        f"{name}:{line} imports {target}"
        for unit, allowed in CONFINED.items()
        for name in MODULES
        if within(name, unit)
        for target, line in edges[name].items()
        if not any(within(target, ok) for ok in (unit, *allowed))
    ]
    assert found == [], "imports across a confined layer's bounds:\n" + "\n".join(found)


def row_of(name: str) -> int:
    rows = [i for i, row in enumerate(LAYERS) for unit in row if within(name, unit)]
    assert rows, f"{name} is in no row of LAYERS: add its package to the diagram"
    return rows[0]


def test_every_module_has_a_row_and_imports_only_downward() -> None:
    upward = [
        f"{name}:{line} imports {target} (row {row_of(target)} above row {row_of(name)})"
        for name in MODULES
        if name != "gateway"
        for target, line in imports(name)
        if target in MODULES and target != "gateway" and row_of(target) > row_of(name)
    ]
    assert upward == [], "imports that run up the layer diagram:\n" + "\n".join(upward)
