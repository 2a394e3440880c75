"""Paths outside the endpoint table that the operator lets through (`passthrough.allow`): each
forwarded as it is, once, to the default upstream with the gateway's key, counted against the
team's request limits, and charged as its entry says (`usage`: the usage the answer reports,
at the price of the model that answered; `free`: nothing). An entry naming `teams` is open to
those teams only: to the others the path does not exist.

What a call costs is unknown until it answers, so a `usage` call holds what its entry says one
may cost (`hold_usd`), and is charged that when it ends without saying what it cost after
upstream took it (a whole answer lost, cut off or not decodable), as any call is charged its
hold; with none, such a call is charged nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.admission.plan import model_allowed
from gateway.config import AllowedPath
from gateway.endpoints.attempt import Attempt
from gateway.endpoints.tuned_models import fine_tuned
from gateway.server.body import read_body
from gateway.server.caller import identify
from gateway.server.entry import exchange_of, gateway_of
from gateway.wire import errors
from gateway.wire.errors import GatewayError

Handler = Callable[[Request], Awaitable[Response]]


def allowed_passthrough(allowed: AllowedPath) -> Handler:
    async def handle(request: Request) -> Response:
        return await passthrough(request, allowed)

    return handle


async def passthrough(request: Request, allowed: AllowedPath) -> Response:
    gw = gateway_of(request)
    path = request.scope["path"][len("/v1") :]  # canonical: `Entry` refused every other spelling
    caller = await identify(gw, request)
    if allowed.teams and caller.team.name not in allowed.teams:
        raise errors.not_served(request.method, request.url.path)
    body = await read_body(request, gw.config.server.max_body_bytes)
    named = _model_named(body)
    found = None
    if named is not None:
        found = gw.models.get(named)
        if found is None and allowed.charge == "usage":
            found = await fine_tuned(gw, caller, named)
        if found is not None and not model_allowed(gw.config, caller.team, found[0]):
            found = None
        if found is None and allowed.charge == "usage":
            # What it will report usage for must have a price: an unknown model is not served
            # free.
            raise errors.model_not_found(named)
    attempt = Attempt(gw, request, exchange_of(request.scope), caller, path, model=None)
    try:
        if gw.config.admission.enabled:
            # Token use is unknown up front: count the request, charge the usage it reports.
            # Limits are those of no model; the usage is filed under the model the body names
            # (and then the one that answered).
            shape = gw.plan_shapes().get(
                caller.team, caller.key, "", endpoint=attempt.exchange.endpoint, counts_tokens=False
            )
            plan = shape.plan(gw.new_hold_id(), est_tokens=0, reserve=int(allowed.hold_usd))
            await attempt.admit(plan if found is None else plan.refiled(found[0]), None, 0)
            if allowed.charge == "free" and attempt.ticket is not None:
                attempt.ticket.settle(None)  # counted; nothing it reports is charged
        return await attempt.forward(body, stream=None)
    except GatewayError as exc:
        if exc.sent:
            # Whether it streams is told by its answer: one lost after upstream took it may be
            # a whole answer, which upstream finishes and bills. Its hold, never less.
            exc.billed = True
        attempt.failed(exc)
        raise


def _model_named(body: bytes) -> str | None:
    """The `model` of a JSON body, if it names one."""
    if b'"model"' not in body:
        return None
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    model = payload.get("model") if isinstance(payload, dict) else None
    return model if isinstance(model, str) else None
