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
(`setup.py`); `gateway.compiled` loads them from their sources instead when they changed since
the build, or with O1GW_PURE_PYTHON=1 in the environment.
"""

from __future__ import annotations

from gateway.compiled import load_sources

# In the order they import each other.
NATIVE = ("trace_context", "otlp_json", "trace_attributes", "span_queue", "tracing")
load_sources(__name__, NATIVE, "tracing")
