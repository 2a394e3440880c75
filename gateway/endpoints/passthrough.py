"""Every other `/v1/*` path: forwarded as it is, once, to the default upstream, admitted
against the team's request limits and charged the usage its answer reports."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway.endpoints.attempt import Attempt
from gateway.server.body import read_body
from gateway.server.caller import identify
from gateway.server.entry import exchange_of, gateway_of
from gateway.wire import errors
from gateway.wire.errors import GatewayError

# The upstream account's own administration (usage and costs of every project, users, admin
# keys, projects): a team key must never reach it with the gateway's upstream key.
ACCOUNT_PATHS = ("/organization", "/dashboard")


async def passthrough(request: Request) -> Response:
    gw = gateway_of(request)
    path = request.scope["path"][len("/v1") :]
    caller = await identify(gw, request)
    if path.startswith(ACCOUNT_PATHS):
        raise errors.account_path_forbidden()
    body = await read_body(request, gw.config.server.max_body_bytes)
    attempt = Attempt(gw, request, exchange_of(request.scope), caller, path, model=None)
    try:
        if gw.config.admission.enabled:
            # Token use is unknown up front: count the request, charge the usage it reports.
            shape = gw.plan_shapes().get(caller.team, caller.key, "", counts_tokens=False)
            await attempt.admit(shape.plan(gw.new_hold_id(), est_tokens=0, reserve=0), None, 0)
        return await attempt.forward(body, stream=None)
    except GatewayError as exc:
        attempt.failed(exc)
        raise
