"""Endpoints served by one generic handler, as their row in the endpoint table says: the model
the body names checked against the team's tier and allowlist (a model without a price in
config is not served), the worst case held, the call forwarded once to the canonical path, and
the charge settled to the usage upstream reports, at the model's price."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.admission.plan import model_allowed
from gateway.admission.pricing import completions_worst_case, input_tokens, worst_case_micros
from gateway.config import ModelConfig
from gateway.endpoints.attempt import Attempt
from gateway.server.body import parse_json_object, read_body
from gateway.server.caller import identify
from gateway.server.entry import exchange_of, gateway_of
from gateway.wire import errors
from gateway.wire.errors import GatewayError

Handler = Callable[[Request], Awaitable[Response]]


class Cost(Enum):
    """How an endpoint's call is held before and charged after."""

    # Input tokens at the input price; settled to `usage`.
    EMBEDDINGS = "embeddings"
    # The prompt, and `max_tokens` for each of `best_of` (at least `n`) candidates; settled to
    # `usage`, which counts every candidate.
    COMPLETIONS = "completions"
    # Nothing to pay (moderations): counted against the request limits.
    FREE = "free"


@dataclass(frozen=True, slots=True)
class Governed:
    """The row's rules, for the generic handler."""

    cost: Cost
    # The model used when the body names none (moderations), or None: a model is required.
    default_model: str | None = None


def governed(rules: Governed) -> Handler:
    async def handle(request: Request) -> Response:
        return await serve(request, rules)

    return handle


async def serve(request: Request, rules: Governed) -> Response:
    gw = gateway_of(request)
    caller = await identify(gw, request)
    body = await read_body(request, gw.config.server.max_body_bytes)
    payload = parse_json_object(request, body)
    name = payload.get("model", rules.default_model)
    if not isinstance(name, str) or not name:
        raise errors.missing_model()
    found = gw.models.get(name)
    if found is None or not model_allowed(gw.config, caller.team, found[0]):
        raise errors.model_not_found(name)
    label, model = found
    if rules.cost is not Cost.FREE and not (model.price.input or model.price.output):
        raise errors.model_not_found(name)  # not priced: never served free
    exchange = exchange_of(request.scope)
    exchange.model = exchange.routed_model = label
    path = request.scope["path"][len("/v1") :]  # canonical: `Entry` refused every other spelling
    attempt = Attempt(gw, request, exchange, caller, path, model=None)
    try:
        if gw.config.admission.enabled:
            prompt, cap = worst_case(rules.cost, payload, model)
            shape = gw.plan_shapes().get(caller.team, caller.key, label)
            plan = shape.plan(
                gw.new_hold_id(), prompt + cap, worst_case_micros(model.price, prompt, cap)
            )
            await attempt.admit(plan, model.price, prompt)
        return await attempt.forward(body, stream=False)
    except GatewayError as exc:
        attempt.failed(exc)
        raise


def worst_case(cost: Cost, payload: dict[str, Any], model: ModelConfig) -> tuple[int, int]:
    """(prompt tokens, completion tokens) of the most the call can use."""
    if cost is Cost.EMBEDDINGS:
        return input_tokens(payload.get("input")), 0
    if cost is Cost.COMPLETIONS:
        return completions_worst_case(payload, model.max_output)
    return 0, 0
