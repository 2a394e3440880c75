"""Who may use the admin API, and what it did there.

The admin key is checked before routing, so nothing under /admin shows without it: not even
which paths exist (a wrong method would otherwise say 405). Wrong keys are slowed per client
address (`gateway.server.operator_keys`). Every action that changes something (the routes named
in `gateway.admin.api`, e.g. `team.create`, `key.revoke`) and every refused key is written to
the audit log and counted in `gateway_admin_actions_total{action,outcome}`; reads are not.
Handlers note what they acted on in the request's record (`exchange_of`): the team and key;
and, with `note`, anything more the action's line must say (a team made under a deleted
team's name says what it inherited).
"""

from __future__ import annotations

import time
from typing import Any

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.routing import Match, Router
from starlette.types import Message, Receive, Scope, Send

from gateway.observability.audit import audit_line, key_fingerprint
from gateway.runtime.gateway import Gateway
from gateway.server.caller import caller_token
from gateway.server.entry import exchange_of, gateway_of
from gateway.server.operator_keys import KeyCheck, check_operator_key, client_address
from gateway.wire import errors
from gateway.wire.errors import GatewayError

READS = frozenset({"GET", "HEAD"})
# Where `note` keeps an action's extra audit fields, in the request's scope.
AUDIT_DETAILS = "o1gw.audit_details"


def note(scope: Scope, **details: Any) -> None:
    """Fields the action's audit line carries besides the usual ones."""
    scope.setdefault(AUDIT_DETAILS, {}).update(details)


class AdminGuard:
    def __init__(self, app: Router) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope)
        gw = gateway_of(request)
        server = gw.config.server
        if not server.admin_key:
            raise errors.invalid_url(request.method, request.url.path)
        token = caller_token(scope["headers"], server.max_header_bytes)
        if not token:
            raise errors.missing_operator_key("admin", "GATEWAY_ADMIN_KEY")
        check = await check_operator_key(gw, scope, token, server.admin_key, "admin")
        if not check.ok:
            raise refused(gw, scope, check)
        action, params = self.action_of(scope)
        if not action:
            await self.run(scope, receive, send)
            return
        exchange = exchange_of(scope)
        exchange.team = params.get("name", "")
        exchange.key_id = params.get("key_id", "")
        written = False

        def audit(status: int) -> None:
            # Written before the answer leaves: a client that reads the log right after its
            # answer finds the line there.
            nonlocal written
            written = True
            target = (
                f"{params['kind']}/{params['object_id']}"
                if "kind" in params
                else exchange.key_id or exchange.team
            )
            record(
                gw, scope, action, target, "success" if status < 400 else "error",
                key_fingerprint(server.admin_key), team=exchange.team, key_id=exchange.key_id,
                status=status, error=exchange.error_code, **scope.get(AUDIT_DETAILS, {}),
            )  # fmt: skip

        async def observed(message: Message) -> None:
            if message["type"] == "http.response.start" and not written:
                audit(message["status"])
            await send(message)

        try:
            await self.run(scope, receive, observed)
        except GatewayError as exc:
            if not written:
                exchange.error_code = exc.code or exc.type
                audit(exc.status)
            raise
        except BaseException:
            if not written:
                audit(500)
            raise

    async def run(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except (RedisError, OSError) as exc:
            raise errors.store_unavailable(type(exc).__name__) from exc

    def action_of(self, scope: Scope) -> tuple[str, dict[str, Any]]:
        """The action a request that changes something performs (its route's name) and the
        route's path parameters; ("", {}) for reads and for paths no route has."""
        if scope["method"] in READS:
            return "", {}
        for route in self.app.routes:
            match, child = route.matches(scope)
            if match is Match.FULL:
                return getattr(route, "name", "") or "", dict(child.get("path_params", {}))
        return "", {}


def refused(gw: Gateway, scope: Scope, check: KeyCheck) -> GatewayError:
    """Audit a wrong admin key (or one refused unseen), and the error it is answered with."""
    target = f"{scope['method']} {scope.get('path', '')}"
    if check.retry_after_s is not None:
        record(
            gw, scope, "authenticate", target, "throttled", attempt=check.attempt,
            retry_after_s=round(check.retry_after_s, 3),
        )  # fmt: skip
        return errors.key_attempts_throttled(check.retry_after_s)
    record(
        gw, scope, "authenticate", target, "denied", attempt=check.attempt,
        waited_s=round(check.waited_s, 3), next_delay_s=gw.auth_backoff.delay(check.attempt),
    )  # fmt: skip
    return errors.invalid_operator_key("admin")


def record(
    gw: Gateway,
    scope: Scope,
    action: str,
    target: str,
    outcome: str,
    admin: str | None = None,
    **details: Any,
) -> None:
    gw.metrics.admin_actions.labels(action, outcome).inc()
    gw.audit.write(
        audit_line(time.time(), admin, client_address(scope), action, target, outcome, **details)
    )
