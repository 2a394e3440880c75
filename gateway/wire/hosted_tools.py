"""The Responses API's tools OpenAI runs itself and bills by the call or the container beside
the response's tokens: which request tools they are, and which output items say they ran.
Pure."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# A request tool's type -> the name its price goes by (dated variants bill as their family).
PRICE_NAMES: dict[str, str] = {
    "web_search": "web_search",
    "web_search_2025_08_26": "web_search",
    "web_search_preview": "web_search_preview",
    "web_search_preview_2025_03_11": "web_search_preview",
    "file_search": "file_search",
    "code_interpreter": "code_interpreter",
}
# An output item's type -> the price names of the tools that make it.
CALL_ITEMS: dict[str, tuple[str, ...]] = {
    "web_search_call": ("web_search", "web_search_preview"),
    "file_search_call": ("file_search",),
    "code_interpreter_call": ("code_interpreter",),
}
# Billed by the container it creates, not by the call.
CONTAINER_TOOL = "code_interpreter"


def hosted_tools(tools: Any) -> list[tuple[int, str]]:
    """The request's hosted tools: their index in `tools` and their price name."""
    if not isinstance(tools, list):
        return []
    found: list[tuple[int, str]] = []
    for i, tool in enumerate(tools):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if isinstance(kind, str) and kind in PRICE_NAMES:
            found.append((i, PRICE_NAMES[kind]))
    return found


def call_counts(items: Iterable[Any]) -> dict[str, int]:
    """How many of the output items are hosted tool calls, by item type."""
    counts: dict[str, int] = {}
    for item in items:
        kind = item.get("type") if isinstance(item, dict) else None
        if isinstance(kind, str) and kind in CALL_ITEMS:
            counts[kind] = counts.get(kind, 0) + 1
    return counts
