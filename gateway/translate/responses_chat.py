"""A Responses API client served by a chat completions backend.

o1-preview and o1-mini never got the Responses API (OpenAI answers 400 "not supported with the
Responses API"), so the gateway serves `POST /v1/responses` for them by translating: the request
(with the items of its `previous_response_id` chain) becomes a chat request, which then goes
through the chat path and its o1 compat patches; the chat.completion comes back as a Response.
`responses_chat_stream` does the same for streams.

Only what chat completions can express survives: function tools, text and images, JSON output.
OpenAI's hosted tools are refused up front rather than silently dropped, because a client that
asked for web search must not get an answer that merely looks searched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from gateway.wire import errors

__all__ = [
    "INCOMPLETE",
    "NewId",
    "chat_request",
    "finished",
    "function_call_item",
    "input_items",
    "message_item",
    "response_object",
    "response_shell",
    "usage_to_responses",
]

NewId = Callable[[str], str]

_ROLES = ("user", "assistant", "system", "developer")
_ITEM_TYPES = ("message", "function_call", "function_call_output", "reasoning")
_TYPE_NAMES: dict[type, str] = {
    str: "a string",
    int: "an integer",
    float: "a decimal",
    bool: "a boolean",
    dict: "an object",
    list: "an array",
    type(None): "null",
}
# Request fields chat completions takes unchanged (a client's `safety_identifier` is folded
# into its team's there, as a native request's is). `prompt_cache_key` routes the prompt to
# upstream's cache as it does for the Responses API: dropped, a client's caching would be lost.
_KEPT = ("model", "temperature", "top_p", "user", "safety_identifier", "prompt_cache_key", "stream")


# -- the request ----------------------------------------------------------------------------------


def input_items(payload: dict[str, Any], new_id: NewId) -> list[dict[str, Any]]:
    """The request's `input` as stored input items, each with an id (the client's when given)."""
    given = payload.get("input")
    if given is None:
        return []  # allowed: the conversation may be all in `previous_response_id`
    if isinstance(given, str):
        return [_message(new_id("msg_"), "user", [_text_part("user", given)])]
    if not isinstance(given, list):
        raise _wrong_type("input", "one of a string or array of input items", given)
    return [_input_item(f"input[{i}]", item, new_id) for i, item in enumerate(given)]


def _input_item(param: str, item: Any, new_id: NewId) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise _wrong_type(param, "an object", item)
    kind = item.get("type", "message")  # the easy form {"role", "content"} has no type
    if kind == "message":
        role = _required(item, "role", param, str)
        if role not in _ROLES:
            raise errors.invalid_value(f"{param}.role", str(role), _ROLES)
        content = _content(f"{param}.content", role, item.get("content"))
        out = _message(item.get("id") or new_id("msg_"), role, content)
        if role == "assistant":
            out["status"] = item.get("status") or "completed"
        return out
    if kind == "function_call":
        return {
            "id": item.get("id") or new_id("fc_"),
            "type": "function_call",
            "status": item.get("status") or "completed",
            "arguments": _required(item, "arguments", param, str),
            "call_id": _required(item, "call_id", param, str),
            "name": _required(item, "name", param, str),
        }
    if kind == "function_call_output":
        output = _required(item, "output", param, (str, list))
        if isinstance(output, list):
            # Read as text below: a part that is no object, or text that is no string, is the
            # client's 400, not a failure of the join.
            _content(f"{param}.output", "user", output)
        return {
            "id": item.get("id") or new_id("fco_"),
            "type": "function_call_output",
            "status": item.get("status") or "completed",
            "call_id": _required(item, "call_id", param, str),
            "output": output,
        }
    if kind == "reasoning":
        # Another model's reasoning, replayed: kept for the record, unreadable to o1 (chat
        # completions has no place for it), so `chat_request` leaves it out.
        return {**item, "id": item.get("id") or new_id("rs_")}
    raise errors.invalid_value(f"{param}.type", str(kind), _ITEM_TYPES)


def _content(param: str, role: str, content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [_text_part(role, content)]
    if not isinstance(content, list):
        raise _wrong_type(param, "one of a string or array of content parts", content)
    parts = []
    for j, part in enumerate(content):
        if not isinstance(part, dict):
            raise _wrong_type(f"{param}[{j}]", "an object", part)
        kind = part.get("type")
        if kind in ("input_text", "output_text"):
            _required(part, "text", f"{param}[{j}]", str)
        elif kind == "refusal":
            _required(part, "refusal", f"{param}[{j}]", str)
        elif kind not in ("input_image", "input_file"):
            supported = ("input_text", "input_image", "input_file", "output_text", "refusal")
            raise errors.invalid_value(f"{param}[{j}].type", str(kind), supported)
        parts.append(part)
    return parts


def _text_part(role: str, text: str) -> dict[str, Any]:
    if role == "assistant":
        return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    return {"type": "input_text", "text": text}


def _message(item_id: str, role: str, content: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": item_id, "type": "message", "role": role, "content": content}


# What a Responses request includes to have its text's logprobs.
LOGPROBS_INCLUDED = "message.output_text.logprobs"


def chat_request(payload: dict[str, Any], history: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A Responses request as a chat completions request; `history` is the earlier items of the
    `previous_response_id` chain, inputs and outputs in order."""
    messages: list[dict[str, Any]] = []
    instructions = payload.get("instructions")
    if isinstance(instructions, str):
        # Not carried over from earlier responses (OpenAI's rule), so only this request's.
        messages.append({"role": "system", "content": instructions})
    for item in [*history, *input_items(payload, lambda prefix: prefix)]:
        _add_item(messages, item)
    out: dict[str, Any] = {key: payload[key] for key in _KEPT if key in payload}
    out["messages"] = messages
    if payload.get("stream"):
        out["stream_options"] = {"include_usage": True}  # the final event needs the usage
    if payload.get("max_output_tokens") is not None:
        out["max_completion_tokens"] = payload["max_output_tokens"]
    reasoning = payload.get("reasoning")
    if isinstance(reasoning, dict) and reasoning.get("effort") is not None:
        out["reasoning_effort"] = reasoning["effort"]
    model = str(payload.get("model"))
    if payload.get("tools"):
        out["tools"] = [_chat_tool(i, tool, model) for i, tool in enumerate(payload["tools"])]
    if "tool_choice" in payload:
        choice = _chat_tool_choice(payload["tool_choice"], model)
        # The Responses API takes a choice (and `parallel_tool_calls`) without tools; chat
        # refuses either.
        if "tools" in out:
            out["tool_choice"] = choice
    if "tools" in out and "parallel_tool_calls" in payload:
        out["parallel_tool_calls"] = payload["parallel_tool_calls"]
    response_format = _response_format(payload.get("text"))
    if response_format is not None:
        out["response_format"] = response_format
    included = payload.get("include")
    if isinstance(included, list) and LOGPROBS_INCLUDED in included:
        # Chat's way of asking for them: a model without logprobs has them dropped there, and
        # says so (`x-gateway-patched`), as a chat request's would, not passed over unsaid.
        out["logprobs"] = True
        if payload.get("top_logprobs") is not None:
            out["top_logprobs"] = payload["top_logprobs"]
    return out


