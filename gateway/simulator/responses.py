"""A Responses API request (`POST /v1/responses`): its checks, its input items, and the chat
request it amounts to.

The simulated model answers a Responses request exactly as it answers the equivalent chat
request (same text for the same conversation, same tool triggers, same token counts), so this
module only translates: `instructions` becomes a leading system message, input items become chat
messages (function calls an assistant message with `tool_calls`, their outputs `tool` messages),
flat function tools become chat's nested ones, `text.format` becomes `response_format` and
`max_output_tokens` becomes `max_completion_tokens`.

The world is September 2024's with the Responses API added: gpt-4o and gpt-4o-mini serve it;
o1-preview and o1-mini refuse it (as OpenAI refused them when it launched). Today's GPT-6 models
serve it with `reasoning.effort` in their range and function tools at every effort; like gpt-5
they refuse `temperature`/`top_p` other than 1 (and `top_logprobs`) unless at effort `none`.

Pure: checks and conversions of the request body; item ids come from seeds passed in.
"""

from __future__ import annotations

from typing import Any

from gateway.simulator import openai_errors as oe
from gateway.simulator.efforts import effort_error, effort_of
from gateway.simulator.ids import response_item_id
from gateway.simulator.openai_errors import SimError
from gateway.simulator.rules import ChatModel, integer_error, resolve_chat_model
from gateway.wire.hosted_tools import PRICE_NAMES
from gateway.wire.validation import (
    TOOL_CHOICES,
    responses_extras_error,
    responses_tool_choice_error,
    responses_value_error,
)

MIN_OUTPUT_TOKENS = 16
ROLES = ("assistant", "system", "developer", "user")
ITEM_TYPES = ("message", "function_call", "function_call_output", "item_reference", "reasoning")
PART_TYPES = ("input_text", "output_text", "input_image", "refusal")
TOOL_TYPES = ("function", "mcp", *PRICE_NAMES)
FORMAT_TYPES = ("text", "json_object", "json_schema")
VERBOSITIES = ("low", "medium", "high")
KNOWN_PARAMETERS = frozenset(
    {
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "text",
        "max_output_tokens",
        "temperature",
        "top_p",
        "store",
        "previous_response_id",
        "background",
        "stream",
        "stream_options",
        "metadata",
        "reasoning",
        "include",
        "parallel_tool_calls",
        "truncation",
        "user",
        "service_tier",
        "top_logprobs",
        "max_tool_calls",
        "prompt",
        "prompt_cache_key",
        "safety_identifier",
    }
)


def resolve_model(body: dict[str, Any]) -> ChatModel | SimError:
    """The model serving the request, or why none does."""
    name = body.get("model")
    if not isinstance(name, str) or not name:
        return oe.missing_parameter("model")
    model = resolve_chat_model(name)
    if model is None:
        return oe.model_not_found(name)
    if not model.family.responses_api:
        return oe.model_not_in_responses(name)
    return model


def check(body: dict[str, Any], model: ChatModel) -> SimError | None:
    """The first problem OpenAI would report with this request (model already resolved)."""
    for name in body:
        if name not in KNOWN_PARAMETERS:
            return oe.unknown_parameter(name)
    return (
        _check_input(body)
        or _check_prompt(body)
        or _check_values(body, model)
        or _check_tools(body)
        or _check_format(body)
    )


def _check_input(body: dict[str, Any]) -> SimError | None:
    given = body.get("input")
    if given is None:
        # A chained request may add nothing new; otherwise there is nothing to answer.
        return None if body.get("previous_response_id") else oe.missing_parameter("input")
    if isinstance(given, str):
        return None
    if not isinstance(given, list):
        return oe.invalid_type("input", "a string or an array of input items", given)
    for i, item in enumerate(given):
        if not isinstance(item, dict):
            return oe.invalid_type(f"input[{i}]", "an object", item)
        kind = _item_type(item)
        if kind not in ITEM_TYPES:
            return oe.invalid_value(f"input[{i}].type", kind, ITEM_TYPES)
        error = _check_item(item, kind, f"input[{i}]")
        if error is not None:
            return error
    return None


