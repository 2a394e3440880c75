"""A reasoning model's reasoning item in a simulated response (`{"id": "rs_...", "type":
"reasoning", "summary": []}`), and what upstream bills when a client gives one back.

OpenAI answers a reasoning model's Responses request with a reasoning item before its message
or calls; a client that keeps the context itself (an agent loop, `store: false`) gives it back
in the next request's input, by its id (upstream reads the reasoning it stored) or whole with
`encrypted_content` (`include: ["reasoning.encrypted_content"]`), and upstream bills the
reasoning it carries as input tokens. The simulator shows the item only to a request that asks
about its reasoning (`reasoning.summary`, or its encrypted content), so that answers to the
others keep their one output item; its summary is empty and its encrypted content names the
tokens it carries. An item given back is billed as its response's reasoning tokens.

Pure: ids come from seeds passed in.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from gateway.simulator.ids import response_item_id

ITEM = "reasoning"
ENCRYPTED = "reasoning.encrypted_content"
# What the simulator's encrypted content starts with, before the tokens it carries.
_SEALED = b"sim-reasoning:"


def asks_for_items(body: dict[str, Any]) -> bool:
    """Whether the request asks about its reasoning: a summary, or the encrypted content."""
    reasoning = body.get("reasoning")
    include = body.get("include")
    return (isinstance(reasoning, dict) and reasoning.get("summary") is not None) or (
        isinstance(include, list) and ENCRYPTED in include
    )


def reasoning_item(body: dict[str, Any], reasoning_tokens: int, id_seed: int) -> list[Any]:
    """The response's reasoning item (none when it did not reason or the request does not ask
    about its reasoning)."""
    if reasoning_tokens <= 0 or not asks_for_items(body):
        return []
    item: dict[str, Any] = {"id": response_item_id("rs", id_seed), "type": ITEM, "summary": []}
    include = body.get("include")
    if isinstance(include, list) and ENCRYPTED in include:
        item["encrypted_content"] = base64.b64encode(_SEALED + str(reasoning_tokens).encode())
        item["encrypted_content"] = item["encrypted_content"].decode()
    return [item]


def carried_tokens(items: list[dict[str, Any]], stored: Callable[[str], int]) -> int:
    """The input tokens the reasoning items among `items` (given back) are billed as: the
    tokens their encrypted content carries, or those of the response that made the one an id
    names (`stored`)."""
    total = 0
    for item in items:
        if item.get("type") != ITEM:
            continue
        sealed = item.get("encrypted_content")
        if isinstance(sealed, str):
            total += _unsealed(sealed)
        elif isinstance(item.get("id"), str):
            total += stored(item["id"])
    return total


def _unsealed(sealed: str) -> int:
    try:
        raw = base64.b64decode(sealed, validate=True)
    except ValueError:
        return 0
    digits = raw[len(_SEALED) :] if raw.startswith(_SEALED) else b""
    return int(digits) if digits.isdigit() else 0
