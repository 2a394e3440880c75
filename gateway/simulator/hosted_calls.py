"""The hosted tools' calls of a simulated response (web search, file search, image generation,
code interpreter): output items in OpenAI's shapes, made before the answer, and their stream
events.

How many calls a response makes: one for each hosted tool of the request, or as many as the
`x-sim-tool-calls` knob says (taken in turn from the request's hosted tools), never more than
the request's `max_tool_calls`. Every call completes; a code interpreter's calls share one
container.

Pure: ids come from seeds passed in.
"""

from __future__ import annotations

from typing import Any

from gateway.simulator.ids import response_item_id
from gateway.simulator.images import PNG_B64
from gateway.wire.hosted_tools import PRICE_NAMES

# A hosted tool's price name -> its call item's type and id prefix, and the events a stream
# sends between the item's `added` and `done` (`response.<item type>.<stage>`).
_SEARCH_STAGES = ("in_progress", "searching", "completed")
_CALLS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "web_search": ("web_search_call", "ws", _SEARCH_STAGES),
    "web_search_preview": ("web_search_call", "ws", _SEARCH_STAGES),
    "file_search": ("file_search_call", "fs", _SEARCH_STAGES),
    "code_interpreter": (
        "code_interpreter_call",
        "ci",
        ("in_progress", "interpreting", "completed"),
    ),
    "image_generation": (
        "image_generation_call",
        "ig",
        ("in_progress", "generating", "completed"),
    ),
}
STAGES = {item_type: stages for item_type, _, stages in _CALLS.values()}


def hosted_tool_names(body: dict[str, Any], prompt_tools: tuple[str, ...] = ()) -> list[str]:
    """The price names of the request's hosted tools, then of those its stored prompt template
    brings (`prompt_tools`, types)."""
    tools = body.get("tools")
    names = [
        PRICE_NAMES[tool["type"]]
        for tool in (tools if isinstance(tools, list) else ())
        if isinstance(tool, dict) and tool.get("type") in PRICE_NAMES
    ]
    if body.get("prompt") is not None:
        names += (PRICE_NAMES[kind] for kind in prompt_tools)
    return names


def call_items(
    body: dict[str, Any],
    wanted: int | None,
    query: str,
    id_seed: int,
    prompt_tools: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """The request's hosted tool calls (its stored prompt's tools too): `wanted` of them (None:
    one per hosted tool), within `max_tool_calls`."""
    names = hosted_tool_names(body, prompt_tools)
    if not names:
        return []
    count = len(names) if wanted is None else wanted
    cap = body.get("max_tool_calls")
    if isinstance(cap, int):
        count = min(count, cap)
    container = response_item_id("cntr", id_seed)
    return [_item(names[i % len(names)], query, container, id_seed + i) for i in range(count)]


def _item(name: str, query: str, container: str, seed: int) -> dict[str, Any]:
    item_type, prefix, _ = _CALLS[name]
    item: dict[str, Any] = {
        "id": response_item_id(prefix, seed),
        "type": item_type,
        "status": "completed",
    }
    if item_type == "web_search_call":
        item["action"] = {"type": "search", "query": query}
    elif item_type == "file_search_call":
        item["queries"] = [query]
        item["results"] = None
    elif item_type == "image_generation_call":
        item["result"] = PNG_B64  # the image it made, base64
    else:
        item["code"] = f"print({query!r})"
        item["container_id"] = container
        item["outputs"] = None
    return item


def call_events(index: int, item: dict[str, Any]) -> list[dict[str, Any]]:
    """A hosted call's events: the item added (in progress), its stages, the item done."""
    item_type = item["type"]
    where = {"output_index": index, "item_id": item["id"]}
    return [
        {
            "type": "response.output_item.added",
            "output_index": index,
            "item": {**item, "status": "in_progress"},
        },
        *({"type": f"response.{item_type}.{stage}", **where} for stage in STAGES[item_type]),
        {"type": "response.output_item.done", "output_index": index, "item": item},
    ]
