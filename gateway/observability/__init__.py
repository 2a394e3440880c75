"""What operators watch: Prometheus metrics, whose names and labels are a contract with
`deploy/` (dashboards and alert rules).

`metrics` keeps one registry per app; values read from Redis (budgets, Redis health) are handed
in by whoever serves the scrape, so nothing here talks to the network. With several workers
prometheus-client keeps values in per-process files. Imports prometheus-client and, for types
only, routing's `Decision`. Today it also imports `Usage` from `gateway.admission.pricing`, and
the access log's writer still lives in `gateway.server.recording`.
"""
