"""Calling the upstream API: the gateway's network I/O towards OpenAI.

`contract` holds the transport contract (`Upstream`, `UpstreamResponse`, `PreparedRequest`), the
factory that picks a client from `upstream.client`, and the in-process ASGI transport; there is
one module per client (`http1_client`, the default; `aiohttp_client`; `httpx_client`).
`dispatch` sends a model's calls to its deployments and retries failed tries; `resilience` is
the pure rules it applies (backoff, retry-after, circuit breakers, least calls in flight).
Imports config, wire and observability; never server or endpoints, so a client knows nothing of
the request that caused its call.
"""
