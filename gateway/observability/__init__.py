"""What operators watch: Prometheus metrics, whose names and labels are a contract with
`deploy/` (dashboards and alert rules).

`metrics` keeps one registry per app; values read from Redis (budgets, Redis health) are handed
in by whoever serves the scrape, so nothing here talks to the network. With several workers
prometheus-client keeps values in per-process files. `record` is the per-request record (pure:
it observes a request, never steers it) and the access-log line made from it; `access_log`
writes those lines to stderr in batches; `audit` writes one line per admin action, at once,
to a file or stderr. `tracing` records OpenTelemetry spans (no SDK: a request's spans are a
few slots, encoded by `otlp_json`'s templates; `span_queue` keeps them until `span_export`
sends them in batches with an HTTP client handed in); `trace_settings` decides whether it traces,
`trace_context` reads and writes W3C trace context and `trace_attributes` maps a request to its
spans' attributes (those three, `span_queue` and `otlp_json` are pure). Imports prometheus-client, wire, config and, for types, routing's
`Decision`.

The tracer's pure modules (`NATIVE`) are compiled to C by mypyc when the package is built
(`setup.py`), which records their sources' digests beside them (`_native_build`). Compiled
modules whose sources changed since (edited in a checkout) would run the old code: then, or with
O1GW_PURE_PYTHON=1 in the environment, all of them are loaded from their sources here, before
anything imports them.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import logging
import os
import sys
from collections.abc import Mapping
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

# In the order they import each other; compiled together, they call each other directly, so
# one changed module means loading them all from source.
NATIVE = ("trace_context", "otlp_json", "trace_attributes", "span_queue", "tracing")


def digest(source: Path) -> str:
    return hashlib.sha256(source.read_bytes()).hexdigest()


def changed_since_build(folder: Path, built: Mapping[str, str]) -> list[str] | None:
    """The modules of `NATIVE` in `folder` whose source is not what was compiled (`built`: the
    digests recorded by the build); None when none was compiled."""
    compiled = [
        name for name in NATIVE
        if any((folder / f"{name}{suffix}").exists() for suffix in EXTENSION_SUFFIXES)
    ]  # fmt: skip
    if not compiled:
        return None
    return [
        name for name in NATIVE
        if name not in compiled or built.get(name) != digest(folder / f"{name}.py")
    ]  # fmt: skip


def _load_sources(folder: Path) -> None:
    try:
        built: dict[str, str] = importlib.import_module(f"{__name__}._native_build").SOURCES
    except (ImportError, AttributeError):
        built = {}
    changed = changed_since_build(folder, built)
    if changed is None or (not changed and os.environ.get("O1GW_PURE_PYTHON") != "1"):
        return
    if changed:
        logging.getLogger("gateway").warning(
            "tracing runs as Python: %s changed since its compiled build (`pip install -e .` "
            "builds it again)",
            ", ".join(f"{name}.py" for name in changed),
        )
    for name in NATIVE:
        full = f"{__name__}.{name}"
        spec = importlib.util.spec_from_file_location(full, folder / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[full] = module
        spec.loader.exec_module(module)
        globals()[name] = module


_load_sources(Path(__file__).parent)
