"""List pages as OpenAI answers them: `{"object": "list", "data", "first_id", "last_id",
"has_more"}`, cut by `limit`, `order` and an `after` cursor. Pure."""

from __future__ import annotations

from typing import Any

from gateway.wire import errors

MAX_PAGE = 100
DEFAULT_PAGE = 20


def page(items: list[dict[str, Any]], query: dict[str, str]) -> dict[str, Any]:
    """One page of a list, as OpenAI pages them: `limit` (1-100, default 20), `order` (`desc`
    by default: newest first), and `after` (the id the page starts after)."""
    limit, order, after = cursor(query)
    ordered = items if order == "asc" else items[::-1]
    if after is not None:
        ids = [item.get("id") for item in ordered]
        ordered = ordered[ids.index(after) + 1 :] if after in ids else []
    return listed(ordered[:limit], len(ordered) > limit)


def cursor(
    query: dict[str, str],
    default_limit: int = DEFAULT_PAGE,
    max_limit: int = MAX_PAGE,
    default_order: str = "desc",
) -> tuple[int, str, str | None]:
    """A list's `limit`, `order` and `after`, checked as OpenAI checks them (400 otherwise)."""
    raw = query.get("limit", str(default_limit))
    try:
        limit = int(raw)
    except ValueError:
        raise errors.invalid_type("limit", "an integer", "a string") from None
    if limit < 1:
        raise errors.below_minimum("limit", "integer", 1, limit)
    if limit > max_limit:
        raise errors.above_maximum("limit", "integer", max_limit, limit)
    order = query.get("order", default_order)
    if order not in ("asc", "desc"):
        raise errors.invalid_value("order", order, ("asc", "desc"))
    return limit, order, query.get("after")


def listed(data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    """The list object around one page's items."""
    return {
        "object": "list",
        "data": data,
        "first_id": data[0].get("id") if data else None,
        "last_id": data[-1].get("id") if data else None,
        "has_more": has_more,
    }
