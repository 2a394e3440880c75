"""Whether a request uses the response cache, and how. Pure.

The request's `x-gateway-cache` header decides first (`on`, `off`, `refresh`: call upstream
and overwrite); without it, the cache is on for a team that turned it on, or for a request
routed by a policy that did. A request the cache is on for may still not be cacheable: a
stored object, a background response, several choices, or tools unless asked.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any


class Mode(Enum):
    OFF = "off"  # the cache is not on for the request: no header, nothing done
    BYPASS = "bypass"  # asked off, or not cacheable: `x-gateway-cache: bypass`
    ON = "on"
    REFRESH = "refresh"


HEADER_VALUES = frozenset({"on", "off", "refresh"})


def mode(header: str | None, team: bool, policy: bool) -> Mode:
    """What the request asks (`header`, valid: `HEADER_VALUES`), else what its team or its
    routing policy says."""
    if header == "off":
        return Mode.BYPASS
    if header == "refresh":
        return Mode.REFRESH
    if header == "on" or team or policy:
        return Mode.ON
    return Mode.OFF


def cacheable(api: str, payload: Mapping[str, Any], tools: bool) -> bool:
    """Whether the request's answer may be kept (`tools`: answers that call tools may be)."""
    if payload.get("background") is True:
        return False
    if api == "responses":
        # Stored by default: a stored response is an object upstream keeps, not an answer.
        if payload.get("store") is not False:
            return False
    elif payload.get("store") is True or payload.get("n", 1) not in (1, None):
        return False
    return tools or not payload.get("tools")
