"""Build hook: the tracer's pure modules compiled to C by mypyc, which runs their typed Python
about a quarter faster (tracing every request must cost little against the request itself).

The digests of the sources compiled are written to `gateway/observability/_native_build.py`
(generated, not in git): at run time `gateway.observability` loads the sources instead of
compiled modules that no longer match them (edited since the build), or when O1GW_PURE_PYTHON=1
is set.

The build stays possible without a C compiler: each compiled module is optional, and without
them (or with O1GW_PURE_PYTHON=1 set when building) the same modules run as Python.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from setuptools import Extension, setup

# Compiled together (they call each other directly); `gateway.observability.NATIVE` names the
# same modules.
NATIVE = [
    "gateway/observability/trace_context.py",
    "gateway/observability/otlp_json.py",
    "gateway/observability/trace_attributes.py",
    "gateway/observability/span_queue.py",
    "gateway/observability/tracing.py",
]


RECORD = Path("gateway/observability/_native_build.py")


def record_sources() -> None:
    digests = {
        Path(path).stem: hashlib.sha256(Path(path).read_bytes()).hexdigest() for path in NATIVE
    }
    lines = "".join(f"    {name!r}: {value!r},\n" for name, value in digests.items())
    RECORD.write_text(
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
    record_sources()
    extensions: list[Extension] = mypycify(
        NATIVE, opt_level="3", group_name="gateway.observability._native"
    )
    for extension in extensions:
        extension.optional = True  # no compiler: the pure modules run instead
    return extensions


setup(ext_modules=native_extensions())
