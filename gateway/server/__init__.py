"""The ASGI edge: where HTTP meets the gateway, and the only package that subclasses or steps
around Starlette's and uvicorn's internals.

`protocol` is uvicorn's httptools protocol with a tick's writes joined and the edge's limits
kept (head size, head and body timeouts, open connections; OpenAI-shaped errors); `entry` is how a
request enters (its record made and finished, `POST /v1/chat/completions` taken past Starlette's
router); `caller` identifies who calls, `operator_keys` checks the admin and metrics keys (wrong
ones slowed), `metrics_port` keeps the metrics listener to /metrics, `body` reads and parses the
body; `stream_response` streams an answer from the request's own task and notices a client that
leaves. Imports config, runtime, teams,
observability and wire. Other packages use only Starlette's public request, response and routing
classes, and cli runs uvicorn with `protocol`; pyproject pins both libraries to the tested
versions because of this package.
"""
