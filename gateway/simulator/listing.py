"""OpenAI's cursor-paged list object, shared by every list endpoint of the simulator. Pure.

`{"object": "list", "data", "first_id", "last_id", "has_more"}` with `after=<id>`, `limit` and
`order` (asc|desc) query parameters. The default order differs by endpoint (files, batches and
fine-tuning jobs list newest first; stored chat completions and their messages oldest first),
so the caller names it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.simulator import openai_errors as oe
from gateway.simulator.openai_errors import SimError

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


def page(
    items: Sequence[dict[str, Any]],
    query: dict[str, str],
    *,
    default_order: str = "desc",
    default_limit: int = DEFAULT_LIMIT,
    max_limit: int = MAX_LIMIT,
) -> dict[str, Any] | SimError:
    """One page of `items` (oldest first, as stored), or the 400 a bad query parameter earns."""
    raw_limit = query.get("limit", str(default_limit))
    try:
        limit = int(raw_limit)
    except ValueError:
        return oe.invalid_type("limit", "an integer", raw_limit)
    if limit < 1:
        return oe.below_minimum("limit", 1, limit)
    if limit > max_limit:
        return oe.above_maximum("limit", max_limit, limit)
    order = query.get("order", default_order)
    if order not in ("asc", "desc"):
        return oe.invalid_value("order", order, ("asc", "desc"))
    ordered = list(items) if order == "asc" else list(items)[::-1]
    after = query.get("after")
    if after is not None:
        position = next((i for i, item in enumerate(ordered) if item["id"] == after), None)
        # An unknown cursor is an empty page, not an error (what list endpoints do).
        ordered = ordered[position + 1 :] if position is not None else []
    data = ordered[:limit]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": len(ordered) > limit,
    }
