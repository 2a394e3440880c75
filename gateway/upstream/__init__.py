"""Calling the upstream API: the gateway's network I/O towards OpenAI.

`contract` is the transport contract (`Upstream`, `Preparing`, `UpstreamResponse`,
`PreparedRequest`); `auto` picks a client by `upstream.client`; one module per client
(`http1_client`, the default; `aiohttp_client`; `httpx_client`; `asgi_client`, in-process for
`--simulate`). `dispatch` sends a model's calls to its deployments and retries failed tries;
`resilience` is the pure rules it applies (backoff, retry-after, circuit breakers, least calls in
flight); `decoding` decodes bodies a front end compressed; `egress` picks the proxy and the trust
store. Imports config, wire, observability and the event loop helper; never server or
endpoints, so a client knows nothing of the request that caused its call.
"""
