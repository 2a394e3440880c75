"""Build hook: the tracer's and the router's pure modules compiled to C by mypyc, which runs
their typed Python faster (tracing every request must cost little against the request itself;
a routing decision should take a few tens of microseconds).

The digests of the sources compiled are written to each package's `_native_build.py`
(generated, not in git): at run time `gateway.compiled` loads the sources instead of compiled
modules that no longer match them (edited since the build), or when O1GW_PURE_PYTHON=1 is set.

The build stays possible without a C compiler: each compiled module is optional, and without
them (or with O1GW_PURE_PYTHON=1 set when building) the same modules run as Python.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from setuptools import Extension, setup

# Per package, compiled together (they call each other directly); the package's `NATIVE`
# names the same modules.
NATIVE = [
    "gateway/observability/trace_context.py",
    "gateway/observability/otlp_json.py",
    "gateway/observability/trace_attributes.py",
    "gateway/observability/span_queue.py",
    "gateway/observability/tracing.py",
]
ROUTING_NATIVE = [
    "gateway/routing/vocabulary.py",
    "gateway/routing/signals.py",
    "gateway/routing/features.py",
    "gateway/routing/linear.py",
]


def record_sources(paths: list[str]) -> None:
    digests = {
        Path(path).stem: hashlib.sha256(Path(path).read_bytes()).hexdigest() for path in paths
    }
    lines = "".join(f"    {name!r}: {value!r},\n" for name, value in digests.items())
    (Path(paths[0]).parent / "_native_build.py").write_text(
        '"""Written by setup.py: the digests of the sources mypyc compiled."""\n\n'
        f"SOURCES: dict[str, str] = {{\n{lines}}}\n"
    )


def native_extensions() -> list[Extension]:
    if os.environ.get("O1GW_PURE_PYTHON") == "1":
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:  # mypyc comes with mypy, a build requirement; a build without it is pure
        return []
    groups = [
        (NATIVE, "gateway.observability._native"),
        (ROUTING_NATIVE, "gateway.routing._native"),
    ]
    for paths, _ in groups:
        record_sources(paths)
    extensions: list[Extension] = mypycify(
        [path for paths, _ in groups for path in paths], opt_level="3", separate=groups
    )
    for extension in extensions:
        extension.optional = True  # no compiler: the pure modules run instead
    return extensions


setup(ext_modules=native_extensions())