def _check_prompt(body: dict[str, Any]) -> SimError | None:
    """A stored prompt template, named by its id. The simulator keeps no templates: one adds
    no text, and brings the hosted tools `x-sim-prompt-tools` names (`hosted_calls`)."""
    given = body.get("prompt")
    if given is None:
        return None
    if not isinstance(given, dict):
        return oe.invalid_type("prompt", "an object", given)
    if not isinstance(given.get("id"), str):
        return oe.missing_parameter("prompt.id")
    return None


def _check_item(item: dict[str, Any], kind: str, where: str) -> SimError | None:
    if kind == "reasoning":  # given back: its summary (maybe empty), its id or content
        summary = item.get("summary")
        return None if isinstance(summary, list) else oe.missing_parameter(f"{where}.summary")
    required = {
        "message": ("role", "content"),
        "function_call": ("call_id", "name", "arguments"),
        "function_call_output": ("call_id", "output"),
        "item_reference": ("id",),
    }[kind]
    for name in required:
        if item.get(name) is None:
            return oe.missing_parameter(f"{where}.{name}")
    if kind != "message":
        for name in required:
            value = item[name]
            # An output may be content parts too; every other field is a string.
            if not isinstance(value, str) and not (name == "output" and isinstance(value, list)):
                return oe.invalid_type(f"{where}.{name}", "a string", value)
        return None
    if item["role"] not in ROLES:
        return oe.invalid_value(f"{where}.role", item["role"], ROLES)
    content = item["content"]
    if isinstance(content, str):
        return None
    if not isinstance(content, list):
        return oe.invalid_type(f"{where}.content", "a string or an array of content parts", content)
    for j, part in enumerate(content):
        part_type = part.get("type") if isinstance(part, dict) else None
        if part_type not in PART_TYPES:
            return oe.invalid_value(f"{where}.content[{j}].type", part_type, PART_TYPES)
    return None


def _check_values(body: dict[str, Any], model: ChatModel) -> SimError | None:
    limit = body.get("max_output_tokens")
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int):
            return oe.invalid_type("max_output_tokens", "an integer", limit)
        if limit < MIN_OUTPUT_TOKENS:
            return oe.below_minimum("max_output_tokens", MIN_OUTPUT_TOKENS, limit)
        if limit > model.max_output:
            return oe.max_output_too_large("max_output_tokens", limit, model.max_output)
    for name, maximum in (("temperature", 2), ("top_p", 1)):
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            return oe.invalid_type(name, "a number", value)
        if value < 0:
            return oe.below_minimum(name, 0, value, "decimal")
        if value > maximum:
            return oe.above_maximum(name, maximum, value, "decimal")
    # gpt-4o does not reason: any effort is refused, an empty object or null effort is not.
    family = model.family
    error = effort_error(_sent_effort(body), family.efforts, "reasoning.effort")
    if error is not None:
        return error
    # What OpenAI refuses whatever the model, shared with the gateway's patches.
    refused = responses_value_error(body)
    if refused is not None:
        return oe.from_gateway(refused)
    if not (family.sampling or family.plain(effort(body, model))):
        for name in ("temperature", "top_p"):
            value = body.get(name)
            if value is not None and value != 1:
                return oe.unsupported_parameter(name)
        if body.get("top_logprobs") is not None:
            return oe.unsupported_parameter("top_logprobs")
    if body.get("background") is True and body.get("store") is False:
        return oe.background_needs_store()
    previous = body.get("previous_response_id")
    if previous is not None and not isinstance(previous, str):
        return oe.invalid_type("previous_response_id", "a string", previous)
    calls = body.get("max_tool_calls")
    if calls is not None and (error := integer_error("max_tool_calls", calls, 0)) is not None:
        return error
    # Shared with the gateway, which checks them where it translates a request.
    refused = responses_extras_error(body)
    return None if refused is None else oe.from_gateway(refused)


def _sent_effort(body: dict[str, Any]) -> Any:
    reasoning = body.get("reasoning")
    return reasoning.get("effort") if isinstance(reasoning, dict) else None


def effort(body: dict[str, Any], model: ChatModel) -> str | None:
    """The effort the (checked) request runs at; None for a model without efforts."""
    return effort_of(_sent_effort(body), model.family.default_effort)


