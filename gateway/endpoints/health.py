"""What operators and orchestrators ask of a replica: liveness, readiness and metrics (the
last only where `check_metrics_access` lets it be seen)."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response

from gateway.admission.plan import team_budget
from gateway.observability.metrics import TeamBudget
from gateway.runtime.gateway import Gateway
from gateway.runtime.redis_connection import is_ready
from gateway.server.caller import caller_token
from gateway.server.entry import gateway_of
from gateway.server.metrics_port import local_port
from gateway.server.operator_keys import check_operator_key
from gateway.wire import errors


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
    await check_metrics_access(gateway, request)
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


async def check_metrics_access(gateway: Gateway, request: Request) -> None:
    """Metrics name every team with its budget and spend: served on the metrics port, or on
    the API port to the metrics key; with neither configured, not at all."""
    server = gateway.config.server
    if server.metrics_port:
        if local_port(request.scope) != server.metrics_port:
            raise errors.metrics_not_served(request.method, request.url.path)
        return
    if not server.metrics_key:
        raise errors.metrics_not_served(request.method, request.url.path)
    token = caller_token(request.scope["headers"], server.max_header_bytes)
    if not token:
        raise errors.missing_operator_key("metrics", "GATEWAY_METRICS_KEY")
    check = await check_operator_key(gateway, request.scope, token, server.metrics_key, "metrics")
    if check.retry_after_s is not None:
        raise errors.key_attempts_throttled(check.retry_after_s)
    if not check.ok:
        raise errors.invalid_operator_key("metrics")
