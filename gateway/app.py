"""App wiring in one place: routes, error handlers and the lifespan that builds the `Gateway`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.admin.api import admin_routes
from gateway.config import Config
from gateway.endpoints import health, table
from gateway.endpoints.chat import chat_completions
from gateway.endpoints.responses import create_response
from gateway.runtime.build import open_gateway
from gateway.server.entry import SCOPE_KEY, Entry, ErrorHandler
from gateway.server.metrics_port import MetricsPortOnly
from gateway.server.protocol import DROPPED_CONNECTIONS
from gateway.wire import errors
from gateway.wire.errors import GatewayError
from gateway.wire.headers import new_request_id

log = logging.getLogger("gateway")


def create_app(config: Config) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        gateway = open_gateway(config)
        app.state.gateway = gateway
        try:
            await gateway.start()
            # The lifespan state is what the HTTP protocol sees of the app.
            yield {DROPPED_CONNECTIONS: gateway.metrics.dropped_connections}
        finally:
            await gateway.close()

    # The routes `Entry` answers itself; the router has them too, for `405`s and listings.
    posts = {"/v1/chat/completions": chat_completions, "/v1/responses": create_response}
    routes = [
        *admin_routes(),
        Route("/healthz", health.healthz, methods=["GET"]),
        Route("/readyz", health.readyz, methods=["GET"]),
        Route("/metrics", health.metrics, methods=["GET"]),
        *table.routes(config.passthrough.allow),
    ]
    handlers: dict[type[Exception], ErrorHandler] = {
        GatewayError: on_gateway_error,
        HTTPException: on_http_exception,
        RedisError: on_store_error,
        Exception: on_unexpected_error,
    }

    def handler_for(exc: Exception) -> ErrorHandler:
        # Starlette's own rule: the nearest class in the exception's MRO.
        return next(handlers[c] for c in type(exc).__mro__ if c in handlers)

    # Outermost first; Starlette adds its error and exception middleware around/inside these.
    middleware = [Middleware(Entry, posts, handler_for)]
    if config.server.metrics_port:
        middleware.insert(0, Middleware(MetricsPortOnly, config.server.metrics_port))
    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers=handlers,
    )
    # A path is served in one spelling: a slash added or dropped is a 404, not a redirect to a
    # URL built from the request's own Host header.
    app.router.redirect_slashes = False
    return app


async def on_gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    exchange = request.scope.get(SCOPE_KEY)
    if exchange is not None:
        exchange.error_code = exc.code or exc.type
    # The gateway's own errors carry a request id too, so support threads can quote one.
    headers = {"x-request-id": new_request_id(), **exc.headers}
    return Response(
        exc.body(), status_code=exc.status, headers=headers, media_type="application/json"
    )


async def on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        error = errors.invalid_url(request.method, request.url.path)
    elif exc.status_code == 405:
        error = errors.method_not_allowed(request.method, request.url.path)
    else:
        error = errors.http_error(exc.status_code, str(exc.detail))
    return await on_gateway_error(request, error)


async def on_store_error(request: Request, exc: Exception) -> Response:
    # Redis did not answer what a request needed to know (whose an object is, a stored
    # response): not a bug, and a retry may find it back. What must outlive Redis's absence
    # (charges, answers upstream billed) is handled where it happens.
    log.warning("Redis failed on %s %s: %r", request.method, request.url.path, exc)
    return await on_gateway_error(request, errors.store_unavailable(type(exc).__name__))


async def on_unexpected_error(request: Request, exc: Exception) -> Response:
    # Never a stack trace to the caller; the log keeps it for operators.
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return await on_gateway_error(request, errors.internal_error())
