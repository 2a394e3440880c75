"""Routing at the request edge: an alias routed for a team (with the budget step-down, which
reads the team's spend), and `POST /v1/route`, the decision without calling upstream."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.admission.plan import model_allowed, team_budget
from gateway.admission.pricing import estimates, requested_completion
from gateway.compat import patches
from gateway.config import ModelConfig
from gateway.routing import heuristic, retirement
from gateway.routing.aliases import DEFAULT_ALIAS, Routed, policy_name
from gateway.routing.retirement import Substitution
from gateway.runtime.gateway import Gateway
from gateway.server.body import parse_json_object, read_body
from gateway.server.caller import identify
from gateway.server.entry import gateway_of
from gateway.teams.records import Team
from gateway.wire import errors, validation

log = logging.getLogger("gateway")
SUBSTITUTED = "x-gateway-model-substituted"


def successor_of(gw: Gateway, name: str) -> Substitution | None:
    """The successor that serves a model named (by any of its names) once it is shut down;
    None while it is served. A shut-down model nothing replaces is refused here, not sent
    upstream to fail."""
    found = gw.models.get(name)
    if found is None or not found[1].shutdown or not gw.config.retirement.shield:
        return None
    substitution = retirement.retired(gw.config.models, found[0], gw.today())
    if substitution is not None and not substitution.new:
        raise errors.model_shut_down(name, substitution.shutdown)
    return substitution


def count_substitution(gw: Gateway, substitution: Substitution) -> None:
    """A request the successor serves, once the team was found allowed the model it named:
    counted, and logged once a process."""
    gw.metrics.model_substitutions.labels(substitution.old, substitution.new).inc()
    if substitution.header not in gw.substitutions_logged:
        gw.substitutions_logged.add(substitution.header)
        log.warning(
            "%s shut down on %s: its requests are served by %s (x-gateway-model-substituted)",
            substitution.old, substitution.shutdown, substitution.new,
        )  # fmt: skip


def shut_down(gw: Gateway, model: ModelConfig) -> bool:
    """Whether the shield refuses `model` itself: its shutdown day has come."""
    return bool(model.shutdown) and gw.config.retirement.shield and model.shutdown <= gw.today()


def refuse_shut_down(gw: Gateway, name: str, label: str, model: ModelConfig) -> None:
    """Refuse what no successor can stand in for once its model is shut down: a fine-tune
    (OpenAI shuts them down with their base), or a base to fine-tune. `label`: the configured
    model it is (a fine-tune's base), whose successor the refusal names, if it has one."""
    refusal = shut_down_refusal(gw, name, label, model)
    if refusal is not None:
        raise refusal


def shut_down_refusal(
    gw: Gateway, name: str, label: str, model: ModelConfig
) -> errors.GatewayError | None:
    """`refuse_shut_down`'s refusal, or None while `model` is served."""
    if not shut_down(gw, model):
        return None
    after = retirement.retired(gw.config.models, label, gw.today())
    return errors.model_shut_down(name, model.shutdown, after.new if after else "")


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
        budget = team_budget(gw.config, team)
        if budget:
            spent = await gw.admission.spent(team.name, gw.config.admission.cache_ttl_s)
            decision = heuristic.step_down(decision, policy, spent / budget)
    gw.after_response(gw.metrics.count_route, chosen, decision)
    return Routed(chosen, decision)


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
        found = gw.models.get(name)  # by any of its names (an upstream snapshot), as chat's
        if found is None:
            raise errors.unknown_model_or_policy(name, gw.config.routing.policies)
        policy, model = None, found[0]
        decision = heuristic.Decision(model, 0.0, "", ("model named explicitly: not routed",))
        candidates = [model]
        efforts: dict[str, str] = {}
    else:
        policy, decision = routed.policy, routed.decision
        rules = gw.config.routing.policies[policy]
        candidates = list(
            dict.fromkeys((rules.general_model, rules.mini_model, rules.preview_model))
        )
        model = decision.model
        # A role not chosen is estimated at the most its policy asks of it: its worst case.
        efforts = {
            m: levels[-1]
            for m, levels in (
                (rules.preview_model, rules.preview_effort),
                (rules.mini_model, rules.mini_effort),
                (rules.general_model, rules.general_effort),
            )
            if levels
        }
    allowed = [m for m in candidates if model_allowed(gw.config, caller.team, m)]
    # What would serve it: a shut-down model's successor (allowed as the model it replaces).
    substituted = successor_of(gw, model)
    # Each candidate is estimated on the model that would serve it and charge it; one shut
    # down with no successor would serve nothing.
    served_by = {m: s for m in candidates if (s := serving(gw, m))}
    # Each at the effort chat would send it: routing's, else a stand-in's (`Substitution`).
    effort = efforts[model] = decision.effort or (substituted.effort if substituted else "")
    sent = {
        m: requested_completion(
            as_sent(gw, caller.team, payload, s, efforts.get(m) or stand_in_effort(gw, m))
        )
        for m, s in served_by.items()
    }
    answer: dict[str, Any] = {
        "object": "route",
        "policy": policy,
        "model": model,
        "upstream_model": gw.config.models[substituted.new if substituted else model].upstream,
        "substituted": substituted.header if substituted is not None else None,
        "allowed": model in allowed,
        "score": decision.score,
        "effort": effort or None,
        "domain": decision.domain,
        "reasons": list(decision.reasons),
        "estimates": estimates(gw.config, payload, list(served_by), served_by, sent),
    }
    return Response(orjson.dumps(answer), media_type="application/json")


def as_sent(
    gw: Gateway, team: Team, payload: dict[str, Any], label: str, effort: str
) -> dict[str, Any]:
    """The chat request as it would go upstream to the configured model `label`, at `effort`
    unless it sets its own, patched as chat patches it (`ChatAttempt.patch`)."""
    caps, compat = gw.config.models[label].capabilities, gw.config.compat
    headroom, patch = compat.reasoning_headroom_tokens, compat.enabled and not team.strict
    try:
        rewritten = patches.rewrite_for(
            payload, caps, effort, patch=patch, min_completion_tokens=headroom
        )
    except errors.GatewayError:  # refused when served: estimated as it was asked
        rewritten = patches.rewrite_for(
            payload, caps, effort, patch=False, min_completion_tokens=headroom
        )
    return rewritten.payload


def stand_in_effort(gw: Gateway, name: str) -> str:
    """The effort a successor is asked, standing in for the model `name` ("": none)."""
    try:
        substituted = successor_of(gw, name)
    except errors.GatewayError:
        return ""
    return substituted.effort if substituted is not None else ""


def serving(gw: Gateway, name: str) -> str:
    """The configured model that serves a model named: its successor once it is shut down;
    "" when none would (sent upstream as it is, it would only be refused there)."""
    try:
        substituted = successor_of(gw, name)
    except errors.GatewayError:
        return ""
    return substituted.new if substituted is not None else name
