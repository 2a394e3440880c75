"""Packages whose pure modules mypyc compiles to C when the package is built (`setup.py`), and
whether those compiled modules may run.

The build records the digests of the sources it compiled beside them (`_native_build`).
Compiled modules whose sources changed since (edited in a checkout) would run the old code:
then, or with O1GW_PURE_PYTHON=1 in the environment, all of a package's compiled modules are
loaded from their sources, before anything imports them. Reads the sources and the record.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path


def digest(source: Path) -> str:
    return hashlib.sha256(source.read_bytes()).hexdigest()


def changed_since_build(
    folder: Path, built: Mapping[str, str], native: Sequence[str]
) -> list[str] | None:
    """The modules of `native` in `folder` whose source is not what was compiled (`built`: the
    digests recorded by the build); None when none was compiled."""
    compiled = [
        name for name in native
        if any((folder / f"{name}{suffix}").exists() for suffix in EXTENSION_SUFFIXES)
    ]  # fmt: skip
    if not compiled:
        return None
    return [
        name for name in native
        if name not in compiled or built.get(name) != digest(folder / f"{name}.py")
    ]  # fmt: skip


def load_sources(package: str, native: Sequence[str], what: str) -> None:
    """Load the modules of `package` named in `native` (in the order they import each other)
    from their sources when they may not run compiled; `what` names them in the warning.
    Compiled together, they call each other directly: one changed module means loading them
    all from source."""
    folder = Path(sys.modules[package].__file__ or "").parent
    try:
        built: dict[str, str] = importlib.import_module(f"{package}._native_build").SOURCES
    except (ImportError, AttributeError):
        built = {}
    changed = changed_since_build(folder, built, native)
    if changed is None or (not changed and os.environ.get("O1GW_PURE_PYTHON") != "1"):
        return
    if changed:
        logging.getLogger("gateway").warning(
            "%s runs as Python: %s changed since its compiled build (`pip install -e .` "
            "builds it again)",
            what,
            ", ".join(f"{name}.py" for name in changed),
        )
    for name in native:
        full = f"{package}.{name}"
        spec = importlib.util.spec_from_file_location(full, folder / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[full] = module
        spec.loader.exec_module(module)
        setattr(sys.modules[package], name, module)
