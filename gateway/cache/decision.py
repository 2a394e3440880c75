"""Whether a request uses the response cache, and how. Pure.

The request's `x-gateway-cache` header decides first (`on`, `off`, `refresh`: call upstream
and overwrite); without it, the cache is on for a team that turned it on, or for a request
routed by a policy that did. A request the cache is on for may still not be cacheable: a
stored object, a background response, several choices, tools unless asked (chat's legacy
`functions` never), or what upstream fetches while answering: an image or a file from a URL, a
web search or another hosted tool reading live data, a stored prompt template (what they find
may change while the request stays the same), or a model past its shutdown day (sent upstream as
named with the retirement shield off, where it is refused). When the call identical requests
wait for fails, whether they elect another leader (`passing`).
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
        # A stored prompt template is kept upstream, unread here: its next version (the one a
        # request without `version` gets) or a hosted tool it brings (a web search) changes the
        # answer while the request stays the same.
        if payload.get("prompt") is not None:
            return False
    elif payload.get("store") is True or payload.get("n", 1) not in (1, None):
        return False
    elif payload.get("functions"):
        # Chat's legacy tools: an answer calling one (`message.function_call`, finished `stop`
        # when forced) is neither gathered from a stream nor replayed (only `tool_calls` are).
        return False
    if fetches(payload.get("messages" if api == "chat" else "input")) or searches(payload):
        return False
    return tools or not payload.get("tools")


def shut_down(shutdown: str, today: str) -> bool:
    """Whether the model serving the request, shutting down on `shutdown` ("": no day set), is
    shut down on `today` (ISO days, compared as text). Only with the retirement shield off is
    such a model sent upstream, which refuses it: an answer kept for it before its day would be
    an answer from a model that no longer exists."""
    return bool(shutdown) and shutdown <= today


# Failures another try may not meet: a timeout, a conflict, a rate limit, the client gone
# (499), upstream's or the gateway's trouble (5xx). Any other refuses the request itself (a
# 400, a 404): every identical request would be refused alike.
_PASSING = frozenset({408, 409, 429, 499})


def passing(status: int) -> bool:
    """Whether a leader's call that failed with `status` is followed by another leader
    elected among the requests waiting for it. Else each calls upstream alone, as when the
    answer may not be kept: elected one after another, each would wait to be refused alike."""
    return status >= 500 or status in _PASSING


# Hosted tools whose results upstream reads from what lives beside the request and may change
# while it stays the same: a vector store (files added, removed), a remote MCP server, code
# run in a container (time, randomness, the network). A web search is `searches`' too.
_LIVE_TOOLS = frozenset({"file_search", "mcp", "code_interpreter"})


def searches(payload: Mapping[str, Any]) -> bool:
    """Whether upstream looks up live data for the answer: chat's `web_search_options` (the
    search models), or a Responses hosted tool that reads it (`web_search`, its dated and
    preview types too, `file_search`, `mcp`, `code_interpreter`, a shell in a hosted
    container), cached or not as tools are otherwise."""
    if payload.get("web_search_options") is not None:
        return True
    tools = payload.get("tools")
    return isinstance(tools, list) and any(isinstance(tool, dict) and _live(tool) for tool in tools)


def _live(tool: Mapping[str, Any]) -> bool:
    kind = str(tool.get("type", ""))
    if kind.startswith("web_search") or kind in _LIVE_TOOLS:
        return True
    if kind != "shell":
        return False
    # A local shell's commands run on the client, which sends back what they printed.
    environment = tool.get("environment")
    return isinstance(environment, dict) and environment.get("type") == "container_auto"


# Content parts upstream reads from a URL: (the part's type, its field naming the URL).
_FETCHED = {
    "image_url": "image_url",  # chat: {"url": ...}
    "input_image": "image_url",  # Responses: the URL itself
    "input_file": "file_url",
    "file": "file",  # chat: {"file_url": ...}, when given one
}


def fetches(given: Any) -> bool:
    """Whether chat messages or Responses input items hold an image or a file that upstream
    fetches from a URL (one sent inline, `data:`, or by file id, is part of the request)."""
    level = [given]
    while level:
        below: list[Any] = []
        for node in level:
            if isinstance(node, list):
                below += node
            elif isinstance(node, dict):
                kind = node.get("type")
                field = _FETCHED.get(kind) if isinstance(kind, str) else None
                where = node.get(field) if field is not None else None
                if isinstance(where, dict):
                    where = where.get("url", where.get("file_url"))
                if isinstance(where, str) and not where.startswith("data:"):
                    return True
                below += node.values()
        level = below
    return False
