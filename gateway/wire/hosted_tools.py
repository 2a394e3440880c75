"""The Responses API's tools OpenAI runs itself and bills by the call, the image or the
container beside the response's tokens: which request tools they are, and which output items
say they ran. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

# A request tool's type -> the name its price goes by (dated variants bill as their family).
PRICE_NAMES: dict[str, str] = {
    "web_search": "web_search",
    "web_search_2025_08_26": "web_search",
    "web_search_preview": "web_search_preview",
    "web_search_preview_2025_03_11": "web_search_preview",
    "file_search": "file_search",
    "code_interpreter": "code_interpreter",
    # Billed at an image model's prices: priced by the image, at the most one may cost.
    "image_generation": "image_generation",
}
# An output item's type -> the price names of the tools that make it.
CALL_ITEMS: dict[str, tuple[str, ...]] = {
    "web_search_call": ("web_search", "web_search_preview"),
    "file_search_call": ("file_search",),
    "code_interpreter_call": ("code_interpreter",),
    "shell_call": ("shell",),
    "image_generation_call": ("image_generation",),
}
# Tools billed by the container they create, not by the call -> their call item's type.
CONTAINER_TOOLS: dict[str, str] = {
    "code_interpreter": "code_interpreter_call",
    "shell": "shell_call",
}
# Tools billed by the call (or the image), by their price names.
PER_CALL_TOOLS = tuple(
    dict.fromkeys(
        name for names in CALL_ITEMS.values() for name in names if name not in CONTAINER_TOOLS
    )
)
# Tools OpenAI runs itself without a fee by the call (a remote MCP server's): their results,
# like a hosted tool's, are read by the model in another pass over the conversation.
FREE_RUN_TOOLS = frozenset({"mcp"})
# A container of OpenAI's default memory.
DEFAULT_MEMORY = "1g"


class HostedTool(NamedTuple):
    position: int  # in the request's `tools`
    name: str  # its price name
    memory: str  # a container tool's `memory_limit`, "" for the others


def hosted_tools(tools: Any) -> list[HostedTool]:
    """The request's hosted tools: the price-named ones, and a shell in a container OpenAI
    makes for it (`environment: {"type": "container_auto"}`)."""
    if not isinstance(tools, list):
        return []
    found: list[HostedTool] = []
    for i, tool in enumerate(tools):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if not isinstance(kind, str):
            continue
        if kind in PRICE_NAMES:
            name = PRICE_NAMES[kind]
            container = tool.get("container") if name == "code_interpreter" else None
            found.append(HostedTool(i, name, _memory(container) if name in CONTAINER_TOOLS else ""))
        elif kind == "shell":
            environment = tool.get("environment")
            if isinstance(environment, dict) and environment.get("type") == "container_auto":
                found.append(HostedTool(i, "shell", _memory(environment)))
    return found


def _memory(container: Any) -> str:
    limit = container.get("memory_limit") if isinstance(container, dict) else None
    return limit if isinstance(limit, str) and limit else DEFAULT_MEMORY


def call_counts(items: Iterable[Any]) -> dict[str, int]:
    """How many of the output items are hosted tool calls, by item type."""
    counts: dict[str, int] = {}
    for item in items:
        kind = item.get("type") if isinstance(item, dict) else None
        if isinstance(kind, str) and kind in CALL_ITEMS:
            counts[kind] = counts.get(kind, 0) + 1
    return counts


def runs_free_tools(tools: Any) -> bool:
    """Whether the request has a tool OpenAI runs without a fee by the call (`FREE_RUN_TOOLS`)."""
    return isinstance(tools, list) and any(
        isinstance(tool, dict) and tool.get("type") in FREE_RUN_TOOLS for tool in tools
    )