def _check_tools(body: dict[str, Any]) -> SimError | None:
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            return oe.invalid_type("tools", "an array of objects", tools)
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict):
                return oe.invalid_type(f"tools[{i}]", "an object", tool)
            kind = tool.get("type")
            if kind in PRICE_NAMES:
                error = _check_hosted(tool, kind, f"tools[{i}]")
                if error is not None:
                    return error
                continue
            if kind == "mcp":
                error = _check_mcp(tool, f"tools[{i}]")
                if error is not None:
                    return error
                continue
            if kind != "function":
                return oe.invalid_value(f"tools[{i}].type", kind, TOOL_TYPES)
            # Chat's nested {"function": {...}} shape lands here: the name is not at the top.
            if not isinstance(tool.get("name"), str):
                return oe.missing_parameter(f"tools[{i}].name")
    choice = body.get("tool_choice")
    refused = responses_tool_choice_error(choice)
    if refused is not None:
        return oe.from_gateway(refused)
    if choice is None or isinstance(choice, str):
        return None
    if isinstance(choice, dict) and choice.get("type") == "function":
        return None
    return oe.invalid_value("tool_choice", choice, TOOL_CHOICES)


def _check_hosted(tool: dict[str, Any], kind: str, where: str) -> SimError | None:
    """A hosted tool's own fields: a file search's stores, a code interpreter's container."""
    if kind == "file_search":
        stores = tool.get("vector_store_ids")
        if not isinstance(stores, list):
            return oe.missing_parameter(f"{where}.vector_store_ids")
    if kind == "code_interpreter" and tool.get("container") is None:
        return oe.missing_parameter(f"{where}.container")
    return None


def _check_mcp(tool: dict[str, Any], where: str) -> SimError | None:
    """A remote MCP server names itself, and where it is (a URL or a connector)."""
    if not isinstance(tool.get("server_label"), str):
        return oe.missing_parameter(f"{where}.server_label")
    if tool.get("server_url") is None and tool.get("connector_id") is None:
        return oe.missing_parameter(f"{where}.server_url")
    return None


def _check_format(body: dict[str, Any]) -> SimError | None:
    text = body.get("text")
    if text is None:
        return None
    if not isinstance(text, dict):
        return oe.invalid_type("text", "an object", text)
    verbosity = text.get("verbosity")
    if verbosity is not None and verbosity not in VERBOSITIES:
        return oe.invalid_value("text.verbosity", verbosity, VERBOSITIES)
    fmt = text.get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict):
        return oe.invalid_type("text.format", "an object", fmt)
    kind = fmt.get("type")
    if kind not in FORMAT_TYPES:
        return oe.invalid_value("text.format.type", kind, FORMAT_TYPES)
    if kind == "json_schema":
        for name in ("name", "schema"):
            if fmt.get(name) is None:
                return oe.missing_parameter(f"text.format.{name}")
    if kind == "json_object" and "json" not in _all_text(body).lower():
        return oe.json_word_required_in_input()
    return None


def _all_text(body: dict[str, Any]) -> str:
    instructions = body.get("instructions")
    given = body.get("input")
    items = [{"role": "user", "content": given}] if isinstance(given, str) else given or []
    texts = [instructions if isinstance(instructions, str) else ""]
    texts.extend(_text(item.get("content")) for item in items if isinstance(item, dict))
    return " ".join(texts)


# --- input items ------------------------------------------------------------------------------


def input_items(body: dict[str, Any], id_seed: int) -> list[dict[str, Any]]:
    """The request's input as stored items with ids, as `/input_items` lists them.

    Item i takes its id from `id_seed + i`; an id the client sent is kept.
    """
    given = body.get("input")
    if given is None:
        return []
    raw = [{"role": "user", "content": given}] if isinstance(given, str) else given
    return [_stored_item(item, id_seed + i) for i, item in enumerate(raw)]


