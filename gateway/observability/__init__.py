"""What operators watch: Prometheus metrics, whose names and labels are a contract with
`deploy/` (dashboards and alert rules).

`metrics` keeps one registry per app; values read from Redis (budgets, Redis health) are handed
in by whoever serves the scrape, so nothing here talks to the network. With several workers
prometheus-client keeps values in per-process files. `record` is the per-request record (pure:
it observes a request, never steers it) and the access-log line made from it; `access_log`
writes those lines to stderr in batches; `audit` writes one line per admin action, at once,
to a file or stderr. `tracing` records OpenTelemetry spans (no SDK: `spans` holds one,
`otlp_json` encodes it, `span_export` sends them in batches with an HTTP client handed in);
`trace_settings` decides whether it traces, `trace_context` reads and writes W3C trace context
and `trace_attributes` maps a request to its spans' attributes (those three, `spans` and
`otlp_json` are pure). Imports prometheus-client, wire, config and, for types, routing's
`Decision`.
"""
