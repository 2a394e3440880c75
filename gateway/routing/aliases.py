"""Routing aliases at the request edge: which policy an alias means for a team, the budget
step-down, the `x-gateway-route-*` headers, and `POST /v1/route`.

The decision itself is `gateway.router` (pure); this module adds what needs the caller, the
config and Redis (the team's spend this month).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.admission import plan
from gateway.admission.pricing import Usage, cost_micros, worst_case_micros
from gateway.config import Config
from gateway.routing import heuristic
from gateway.runtime.gateway import Gateway
from gateway.server.intake import gateway_of, identify, parse_json_object, read_body
from gateway.teams.records import Team
from gateway.wire import errors, tokens, validation

DEFAULT_ALIAS = "auto"


@dataclass(frozen=True, slots=True)
class Routed:
    policy: str  # the policy's name in config
    decision: heuristic.Decision


def policy_name(config: Config, team: Team, name: str) -> str | None:
    """The routing policy the model name `name` selects for `team`; None for a real model."""
    if name == DEFAULT_ALIAS and team.routing_policy:
        return team.routing_policy
    return name if name in config.routing.policies else None


async def choose(gw: Gateway, team: Team, name: str, payload: dict[str, Any]) -> Routed | None:
    """Route a chat request sent to an alias such as `auto`; None when `name` is a real model."""
    chosen = policy_name(gw.config, team, name)
    if chosen is None:
        return None
    policy = gw.config.routing.policies[chosen]
    messages = payload.get("messages")
    decision = heuristic.route(messages if isinstance(messages, list) else [], policy)
    if (
        policy.step_down_at is not None
        and decision.model != policy.general_model
        and gw.config.admission.enabled
    ):
        budget = plan.team_budget(gw.config, team)
        if budget:
            spent = await gw.admission.spent(team.name, gw.config.admission.cache_ttl_s)
            decision = heuristic.step_down(decision, policy, spent / budget)
    gw.after_response(gw.metrics.count_route, chosen, decision)
    return Routed(chosen, decision)


def route_headers(decision: heuristic.Decision) -> dict[str, str]:
    return {
        "x-gateway-route-model": decision.model,
        "x-gateway-route-score": f"{decision.score:.3f}",
        "x-gateway-route-reason": "; ".join(decision.reasons),
    }


def estimates(config: Config, payload: dict[str, Any], models: list[str]) -> dict[str, Any]:
    """What the request would cost on each model: typical and worst case, in micro-dollars."""
    messages = payload.get("messages")
    prompt = tokens.count_messages(messages) if isinstance(messages, list) else 0
    requested = None
    for field in ("max_completion_tokens", "max_tokens"):
        value = payload.get(field)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            requested = value
            break
    out: dict[str, Any] = {}
    for name in models:
        model = config.models[name]
        cap = min(requested or model.max_output, model.max_output)
        typical = min(
            model.typical_completion_tokens or config.admission.default_completion_tokens, cap
        )
        estimated = cost_micros(model.price, Usage(prompt_tokens=prompt, completion_tokens=typical))
        worst = worst_case_micros(model.price, prompt, cap)
        out[name] = {
            "prompt_tokens": prompt,
            "estimated_completion_tokens": typical,
            "estimated_cost_micros": estimated,
            "estimated_cost_usd": f"{estimated / 1_000_000:.6f}",
            "max_completion_tokens": cap,
            "max_cost_micros": worst,
            "max_cost_usd": f"{worst / 1_000_000:.6f}",
        }
    return out


async def route_endpoint(request: Request) -> Response:
    """`POST /v1/route`: the decision for a chat request, without calling upstream."""
    gw = gateway_of(request)
    caller = await identify(gw, request)
    body = await read_body(request, gw.config.server.max_body_bytes)
    payload = parse_json_object(request, body)
    payload.setdefault("model", DEFAULT_ALIAS)
    validation.check_chat(payload, gw.config.server)  # model and messages are sound now
    name: str = payload["model"]
    routed = await choose(gw, caller.team, name, payload)
    if routed is None:
        if name not in gw.config.models:
            raise errors.unknown_model_or_policy(name, gw.config.routing.policies)
        policy, model = None, name
        decision = heuristic.Decision(name, 0.0, "", ("model named explicitly: not routed",))
        candidates = [name]
    else:
        policy, decision = routed.policy, routed.decision
        rules = gw.config.routing.policies[policy]
        candidates = list(
            dict.fromkeys((rules.general_model, rules.mini_model, rules.preview_model))
        )
        model = decision.model
    allowed = [m for m in candidates if plan.model_allowed(gw.config, caller.team, m)]
    answer = {
        "object": "route",
        "policy": policy,
        "model": model,
        "upstream_model": gw.config.models[model].upstream or model,
        "allowed": model in allowed,
        "score": decision.score,
        "domain": decision.domain,
        "reasons": list(decision.reasons),
        "estimates": estimates(gw.config, payload, candidates),
    }
    return Response(orjson.dumps(answer), media_type="application/json")