def _add_item(messages: list[dict[str, Any]], item: dict[str, Any]) -> None:
    kind = item.get("type", "message")
    if kind == "message":
        messages.append(_chat_message(item["role"], item["content"]))
    elif kind == "function_call":
        call = {
            "id": item["call_id"],
            "type": "function",
            "function": {"name": item["name"], "arguments": item["arguments"]},
        }
        last = messages[-1] if messages else None
        # A response's text and its calls, or its parallel calls, were one chat message.
        if last is not None and last["role"] == "assistant":
            last.setdefault("tool_calls", []).append(call)
        else:
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
    elif kind == "function_call_output":
        output = item["output"]
        if isinstance(output, list):
            output = "".join(p.get("text", "") for p in output if isinstance(p, dict))
        messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": output})


def _chat_message(role: str, content: list[dict[str, Any]]) -> dict[str, Any]:
    texts = [p["text"] for p in content if p.get("type") in ("input_text", "output_text")]
    refusals = [p["refusal"] for p in content if p.get("type") == "refusal"]
    if role == "assistant":
        message: dict[str, Any] = {"role": role, "content": "".join(texts) if texts else None}
        if refusals:
            message["refusal"] = "".join(refusals)
        return message
    if all(p.get("type") in ("input_text", "output_text") for p in content):
        # A plain string is what every chat model (and the o1 patches) handles best.
        return {"role": role, "content": "".join(texts)}
    return {"role": role, "content": [_chat_part(part) for part in content]}


def _chat_part(part: dict[str, Any]) -> dict[str, Any]:
    kind = part.get("type")
    if kind == "input_image":
        image: dict[str, Any] = {"url": part.get("image_url")}
        if part.get("detail") is not None:
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_file":
        keys = ("file_id", "file_data", "filename")
        return {"type": "file", "file": {k: part[k] for k in keys if part.get(k) is not None}}
    return {"type": "text", "text": part.get("text", part.get("refusal", ""))}


def _chat_tool(index: int, tool: Any, model: str) -> dict[str, Any]:
    if not isinstance(tool, dict):
        raise _wrong_type(f"tools[{index}]", "an object", tool)
    if tool.get("type") != "function":
        raise errors.tool_unsupported(f"tools[{index}].type", str(tool.get("type")), model)
    keys = ("name", "description", "parameters", "strict")
    return {"type": "function", "function": {k: tool[k] for k in keys if tool.get(k) is not None}}


def _chat_tool_choice(choice: Any, model: str) -> Any:
    if not isinstance(choice, dict):
        return choice
    if choice.get("type") != "function":
        raise errors.tool_unsupported("tool_choice.type", str(choice.get("type")), model)
    return {"type": "function", "function": {"name": choice.get("name")}}


def _response_format(text: Any) -> dict[str, Any] | None:
    form = text.get("format") if isinstance(text, dict) else None
    kind = form.get("type") if isinstance(form, dict) else None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind != "json_schema" or not isinstance(form, dict):
        return None
    keys = ("name", "schema", "strict", "description")
    return {"type": "json_schema", "json_schema": {k: form[k] for k in keys if k in form}}