def _stored_item(item: dict[str, Any], seed: int) -> dict[str, Any]:
    kind = _item_type(item)
    if kind == "reasoning":
        return {**item, "id": item.get("id") or response_item_id("rs", seed)}
    if kind == "function_call":
        return {
            "id": item.get("id") or response_item_id("fc", seed),
            "type": "function_call",
            "status": "completed",
            "arguments": item["arguments"],
            "call_id": item["call_id"],
            "name": item["name"],
        }
    if kind == "function_call_output":
        return {
            # Prefix unconfirmed by a recording; OpenAI's own items use short prefixes like this.
            "id": item.get("id") or response_item_id("fco", seed),
            "type": "function_call_output",
            "status": "completed",
            "call_id": item["call_id"],
            "output": item["output"],
        }
    role = item["role"]
    content = item["content"]
    if isinstance(content, str):
        part: dict[str, Any] = {"type": "input_text", "text": content}
        if role == "assistant":
            part = {"type": "output_text", "text": content, "annotations": []}
        content = [part]
    return {
        "id": item.get("id") or response_item_id("msg", seed),
        "type": "message",
        "role": role,
        "content": content,
        "status": "completed",
    }


def as_messages(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stored items (input or output) as the chat messages they amount to."""
    messages: list[dict[str, Any]] = []
    for item in items:
        kind = _item_type(item)
        if kind == "function_call":
            call = {
                "id": item["call_id"],
                "type": "function",
                "function": {"name": item["name"], "arguments": item["arguments"]},
            }
            last = messages[-1] if messages else None
            # Parallel calls are one assistant turn in chat.
            if last is not None and last["role"] == "assistant" and last.get("tool_calls"):
                last["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item["output"]
            content = output if isinstance(output, str) else _text(output)
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": content})
        elif kind == "message":
            messages.append({"role": item["role"], "content": _text(item.get("content"))})
        # Other items (a hosted tool's call, a reasoning item) come back in a chained history or
        # by reference, and are no chat message: no text of theirs reaches the model.
    return messages


def query_of(items: list[dict[str, Any]]) -> str:
    """What a hosted tool searches for: the start of the last input item's text."""
    return _text(items[-1].get("content"))[:80] if items else ""


def _item_type(item: dict[str, Any]) -> str:
    # A bare {"role", "content"} is a message (the easy input form).
    kind = item.get("type")
    return str(kind) if kind is not None else "message"


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


# --- the equivalent chat request ----------------------------------------------------------------


def instruction_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        return [{"role": "system", "content": instructions}]
    return []


def chat_body(body: dict[str, Any], messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The chat request the model answers: same conversation, tools, format and output cap.

    Once the conversation ends with a tool result the tools are left out, so the answer is text
    and an agent loop ends (the chat answer never calls after a result in "auto" mode either, but
    a forced `tool_choice` would call again forever).
    """
    chat: dict[str, Any] = {"model": body["model"], "messages": messages}
    # Hosted tools run upstream (`hosted_calls`): the model calls only its function tools.
    given = body.get("tools")
    tools = [tool for tool in given if tool.get("type") == "function"] if given else []
    ends_with_result = bool(messages) and messages[-1]["role"] == "tool"
    if tools and not ends_with_result:
        chat["tools"] = [{"type": "function", "function": _function(tool)} for tool in tools]
        choice = body.get("tool_choice")
        if isinstance(choice, dict) and choice.get("type") == "function":
            chat["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
        elif choice is not None:
            chat["tool_choice"] = choice
    fmt = format_of(body)
    if fmt["type"] == "json_schema":
        spec = {key: fmt[key] for key in ("name", "schema", "strict", "description") if key in fmt}
        chat["response_format"] = {"type": "json_schema", "json_schema": spec}
    elif fmt["type"] == "json_object":
        chat["response_format"] = {"type": "json_object"}
    limit = body.get("max_output_tokens")
    if limit is not None:
        chat["max_completion_tokens"] = limit
    sent_effort = _sent_effort(body)
    if sent_effort is not None:
        chat["reasoning_effort"] = sent_effort
    return chat


def _function(tool: dict[str, Any]) -> dict[str, Any]:
    return {
        key: tool[key] for key in ("name", "description", "parameters", "strict") if key in tool
    }


def format_of(body: dict[str, Any]) -> dict[str, Any]:
    """`text.format`, defaulting to plain text."""
    text = body.get("text")
    fmt = text.get("format") if isinstance(text, dict) else None
    return fmt if isinstance(fmt, dict) else {"type": "text"}
