"""Routing aliases: which policy a model name such as `auto` means for a team,
and the `x-gateway-route-*` headers of a decision. Pure.

The decision itself is `gateway.routing.heuristic`; `gateway.endpoints.route` adds what needs
I/O (the team's spend this month, for the budget step-down).
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.config import Config
from gateway.routing import heuristic
from gateway.teams.records import Team

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


def route_headers(decision: heuristic.Decision) -> dict[str, str]:
    headers = {
        "x-gateway-route-model": decision.model,
        "x-gateway-route-score": f"{decision.score:.3f}",
        "x-gateway-route-reason": "; ".join(decision.reasons),
    }
    if decision.effort:
        headers["x-gateway-route-effort"] = decision.effort
    return headers