def _required(obj: dict[str, Any], key: str, param: str, kind: type | tuple[type, ...]) -> Any:
    if key not in obj:
        raise errors.missing_parameter(f"{param}.{key}")
    value = obj[key]
    if not isinstance(value, kind):
        names = [_TYPE_NAMES[k] for k in (kind if isinstance(kind, tuple) else (kind,))]
        raise _wrong_type(f"{param}.{key}", " or ".join(names), value)
    return value


def _wrong_type(param: str, expected: str, value: Any) -> errors.GatewayError:
    return errors.invalid_type(param, expected, _TYPE_NAMES.get(type(value), "an unknown type"))


# -- the answer -----------------------------------------------------------------------------------


def usage_to_responses(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    """Chat usage in the Responses API's words."""
    if not usage:
        return None
    prompt = usage.get("prompt_tokens_details") or {}
    completion = usage.get("completion_tokens_details") or {}
    input_tokens = usage.get("prompt_tokens") or 0
    output_tokens = usage.get("completion_tokens") or 0
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {
            "cached_tokens": prompt.get("cached_tokens") or 0,
            # 2026 field, which current SDKs require: chat never writes a cache explicitly.
            "cache_write_tokens": prompt.get("cache_write_tokens") or 0,
        },
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": completion.get("reasoning_tokens") or 0},
        "total_tokens": usage.get("total_tokens") or input_tokens + output_tokens,
    }


# finish_reason -> incomplete_details.reason
INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def response_object(
    completion: dict[str, Any],
    payload: dict[str, Any],
    *,
    response_id: str,
    created_at: int,
    new_id: NewId,
) -> dict[str, Any]:
    """A chat.completion as a finished Response object."""
    choices = completion.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    reason = INCOMPLETE.get(str(choice.get("finish_reason")))
    status = "incomplete" if reason else "completed"
    output: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    if message.get("content"):
        parts.append(_text_part("assistant", message["content"]))
    if message.get("refusal"):
        parts.append({"type": "refusal", "refusal": message["refusal"]})
    if parts:
        output.append(message_item(new_id("msg_"), parts, status))
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        output.append(
            function_call_item(
                new_id("fc_"), call.get("id"), function.get("name"), function.get("arguments")
            )
        )
    shell = response_shell(
        payload, response_id=response_id, created_at=created_at, model=completion.get("model")
    )
    return finished(
        shell, status, output, completion.get("usage"), reason, created_at,
        completion.get("service_tier"),
    )  # fmt: skip


def message_item(item_id: str, parts: list[dict[str, Any]], status: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": parts,
    }


def function_call_item(
    item_id: str, call_id: Any, name: Any, arguments: Any, status: str = "completed"
) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "arguments": arguments if isinstance(arguments, str) else "",
        "call_id": call_id,
        "name": name,
    }


def finished(
    shell: dict[str, Any],
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None,
    reason: str | None,
    completed_at: int,
    served: Any,
) -> dict[str, Any]:
    """The shell with its outcome: `reason` is the incomplete_details reason, if any;
    `served`, the `service_tier` the chat answer names (None: it names none)."""
    return {
        **shell,
        "status": status,
        # The tier that served it, which upstream bills; one the answer does not name was
        # the standard tier, as OpenAI's finished Response says of a request naming none.
        "service_tier": served if isinstance(served, str) and served else "default",
        "completed_at": completed_at if status == "completed" else None,
        "incomplete_details": {"reason": reason} if reason else None,
        "output": output,
        "usage": usage_to_responses(usage),
    }


def response_shell(
    payload: dict[str, Any], *, response_id: str, created_at: int, model: Any
) -> dict[str, Any]:
    """The Response object in progress: the request's settings echoed with OpenAI's defaults."""
    reasoning = _object(payload.get("reasoning"))
    text = _object(payload.get("text"))
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": "in_progress",
        "background": False,
        "completed_at": None,
        "error": None,
        "incomplete_details": None,
        "instructions": payload.get("instructions"),
        "max_output_tokens": payload.get("max_output_tokens"),
        "max_tool_calls": None,
        "model": model or payload.get("model"),
        "output": [],
        "parallel_tool_calls": payload.get("parallel_tool_calls", True),
        "previous_response_id": payload.get("previous_response_id"),
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        # Before the answer names the tier that serves it, OpenAI's in-progress Response
        # echoes the one asked for (`auto` when none is).
        "service_tier": payload.get("service_tier") or "auto",
        "store": payload.get("store", True),
        "temperature": payload.get("temperature", 1.0),
        "text": {"format": text.get("format") or {"type": "text"}},
        "tool_choice": payload.get("tool_choice", "auto"),
        "tools": payload.get("tools") or [],
        "top_p": payload.get("top_p", 1.0),
        "truncation": payload.get("truncation") or "disabled",
        "usage": None,
        "user": payload.get("user"),
        "metadata": payload.get("metadata") or {},
    }


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
