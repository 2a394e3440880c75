"""Which of the tracer's compiled modules may run: those whose sources are still what the build
compiled (`gateway.compiled.changed_since_build`); and the router's, compiled the same way."""

from __future__ import annotations

import ast
import importlib
import sys
from collections.abc import Iterator
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import pytest

from gateway import routing
from gateway.compiled import changed_since_build, digest, load_sources
from gateway.observability import NATIVE
from tests.conftest import ROOT


def sources(folder: Path) -> dict[str, str]:
    """Each module's source written, and its digest as a build records it."""
    for name in NATIVE:
        (folder / f"{name}.py").write_text(f"NAME = {name!r}\n")
    return {name: digest(folder / f"{name}.py") for name in NATIVE}


def compile_all(folder: Path) -> None:
    for name in NATIVE:
        (folder / f"{name}{EXTENSION_SUFFIXES[0]}").write_bytes(b"")


def test_nothing_compiled_is_nothing_to_check(tmp_path: Path) -> None:
    assert changed_since_build(tmp_path, sources(tmp_path), NATIVE) is None


def test_compiled_modules_of_their_sources_run(tmp_path: Path) -> None:
    built = sources(tmp_path)
    compile_all(tmp_path)
    assert changed_since_build(tmp_path, built, NATIVE) == []


def test_a_source_edited_since_the_build_is_named(tmp_path: Path) -> None:
    built = sources(tmp_path)
    compile_all(tmp_path)
    (tmp_path / "otlp_json.py").write_text("NAME = 'edited'\n")
    assert changed_since_build(tmp_path, built, NATIVE) == ["otlp_json"]


def test_a_module_left_uncompiled_or_unrecorded_is_named(tmp_path: Path) -> None:
    built = sources(tmp_path)
    compile_all(tmp_path)
    (tmp_path / f"tracing{EXTENSION_SUFFIXES[0]}").unlink()
    del built["trace_context"]
    assert changed_since_build(tmp_path, built, NATIVE) == ["trace_context", "tracing"]


@pytest.mark.parametrize(
    ("listing", "native"), [("NATIVE", NATIVE), ("ROUTING_NATIVE", routing.NATIVE)]
)
def test_the_build_compiles_the_modules_whose_sources_are_checked(
    listing: str, native: tuple[str, ...]
) -> None:
    """`setup.py` names the modules it compiles apart from the packages (it runs before they
    can be imported): a module compiled but not checked here could run stale."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    listed = next(
        node.value for node in tree.body
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == listing
    )  # fmt: skip
    assert [Path(path).stem for path in ast.literal_eval(listed)] == list(native)


@pytest.fixture
def built_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A package `built_pkg` with one module compiled (an empty stand-in) from its source."""
    folder = tmp_path / "built_pkg"
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    (folder / "first.py").write_text("NAME = 'source'\n")
    (folder / f"first{EXTENSION_SUFFIXES[0]}").write_bytes(b"")
    (folder / "_native_build.py").write_text(
        f"SOURCES = {{'first': {digest(folder / 'first.py')!r}}}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    # Whatever the run's environment says (the tracer's tests also run with it set).
    monkeypatch.delenv("O1GW_PURE_PYTHON", raising=False)
    importlib.import_module("built_pkg")
    yield folder
    for name in ("built_pkg", "built_pkg.first", "built_pkg._native_build"):
        sys.modules.pop(name, None)


def test_compiled_modules_of_their_sources_are_left_to_import(built_package: Path) -> None:
    load_sources("built_pkg", ("first",), "test")
    assert "built_pkg.first" not in sys.modules


def test_a_package_edited_since_the_build_runs_its_sources(
    built_package: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (built_package / "first.py").write_text("NAME = 'edited'\n")
    load_sources("built_pkg", ("first",), "test")
    assert sys.modules["built_pkg.first"].NAME == "edited"
    assert "test runs as Python: first.py changed" in caplog.text


def test_pure_python_asked_for_runs_the_sources(
    built_package: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("O1GW_PURE_PYTHON", "1")
    load_sources("built_pkg", ("first",), "test")
    assert sys.modules["built_pkg.first"].NAME == "source"
