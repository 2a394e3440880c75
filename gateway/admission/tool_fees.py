"""What a Responses request's hosted tools (web search, file search, image generation, code
interpreter, a hosted shell) may cost and did cost, in integer micro-dollars, beside its tokens.
Pure.

OpenAI bills a web or file search by the call, an image the image generation tool makes at an
image model's prices (priced here by the image, at the most one may cost), and the code
interpreter and a hosted shell by the container a response creates (by its memory). A
request's calls are bounded by its `max_tool_calls` (the gateway sets
`hosted_tools.default_max_tool_calls` when the client did not), so its worst case is that many
calls at the dearest per-call price among its tools, plus one container of each container
tool. What a response is charged counts its call items, and a
container for each container tool that ran, never more than that worst case. A chat request
with `web_search_options` (the search models) is billed one web search.

Each call's result (search content, file chunks, a remote MCP server's answer) is read by the
model in another pass over the conversation, billed as input: up to `max_tool_calls` passes of
at most the whole context (`passes_tokens`), held with the call's own input (the usage bills
them together: past a model's `long_context_above`, at its long-context prices, the call's own
prompt and output too) and charged as the response's usage counts them. An MCP server's calls have no fee, but are bounded and held so.

A stored prompt template (`prompt`) may bring any hosted tool, and the gateway cannot read it:
such a request is held as if it carried them all (a container at the dearest memory priced),
each of them must be priced, unless the client bounds its calls at `max_tool_calls: 0`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.config import HostedToolsConfig
from gateway.wire import errors
from gateway.wire.hosted_tools import (
    CALL_ITEMS,
    CONTAINER_TOOLS,
    DEFAULT_MEMORY,
    PER_CALL_TOOLS,
    HostedTool,
    hosted_tools,
    runs_free_tools,
)  # fmt: skip

SEARCH_ITEM = "web_search_call"


@dataclass(frozen=True, slots=True)
class ToolFees:
    """A request's hosted tools, priced by the output item type of their calls: what one call
    costs (the dearest of the request's tools that make it), and what the container a
    container tool's calls run in costs."""

    per_call: dict[str, int] = field(default_factory=dict)
    containers: dict[str, int] = field(default_factory=dict)
    max_calls: int = 0
    # The client set no `max_tool_calls`: the gateway adds `max_calls` to the request.
    injected: bool = False

    def passes_tokens(self, context: int) -> int:
        """The input the model's passes over the conversation after each call may read: each
        reads the call's result, and all before it (at most the whole context each)."""
        return self.max_calls * context if self.max_calls > 0 else 0

    @property
    def worst_case(self) -> int:
        if self.max_calls <= 0:
            return 0
        dearest = max(self.per_call.values(), default=0)
        return self.max_calls * dearest + sum(self.containers.values())

    def charged(self, counts: Mapping[str, int]) -> int:
        """The fees of the calls a response made (`counts` by item type), never more than
        the worst case held."""
        fee = sum(self.per_call.get(kind, 0) * n for kind, n in counts.items())
        fee += sum(price for kind, price in self.containers.items() if counts.get(kind))
        return min(fee, self.worst_case)

    def record(self) -> dict[str, Any]:
        """What a follower keeps to charge the response once it ends (`from_record`)."""
        return {
            "per_call": self.per_call, "containers": self.containers, "max_calls": self.max_calls,
        }  # fmt: skip

    @classmethod
    def from_record(cls, record: Any) -> ToolFees:
        if not isinstance(record, dict):
            return NO_FEES
        return cls(dict(record["per_call"]), dict(record["containers"]), int(record["max_calls"]))


NO_FEES = ToolFees()


def tool_fees(
    body: dict[str, Any], prices: HostedToolsConfig, stored_prompt: bool = False
) -> ToolFees:
    """The request's hosted tools at the configured prices; a tool without one is refused
    (400 naming the config key to set). `stored_prompt`: a model that reads the request's
    stored prompt template (`prompt`) serves it, so any tool may come with that."""
    found = hosted_tools(body.get("tools"))
    given = body.get("max_tool_calls")
    templated = stored_prompt and body.get("prompt") is not None and given != 0
    if not found and not templated and not runs_free_tools(body.get("tools")):
        return NO_FEES
    priced: dict[str, int] = {}
    containers: dict[str, int] = {}
    for tool in found:
        price = _price(body, tool, prices)
        if tool.name in CONTAINER_TOOLS:
            item = CONTAINER_TOOLS[tool.name]
            containers[item] = max(containers.get(item, 0), price)
        else:
            priced[tool.name] = max(priced.get(tool.name, 0), price)
    if templated:
        for name, price in _every_tool(prices).items():
            if name in CONTAINER_TOOLS:
                item = CONTAINER_TOOLS[name]
                containers[item] = max(containers.get(item, 0), price)
            else:
                priced[name] = max(priced.get(name, 0), price)
    per_call = {
        item: max(priced[name] for name in names if name in priced)
        for item, names in CALL_ITEMS.items()
        if any(name in priced for name in names)
    }
    max_calls = given if isinstance(given, int) else prices.default_max_tool_calls
    return ToolFees(per_call, containers, max_calls, given is None)


def _every_tool(prices: HostedToolsConfig) -> dict[str, int]:
    """Every hosted tool's price, by price name, a container tool's at the dearest memory
    priced (a template's container may ask for any); 400 for the first without a price."""
    found: dict[str, int] = {}
    for name in (*PER_CALL_TOOLS, *CONTAINER_TOOLS):
        price = getattr(prices, name)
        if price is None:
            raise errors.prompt_tools_unpriced(f"hosted_tools.{name}")
        found[name] = int(price)
        if name in CONTAINER_TOOLS:
            found[name] = max([found[name], *map(int, prices.container_memory_prices.values())])
    return found


def _price(body: dict[str, Any], tool: HostedTool, prices: HostedToolsConfig) -> int:
    """A tool's price: by the call, or by the container of the memory it asks for."""
    if tool.memory and tool.memory != DEFAULT_MEMORY:
        key = f"container_memory_prices.{tool.memory}"
        price = prices.container_memory_prices.get(tool.memory)
    else:
        key, price = tool.name, getattr(prices, tool.name)
    if price is None:
        tool_type = str(body["tools"][tool.position]["type"])
        raise errors.tool_price_unset(
            f"tools[{tool.position}].type", tool_type, f"hosted_tools.{key}"
        )
    return int(price)


def search_fees(payload: dict[str, Any], prices: HostedToolsConfig) -> ToolFees:
    """A chat request's `web_search_options` (search models): one web search an answer, the
    search models searching before each; refused without a web search price."""
    if payload.get("web_search_options") is None:
        return NO_FEES
    price = prices.web_search
    if price is None:
        raise errors.tool_price_unset("web_search_options", "web_search", "hosted_tools.web_search")
    return ToolFees({SEARCH_ITEM: int(price)}, max_calls=1)


def with_fees(token_cost: int, fees: int, reserve: int) -> int:
    """A call's charge: its tokens and its tool fees, the fees never taking it past its hold."""
    if not fees:
        return token_cost
    return max(token_cost, min(token_cost + fees, reserve))
