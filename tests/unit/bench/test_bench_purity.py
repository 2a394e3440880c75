"""The benchmark package's pure modules import nothing that does I/O or reads the clock, and
call no file or clock function: they stay testable without sockets or timing."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench"
PURE = (
    "scenarios",
    "measurement",
    "targets",
    "comparison",
    "report",
    "answers",
    "router_cost",
    "router_fit",
)
ALLOWED = {
    "__future__",
    "collections.abc",
    "dataclasses",
    "json",
    "math",
    "re",
    "statistics",
    "typing",
    # numpy's arrays, and the gateway's own pure code (tests/unit/test_layers.py holds it pure)
    "numpy",
    "numpy.typing",
    "gateway.admission.pricing",
    "gateway.config",
    "gateway.wire.usage",
}
FORBIDDEN_CALLS = {"open", "print", "input", "exec", "eval", "__import__"}


def _imports(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("module", PURE)
def test_pure_module_imports_only_pure_modules(module: str) -> None:
    tree = ast.parse((BENCH / f"{module}.py").read_text())
    imported = _imports(tree)
    outside = {
        name
        for name in imported
        if name not in ALLOWED and not any(name == f"bench.{p}" for p in PURE)
    }
    assert not outside, f"bench/{module}.py imports {sorted(outside)}"


@pytest.mark.parametrize("module", PURE)
def test_pure_module_calls_no_io_builtin(module: str) -> None:
    tree = ast.parse((BENCH / f"{module}.py").read_text())
    called = {
        node.func.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }
    assert not called & FORBIDDEN_CALLS, (
        f"bench/{module}.py calls {sorted(called & FORBIDDEN_CALLS)}"
    )


def test_the_purity_check_sees_an_impure_import() -> None:
    tree = ast.parse(
        "import time\nfrom bench.processes import cpu_ticks\nfrom bench import report\n"
    )
    assert _imports(tree) == {"time", "bench.processes", "bench"}
