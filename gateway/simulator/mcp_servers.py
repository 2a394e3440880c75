"""Remote MCP servers (`{"type": "mcp", "server_label", "server_url" | "connector_id"}` tools)
of a simulated response: the tool list upstream imports from each, and what it bills for it.

OpenAI imports a server's tools (an `mcp_list_tools` output item, first in the output) the
first time a conversation names the server, and the model reads their definitions as input in
every pass after that, this response's and those chained to it: they are billed as input
tokens. Importing is no tool call, so `max_tool_calls: 0` does not stop it. Every simulated
server lists the same tools (`allowed_tools`, a list of names, keeps only those); the
simulator calls none of them.

Pure: ids come from seeds passed in.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.simulator.ids import response_item_id
from gateway.wire.tokens import count_text

LIST_ITEM = "mcp_list_tools"
_STAGES = ("in_progress", "completed")


def _tool(name: str, description: str, /, **properties: str) -> dict[str, Any]:
    return {
        "name": name,
        "description": description,
        "input_schema": {
            "type": "object",
            "properties": {key: {"type": "string", "description": text}
                           for key, text in properties.items()},
            "required": list(properties),
            "additionalProperties": False,
        },
        "annotations": {"read_only": True},
    }  # fmt: skip


# What every simulated server lists: an intranet's search, documents and tickets.
TOOLS: tuple[dict[str, Any], ...] = (
    _tool("search_documents", "Search the intranet's documents by keywords; returns the ten "
          "best matches with their titles, paths, owners and a short excerpt of each.",
          query="Keywords to search for.", space="The document space to search, or 'all'."),
    _tool("read_document", "Read a document by its path, as plain text, with its headings kept "
          "and its tables written as Markdown.", path="The document's path, as search returns "
          "it.", revision="A revision id, or 'latest'."),
    _tool("list_tickets", "List the open tickets of a project, newest first, with their "
          "titles, assignees, priorities and states.", project="The project's key.",
          state="open, closed or all."),
    _tool("create_ticket", "Open a ticket in a project, assigned to its triage rotation.",
          project="The project's key.", title="A one-line summary.", body="What happened, and "
          "what was expected instead."),
    _tool("lookup_person", "Find a colleague by name or e-mail: their team, manager, office and "
          "working hours.", name="A name or an e-mail address."),
)  # fmt: skip


def mcp_servers(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The request's remote MCP server tools."""
    tools = body.get("tools")
    return [
        tool for tool in (tools if isinstance(tools, list) else ())
        if isinstance(tool, dict) and tool.get("type") == "mcp"
    ]  # fmt: skip


def list_items(
    body: dict[str, Any], history: list[dict[str, Any]], id_seed: int
) -> list[dict[str, Any]]:
    """The `mcp_list_tools` items of the servers the conversation (`history`) has not imported
    yet, one a server label."""
    imported = {item.get("server_label") for item in history if item.get("type") == LIST_ITEM}
    items: list[dict[str, Any]] = []
    for i, server in enumerate(mcp_servers(body)):
        label = server.get("server_label")
        if label in imported:
            continue
        imported.add(label)
        allowed = server.get("allowed_tools")
        listed = [
            tool for tool in TOOLS
            if not isinstance(allowed, list) or tool["name"] in allowed
        ]  # fmt: skip
        items.append({
            "id": response_item_id("mcpl", id_seed + i),
            "type": LIST_ITEM,
            "server_label": label,
            "tools": listed,
            "error": None,
        })  # fmt: skip
    return items


def list_tokens(items: list[dict[str, Any]]) -> int:
    """The input tokens the imported tool lists among `items` are billed as: the model reads
    each listed tool's definition."""
    return sum(
        count_text(orjson.dumps(item.get("tools") or []).decode())
        for item in items
        if item.get("type") == LIST_ITEM
    )


def list_events(index: int, item: dict[str, Any]) -> list[dict[str, Any]]:
    """An import's events: the item added (no tools yet), its stages, the item done."""
    where = {"output_index": index, "item_id": item["id"]}
    return [
        {"type": "response.output_item.added", "output_index": index,
         "item": {**item, "tools": []}},
        *({"type": f"response.{LIST_ITEM}.{stage}", **where} for stage in _STAGES),
        {"type": "response.output_item.done", "output_index": index, "item": item},
    ]  # fmt: skip
