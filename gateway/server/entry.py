"""How a `/v1/*` request enters the app: its record made and kept in the scope, chat completions
taken straight to their handler, everything else down Starlette's stack, and the record
finished once the response has gone (request metrics, the access-log line).

`Entry` is a plain ASGI middleware, outermost but for Starlette's own error middleware: it sees
the status the client really got (including errors the exception handlers built) and the moment
the last byte left, streams included.

Nearly every request a gateway serves is `POST /v1/chat/completions` or `POST /v1/responses`.
Starlette's exception middleware, router, route and request/response wrappers take a measurable
share of the CPU of a proxied call, for a match the router would make anyway, so `Entry` answers
those routes itself, with the same handlers and the same error handlers as the routed stack.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, cast

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.observability.record import Exchange
from gateway.runtime.gateway import Gateway
from gateway.wire import errors
from gateway.wire.headers import new_request_id, unread_coding
from gateway.wire.paths import is_canonical

Handler = Callable[[Request], Awaitable[Response]]
ErrorHandler = Callable[[Request, Exception], Awaitable[Response]]
SCOPE_KEY = "o1gw.exchange"
# Resource names that may label metrics; anything else is "other" so a caller cannot mint series.
KNOWN_ENDPOINTS = frozenset(
    {
        "assistants", "audio", "batches", "chat", "completions", "embeddings", "files",
        "fine_tuning", "images", "models", "moderations", "realtime", "responses", "route",
        "threads", "uploads", "vector_stores",
    }
)  # fmt: skip


def endpoint_of(path: str) -> str:
    """The resource a `/v1/...` path names (chat for /v1/chat/completions)."""
    resource = path[4:].split("/", 1)[0] if path.startswith("/v1/") else ""
    return resource if resource in KNOWN_ENDPOINTS else "other"


def gateway_of(request: Request) -> Gateway:
    """The running gateway, built in the lifespan, which runs before any request."""
    gw: Gateway = request.app.state.gateway
    return gw


def exchange_of(scope: Scope) -> Exchange:
    """The request's record; a detached one when the middleware is not installed (unit tests)."""
    found = scope.get(SCOPE_KEY)
    if found is None:
        found = scope[SCOPE_KEY] = Exchange(started=time.perf_counter())
    exchange: Exchange = found
    return exchange


class Entry:
    def __init__(
        self,
        app: ASGIApp,
        posts: Mapping[str, Handler],
        on_error: Callable[[Exception], ErrorHandler],
    ) -> None:
        self.app = app
        self.posts = posts  # path -> the handler its POST route has
        self.on_error = on_error  # the registered handler for an exception (by its class)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "websocket":
            await refuse_websocket(scope, receive, send)
            return
        if scope["type"] != "http" or not path.startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        ex = Exchange(
            started=time.perf_counter(), method=scope["method"], path=path,
            endpoint=endpoint_of(path),
        )  # fmt: skip
        scope[SCOPE_KEY] = ex
        # The app state exists once the lifespan ran, which is before any request.
        gw: Gateway = scope["app"].state.gateway
        if gw.tracing is not None:
            # An ASGI server's scope is a dict, which the compiled tracer reads fastest as one.
            ex.trace = gw.tracing.begin(cast(dict[str, Any], scope), ex.endpoint)

        async def observed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                ex.status = message["status"]
                ex.headers_at = time.perf_counter()
                for name, value in message.get("headers", ()):
                    if name == b"x-request-id":
                        ex.request_id = value.decode("latin-1")
            await send(message)

        gw.metrics.in_flight.inc()
        try:
            raw = scope.get("raw_path")
            if raw is not None and not is_canonical(raw):
                # Refused before anything reads it: a second spelling of a path could be
                # checked as one endpoint and reach upstream as another.
                await self.answer(refuse_spelling, scope, receive, observed_send)
                return
            if unread_coding(scope["headers"]) is not None:
                await self.answer(refuse_coding, scope, receive, observed_send)
                return
            handler = self.posts.get(path) if scope["method"] == "POST" else None
            if handler is not None:
                await self.answer(handler, scope, receive, observed_send)
            else:
                await self.app(scope, receive, observed_send)
        except BaseException:
            if not ex.status:
                ex.status = 500
            raise
        finally:
            gw.metrics.in_flight.dec()
            if ex.counted:
                gw.shares.leave(ex.counted)
            # After a call charged in this request: the access log reports what it cost.
            gw.after_response(finish, gw, ex, time.perf_counter())
            if ex.trace is not None:
                gw.trace_ended(ex.trace, ex, time.time_ns())

    async def answer(self, handler: Handler, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        try:
            response = await handler(request)
        except Exception as exc:
            response = await self.on_error(exc)(request, exc)
        await response(scope, receive, send)


async def refuse_spelling(request: Request) -> Response:
    raw = request.scope["raw_path"].decode("latin-1")
    raise errors.invalid_url(request.method, raw)


async def refuse_websocket(scope: Scope, receive: Receive, send: Send) -> None:
    """The gateway serves no WebSocket (the Realtime API's included: its cost cannot be seen),
    and has no route to hand one to: an upgrade is answered the error a request for the path
    gets, in OpenAI's shape, where the server lets an app answer one in HTTP."""
    await receive()  # websocket.connect
    path = scope.get("path", "")
    error = (
        errors.realtime_not_governed()
        if path == "/v1/realtime" or path.startswith("/v1/realtime/")
        else errors.invalid_url("GET", path)
    )
    if "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": 1008})
        return
    headers = [(b"content-type", b"application/json"), (b"x-request-id", new_request_id().encode())]
    await send(
        {"type": "websocket.http.response.start", "status": error.status, "headers": headers}
    )
    await send({"type": "websocket.http.response.body", "body": error.body()})


async def refuse_coding(request: Request) -> Response:
    found = unread_coding(request.scope["headers"])
    assert found is not None
    header, coding = found
    if header == "transfer-encoding":
        raise errors.unsupported_transfer_encoding(coding)
    raise errors.unsupported_content_encoding(coding)


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
        gw.access_log.write_exchange(ex, finished)
