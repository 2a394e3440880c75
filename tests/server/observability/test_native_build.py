"""The tracer runs compiled when the build compiled it, and as Python with O1GW_PURE_PYTHON=1:
both run the tracer's tests (the rest of the suite runs whichever this checkout has)."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.machinery import EXTENSION_SUFFIXES

import pytest

from gateway.observability import NATIVE
from tests.conftest import ROOT

FOLDER = ROOT / "gateway" / "observability"
WHERE = (
    "import importlib, gateway.observability as o; print(' '.join(importlib.import_module("
    "f'gateway.observability.{name}').__file__.rsplit('.', 1)[1] for name in o.NATIVE))"
)


def run(code: list[str], pure: bool) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "O1GW_PURE_PYTHON": "1" if pure else ""}
    return subprocess.run(
        [sys.executable, *code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def built() -> bool:
    return all(
        any((FOLDER / f"{name}{suffix}").exists() for suffix in EXTENSION_SUFFIXES)
        for name in NATIVE
    )


def test_o1gw_pure_python_runs_the_sources_and_they_pass_the_tracers_tests() -> None:
    assert run(["-c", WHERE], pure=True).stdout.split() == ["py"] * len(NATIVE)
    tests = run(["-m", "pytest", "-q", "tests/unit/observability"], pure=True)
    assert tests.returncode == 0, tests.stdout[-3000:]


@pytest.mark.skipif(not built(), reason="this checkout's tracer is not compiled (no C compiler)")
def test_a_compiled_build_runs_compiled() -> None:
    assert run(["-c", WHERE], pure=False).stdout.split() == ["so"] * len(NATIVE)
