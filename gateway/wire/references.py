"""The fields of a request body that name objects upstream keeps. Pure.

Upstream keeps every team's objects under the gateway's one key and serves any of them to a
request that names its id. So each id a body names is either checked (the gateway records
whose each object is: `endpoints.owned`) or the request is refused: these are where the ids
are, and which of them name objects no team owns here.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import Any

# Tool fields naming an object the gateway neither makes nor records: a container (a
# `container_reference`), a skill (a `skill_reference`), a Secure MCP tunnel.
_UNOWNED_TOOL_FIELDS = frozenset({"container_id", "skill_id", "tunnel_id"})


def fields(payload: Any, names: Collection[str]) -> list[tuple[str, Any]]:
    """Each field called one of `names` in a JSON value, at any depth, with its value (not
    looked into); level by level, no recursion."""
    found: list[tuple[str, Any]] = []
    level: list[Any] = [payload]
    while level:
        below: list[Any] = []
        for node in level:
            items = node.items() if isinstance(node, dict) else enumerate(node)
            for name, value in items:
                if isinstance(name, str) and name in names:
                    found.append((name, value))
                elif isinstance(value, dict | list):
                    below.append(value)
        level = below
    return found


def strings(payload: Any) -> Iterator[str]:
    """Every string value of a JSON value, at any depth (level by level: no recursion): where
    a body of unknown fields may name an id."""
    level: list[Any] = [payload]
    while level:
        below: list[Any] = []
        for node in level:
            if isinstance(node, str):
                yield node
            elif isinstance(node, dict):
                below += node.values()
            elif isinstance(node, list):
                below += node
        level = below


def unowned_reference(payload: dict[str, Any]) -> str | None:
    """The first field of a chat or Responses request (or a batch line's body) that names an
    object no team owns here, as the `param` to refuse it with; None when there is none.

    Those are: a conversation; a code interpreter's container by its id, and any container,
    skill or tunnel a tool refers to (a container made with `{"type": "auto"}` and the files
    it is given are the team's own); a chat assistant message's previous audio answer."""
    if payload.get("conversation") is not None:
        return "conversation"
    tools = payload.get("tools")
    for i, tool in enumerate(tools if isinstance(tools, list) else ()):
        if not isinstance(tool, dict):
            continue
        if tool.get("type") == "code_interpreter" and isinstance(tool.get("container"), str):
            return f"tools[{i}].container"
        named = fields(tool, _UNOWNED_TOOL_FIELDS)
        if named:
            return f"tools[{i}].{named[0][0]}"
    messages = payload.get("messages")
    for i, message in enumerate(messages if isinstance(messages, list) else ()):
        audio = message.get("audio") if isinstance(message, dict) else None
        if isinstance(audio, dict) and audio.get("id") is not None:
            return f"messages[{i}].audio.id"
    return None


def given_back_items(payload: dict[str, Any]) -> list[str]:
    """The ids of stored items a Responses request's input gives back (or the `items` a
    conversation is given, on a path an operator opened): an `item_reference`'s, any item's
    own `id` (an output item sent again), an MCP approval's request."""
    found: list[str] = []
    for name in ("input", "items"):
        given = payload.get(name)
        for item in given if isinstance(given, list) else ():
            if isinstance(item, dict):
                found += [
                    v
                    for v in (item.get("id"), item.get("approval_request_id"))
                    if isinstance(v, str)
                ]
    return found
