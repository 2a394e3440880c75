"""The per-request record at the ASGI edge: made when a `/v1/*` request arrives, kept in
its scope, and finished once the response has gone (request metrics, the access-log line).

`Observe` is a plain ASGI middleware: it sees the status the client really got (including
errors the exception handlers built) and the moment the last byte left, streams included.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.observability.record import Exchange, access_line, endpoint_of
from gateway.runtime.gateway import Gateway

SCOPE_KEY = "o1gw.exchange"


def exchange_of(scope: Scope) -> Exchange:
    """The request's record; a detached one when the middleware is not installed (unit tests)."""
    found = scope.get(SCOPE_KEY)
    if found is None:
        found = scope[SCOPE_KEY] = Exchange(started=time.perf_counter())
    exchange: Exchange = found
    return exchange


class Observe:
    """Create the record for `/v1/*` requests and finish it when the response is done."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        ex = Exchange(
            started=time.perf_counter(), method=scope["method"], path=path,
            endpoint=endpoint_of(path),
        )  # fmt: skip
        scope[SCOPE_KEY] = ex

        async def observed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                ex.status = message["status"]
                ex.headers_at = time.perf_counter()
                for name, value in message.get("headers", ()):
                    if name == b"x-request-id":
                        ex.request_id = value.decode("latin-1")
            await send(message)

        # The app state exists once the lifespan ran, which is before any request.
        gw: Gateway = scope["app"].state.gateway
        gw.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, observed_send)
        except BaseException:
            if not ex.status:
                ex.status = 500
            raise
        finally:
            gw.metrics.in_flight.dec()
            # After a call charged in this request: the access log reports what it cost.
            gw.after_response(finish, gw, ex, time.perf_counter())


def finish(gw: Gateway, ex: Exchange, finished: float) -> None:
    """Count the request and write its access-log line."""
    status = ex.status or 499  # nothing was sent: the client left first
    labels: tuple[str, ...] = (
        ex.team, ex.endpoint, ex.model, ex.routed_model, f"{status // 100}xx",
    )  # fmt: skip
    if gw.metrics.key_id_labels:
        labels += (ex.key_id,)
    overhead = None
    if ex.upstream_s is not None and ex.headers_at is not None:
        overhead = (ex.headers_at - ex.started) - ex.upstream_s
    gw.metrics.count_request(labels, ex.endpoint, finished - ex.started, ex.upstream_s, overhead)
    if ex.first_token_at is not None:
        gw.metrics.ttft.labels(ex.routed_model).observe(ex.first_token_at - ex.started)
    if gw.access_log is not None:
        gw.access_log.write(access_line(ex, finished))
