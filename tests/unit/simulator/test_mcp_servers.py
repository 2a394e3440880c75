"""A simulated remote MCP server's tool list: imported once a conversation, as named."""

from __future__ import annotations

from typing import Any

from gateway.simulator.mcp_servers import TOOLS, list_items, list_tokens

SERVER: dict[str, Any] = {"type": "mcp", "server_label": "intranet", "server_url": "https://x"}


def test_a_server_is_imported_once_a_conversation_and_its_list_billed_each_turn() -> None:
    first = list_items({"tools": [SERVER]}, [], 1)
    assert [item["tools"] for item in first] == [list(TOOLS)]
    assert list_tokens(first) > 100
    # A chained turn reads the list the conversation holds, and imports it no more.
    assert list_items({"tools": [SERVER]}, first, 2) == []
    assert list_tokens([{"type": "message"}, *first]) == list_tokens(first)


def test_allowed_tools_keeps_the_tools_it_names() -> None:
    (item,) = list_items({"tools": [{**SERVER, "allowed_tools": ["read_document"]}]}, [], 1)
    assert [tool["name"] for tool in item["tools"]] == ["read_document"]
    assert 0 < list_tokens([item]) < list_tokens(list_items({"tools": [SERVER]}, [], 1))
