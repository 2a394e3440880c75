"""Reasoning effort: the values a model takes, the error for one it does not, and how much more
a higher effort thinks. Pure.

Chat sends it as `reasoning_effort`, the Responses API as `reasoning.effort`; both answer the
same errors with that name as `param`. A model that does not reason (gpt-4o) or takes no effort
(launch-era o1-preview, o1-mini) refuses the parameter outright; a model that reasons refuses an
effort outside its own range with the values it does take.
"""

from __future__ import annotations

from typing import Any

from gateway.simulator import openai_errors as oe
from gateway.simulator.openai_errors import SimError

# The schema's enum, lowest to highest.
EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")

# Reasoning at each effort in quarters of the model's medium-effort budget, so each step up
# thinks more (deterministically) and `none` not at all.
_QUARTERS = {"none": 0, "minimal": 1, "low": 2, "medium": 4, "high": 8, "xhigh": 16, "max": 32}


def effort_error(value: Any, accepted: tuple[str, ...], param: str) -> SimError | None:
    """The error for sending `value` as the effort of a model taking `accepted`; None if fine.

    A null effort is the same as none sent.
    """
    if value is None:
        return None
    if not accepted:
        return oe.unsupported_parameter(param)
    if value not in EFFORTS:
        return oe.invalid_value(param, value, EFFORTS)
    if value not in accepted:
        return oe.unsupported_effort(param, value, accepted)
    return None


def effort_of(value: Any, default: str | None) -> str | None:
    """The effort a request runs at: the one it sent (already checked), else the model's
    default."""
    return value if isinstance(value, str) else default


def scaled_reasoning(medium_budget: int, effort: str) -> int:
    """Reasoning tokens at `effort`, given what the model spends at medium."""
    return medium_budget * _QUARTERS[effort] // 4
