"""App wiring in one place: routes, error handlers and the lifespan that builds the state."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import orjson
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.admin.api import admin_routes
from gateway.admission.plan import team_budget
from gateway.config import Config
from gateway.endpoints import chat
from gateway.observability.metrics import TeamBudget
from gateway.routing import aliases
from gateway.runtime.gateway import open_gateway
from gateway.runtime.redis_connection import is_ready
from gateway.server.fast_path import ErrorHandler, Shortcut
from gateway.server.intake import gateway_of
from gateway.server.recording import SCOPE_KEY, Observe
from gateway.wire import errors
from gateway.wire.errors import GatewayError
from gateway.wire.headers import new_request_id

log = logging.getLogger("gateway")

ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def create_app(config: Config) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        gateway = open_gateway(config)
        app.state.gateway = gateway
        try:
            await gateway.start()
            yield
        finally:
            await gateway.close()

    routes = [
        Route("/v1/chat/completions", chat.chat_completions, methods=["POST"]),
        Route("/v1/models", chat.list_models, methods=["GET"]),
        Route("/v1/route", aliases.route_endpoint, methods=["POST"]),
        Route("/v1/models/{model:path}", chat.get_model, methods=["GET"]),
        *admin_routes(),
        Route("/v1/{path:path}", chat.passthrough, methods=ALL_METHODS),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    handlers: dict[type[Exception], ErrorHandler] = {
        GatewayError: on_gateway_error,
        HTTPException: on_http_exception,
        Exception: on_unexpected_error,
    }

    def handler_for(exc: Exception) -> ErrorHandler:
        # Starlette's own rule: the nearest class in the exception's MRO.
        return next(handlers[c] for c in type(exc).__mro__ if c in handlers)

    fast_chat = ("/v1/chat/completions", "POST", chat.chat_completions, handler_for)
    return Starlette(
        routes=routes,
        # Outermost first; Starlette adds its error and exception middleware around/inside these.
        middleware=[Middleware(Observe), Middleware(Shortcut, *fast_chat)],
        lifespan=lifespan,
        exception_handlers=handlers,
    )


async def healthz(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


async def readyz(request: Request) -> Response:
    gateway = gateway_of(request)
    checks = {"redis": await is_ready(gateway.redis), "upstream": gateway.upstream.ready()}
    # Without Redis a replica still serves when rate limits fail open; taking every replica
    # out of the load balancer because the shared Redis is down would turn a degraded gateway
    # into a full outage. `checks` still says so, and gateway_redis_up alerts.
    admission = gateway.config.admission
    redis_needed = admission.enabled and admission.rate_limits_on_redis_error == "closed"
    ok = checks["upstream"] and (checks["redis"] or not redis_needed)
    body = orjson.dumps({"status": "ok" if ok else "unavailable", "checks": checks})
    return Response(body, status_code=200 if ok else 503, media_type="application/json")


async def metrics(request: Request) -> Response:
    gateway = gateway_of(request)
    redis_up = await is_ready(gateway.redis)
    budgets: list[TeamBudget] = []
    if redis_up and gateway.config.admission.enabled:
        try:
            teams = await gateway.teams.list_teams()
            spent = await gateway.admission.month_spend([t.name for t in teams], datetime.now(UTC))
            budgets = [
                TeamBudget(team.name, team_budget(gateway.config, team), amount)
                for team, amount in zip(teams, spent, strict=True)
            ]
        except (RedisError, OSError):
            redis_up = False
    body, content_type = gateway.metrics.render(
        request.headers.get("accept", ""), redis_up, budgets
    )
    return Response(body, headers={"content-type": content_type})


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


async def on_unexpected_error(request: Request, exc: Exception) -> Response:
    # Never a stack trace to the caller; the log keeps it for operators.
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return await on_gateway_error(request, errors.internal_error())
