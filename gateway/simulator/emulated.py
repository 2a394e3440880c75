"""The prompt protocol a gateway uses to emulate tools and JSON output, read back from the text.

o1-preview and o1-mini refuse `tools` and `response_format`, so the gateway describes them in
the prompt instead (`gateway.compat.emulation`): a "You can call the following tools
(functions)." section listing each tool as `## name`, its description and
`Parameters (JSON Schema):` followed by the schema, asking for
`<tool_call>{"name": ..., "arguments": {...}}</tool_call>` blocks; and "... must be a single
JSON object only ..." with an optional `The object must match this JSON Schema:` schema. Tool
results come back as user messages starting with `[Result of tool call ...]`.

The simulator must not import the gateway's compat layer (it plays OpenAI, which knows nothing
of it), so this module recognises the protocol from the words alone, as a real model would, and
answers in it: a call when the native triggers would call (a forced tool, or the user asking
for one), JSON matching the schema otherwise, plain text after a tool result.

Pure: a function of the messages and a seed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from gateway.simulator.schema_values import arguments_for, value_for_schema
from gateway.simulator.triggers import asks_for_tool, mentioned

TOOLS_MARKER = "You can call the following tools (functions)."
JSON_MARKER = "must be a single JSON object only"
_SCHEMA_LEAD = "The object must match this JSON Schema:"
_PARAMETERS_LEAD = "Parameters (JSON Schema):"
_FORMAT_LEAD = "To call tools,"
_FORCED = re.compile(r"You MUST call the tool `([^`]+)` now")
_REQUIRED = "You MUST call at least one tool now"
# The block the gateway wraps instructions in when it folds them into a user message.
_FOLDED = re.compile(r"\[Instructions\]\n.*?\n\[End of instructions\]\n*", re.DOTALL)
_RESULT = re.compile(r"\A\s*\[Result of (tool|function) call")


@dataclass(frozen=True, slots=True)
class Protocol:
    """What the instructions in a conversation asked for."""

    # (name, parameters schema) per tool, in the order described.
    tools: tuple[tuple[str, Any], ...]
    forced: str | None
    required: bool
    json_output: bool
    schema: Any


def read_protocol(texts: list[str]) -> Protocol | None:
    """The protocol described in the first text that describes one, or None."""
    for text in texts:
        has_tools = TOOLS_MARKER in text
        if not has_tools and JSON_MARKER not in text:
            continue
        forced = _FORCED.search(text)
        return Protocol(
            tools=_tools(text) if has_tools else (),
            forced=forced.group(1) if forced else None,
            required=_REQUIRED in text,
            json_output=JSON_MARKER in text,
            schema=_json_after(text, _SCHEMA_LEAD),
        )
    return None


def protocol_answer(protocol: Protocol, last_user_text: str, plain_text: str) -> str:
    """The answer in the protocol: a <tool_call> block, JSON, or `plain_text` as it is."""
    if _RESULT.match(last_user_text) is None:
        tool = _triggered(protocol, _FOLDED.sub("", last_user_text))
        if tool is not None:
            name, parameters = tool
            call = json.dumps({"name": name, "arguments": arguments_for(parameters)})
            return f"<tool_call>{call}</tool_call>"
    if protocol.json_output:
        if protocol.schema is not None:
            # `{}` leaves the type open, but the answer is an object all the same.
            return json.dumps(value_for_schema(protocol.schema or {"type": "object"}))
        return json.dumps({"answer": plain_text})
    return plain_text


def _triggered(protocol: Protocol, request: str) -> tuple[str, Any] | None:
    """The tool to call, by the same triggers as native tools."""
    if not protocol.tools:
        return None
    by_name = dict(protocol.tools)
    if protocol.forced is not None:
        return (protocol.forced, by_name.get(protocol.forced))
    named = mentioned(by_name, request)
    if named is not None:
        return (named, by_name[named])
    if protocol.required or asks_for_tool(request):
        return protocol.tools[0]
    return None


def _tools(text: str) -> tuple[tuple[str, Any], ...]:
    """Each `## name` section between the tools marker and the answer-format rules."""
    start = text.index(TOOLS_MARKER) + len(TOOLS_MARKER)
    end = text.find(_FORMAT_LEAD, start)
    section = text[start : end if end >= 0 else len(text)]
    tools: list[tuple[str, Any]] = []
    for block in re.split(r"^## ", section, flags=re.MULTILINE)[1:]:
        name, _, rest = block.partition("\n")
        tools.append((name.strip(), _json_after(rest, _PARAMETERS_LEAD)))
    return tuple(tools)


def _json_after(text: str, lead: str) -> Any:
    """The JSON value that follows `lead` in `text`; None when absent or unreadable."""
    at = text.find(lead)
    if at < 0:
        return None
    rest = text[at + len(lead) :].lstrip()
    try:
        value, _ = json.JSONDecoder().raw_decode(rest)
    except ValueError:
        return None
    return value
