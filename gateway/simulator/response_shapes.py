"""The Responses API's answer shapes: the `response` object, its output items, its stream events
and the `/input_items` list page.

Shapes follow OpenAI's recorded payloads: output text parts carry `annotations: []` and
`logprobs: []`; function calls are `fc_` items with a `call_...` `call_id` and their arguments as
a JSON string; usage counts `input_tokens`/`output_tokens` with their details objects. A stream
is `event: <type>` + `data: <json>` frames, each with a `sequence_number` from 0, and no
`[DONE]`; each delta is padded (`obfuscation`) unless the request asked for none.

Pure: timestamps, id seeds and the padding's key are passed in.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.simulator import listing
from gateway.simulator.answers import Answer, argument_deltas, served_tier, word_deltas
from gateway.simulator.hosted_calls import STAGES, call_events
from gateway.simulator.ids import response_item_id
from gateway.simulator.mcp_servers import LIST_ITEM, list_events
from gateway.simulator.openai_errors import SimError
from gateway.simulator.responses import format_of
from gateway.wire import obfuscation


def settings(body: dict[str, Any], model: str, effort: str | None = None) -> dict[str, Any]:
    """The request settings every response object echoes, with OpenAI's defaults filled in
    (`effort`: the one a reasoning model ran at)."""
    tools = body.get("tools")
    reasoning = body.get("reasoning")
    return {
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": body.get("max_tool_calls"),
        "model": model,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {
            "effort": effort,
            "summary": reasoning.get("summary") if isinstance(reasoning, dict) else None,
        },
        "service_tier": served_tier(body.get("service_tier"), None),
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": {"format": format_of(body)},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": [_tool(tool) for tool in tools] if isinstance(tools, list) else [],
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation", "disabled"),
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    if tool.get("type") != "function":
        return tool  # a hosted tool, echoed as given
    return {
        "type": "function",
        "name": tool["name"],
        "description": tool.get("description"),
        "parameters": tool.get("parameters"),
        "strict": tool.get("strict", True),
    }


def output_items(answer: Answer, id_seed: int) -> list[dict[str, Any]]:
    """The answer's first choice as output items: one message, or one item per function call."""
    choice = answer.choices[0]
    status = "incomplete" if choice.finish_reason == "length" else "completed"
    if choice.tool_calls:
        return [
            {
                "id": response_item_id("fc", id_seed + i),
                "type": "function_call",
                "status": status,
                "arguments": call.arguments,
                "call_id": call.id,
                "name": call.name,
            }
            for i, call in enumerate(choice.tool_calls)
        ]
    part = {"type": "output_text", "text": choice.content or "", "annotations": [], "logprobs": []}
    return [
        {
            "id": response_item_id("msg", id_seed),
            "type": "message",
            "status": status,
            "role": "assistant",
            "content": [part],
        }
    ]


def usage(answer: Answer) -> dict[str, Any]:
    """Chat's usage under the Responses names: the same counts for the same conversation."""
    output = answer.completion_tokens
    return {
        "input_tokens": answer.prompt_tokens,
        "input_tokens_details": answer.prompt_details(),
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": answer.reasoning_tokens},
        "total_tokens": answer.prompt_tokens + output,
    }


def response_object(
    response_id: str,
    settings: dict[str, Any],
    answer: Answer,
    output: list[dict[str, Any]],
    *,
    created_at: int,
    background: bool,
) -> dict[str, Any]:
    """The finished response: completed, or incomplete when `max_output_tokens` cut it."""
    cut = answer.choices[0].finish_reason == "length"
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": "incomplete" if cut else "completed",
        "background": background,
        "completed_at": created_at,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if cut else None,
        **settings,
        "output": output,
        "usage": usage(answer),
    }


def unfinished(response: dict[str, Any], status: str) -> dict[str, Any]:
    """The response as seen before it finished (queued, in_progress) or once cancelled."""
    return {
        **response,
        "status": status,
        "completed_at": None,
        "error": None,
        "incomplete_details": None,
        "output": [],
        "usage": None,
    }


_FINAL_EVENTS = {"incomplete": "response.incomplete", "failed": "response.failed"}


def stream_events(response: dict[str, Any], key: bytes | None) -> list[dict[str, Any]]:
    """The events of a streamed response, in OpenAI's recorded order, numbered from 0, each
    delta padded from `key` (`wire.obfuscation`; None: not padded)."""
    opening = unfinished(response, "in_progress")
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": opening},
        {"type": "response.in_progress", "response": opening},
    ]
    for index, item in enumerate(response["output"]):
        if item["type"] == "function_call":
            events.extend(_function_call_events(index, item))
        elif item["type"] in STAGES:
            events.extend(call_events(index, item))
        elif item["type"] == LIST_ITEM:
            events.extend(list_events(index, item))
        elif item["type"] == "reasoning":
            events += (
                {"type": f"response.output_item.{stage}", "output_index": index, "item": item}
                for stage in ("added", "done")
            )
        else:
            events.extend(_message_events(index, item))
    final = _FINAL_EVENTS.get(response["status"], "response.completed")
    events.append({"type": final, "response": response})
    return [obfuscation.numbered(event, n, key) for n, event in enumerate(events)]


def _message_events(index: int, item: dict[str, Any]) -> list[dict[str, Any]]:
    where = {"item_id": item["id"], "output_index": index}
    part = item["content"][0]
    text = part["text"]
    return [
        {
            "type": "response.output_item.added",
            "output_index": index,
            "item": {**item, "status": "in_progress", "content": []},
        },
        {
            "type": "response.content_part.added",
            **where,
            "content_index": 0,
            "part": {**part, "text": ""},
        },
        *(
            {
                "type": "response.output_text.delta",
                **where,
                "content_index": 0,
                "delta": piece,
                "logprobs": [],
            }
            for piece in word_deltas(text)
        ),
        {
            "type": "response.output_text.done",
            **where,
            "content_index": 0,
            "text": text,
            "logprobs": [],
        },
        {"type": "response.content_part.done", **where, "content_index": 0, "part": part},
        {"type": "response.output_item.done", "output_index": index, "item": item},
    ]


def _function_call_events(index: int, item: dict[str, Any]) -> list[dict[str, Any]]:
    where = {"item_id": item["id"], "output_index": index}
    return [
        {
            "type": "response.output_item.added",
            "output_index": index,
            "item": {**item, "status": "in_progress", "arguments": ""},
        },
        *(
            {"type": "response.function_call_arguments.delta", **where, "delta": piece}
            for piece in argument_deltas(item["arguments"])
        ),
        {
            "type": "response.function_call_arguments.done",
            **where,
            # The 2025 recording lacks `name`; the SDK's event type has it.
            "name": item["name"],
            "arguments": item["arguments"],
        },
        {"type": "response.output_item.done", "output_index": index, "item": item},
    ]


def event_frame(event: dict[str, Any]) -> bytes:
    """One SSE frame: the event's type as the SSE event name, then its JSON."""
    kind: str = event["type"]
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


def error_frame(error: SimError, sequence_number: int) -> bytes:
    """A mid-stream failure as OpenAI sent one (nested `error`, which the SDK raises on)."""
    event = {
        "type": "error",
        "sequence_number": sequence_number,
        "error": {**error.payload()["error"]},
    }
    return event_frame(event)


def failure_frames(response: dict[str, Any], error: SimError, sequence_number: int) -> bytes:
    """A mid-stream failure as recorded: the error event, then `response.failed` carrying the
    error and no usage."""
    closing = {
        "type": "response.failed",
        "sequence_number": sequence_number + 1,
        "response": failed(response, error),
    }
    return error_frame(error, sequence_number) + event_frame(closing)


def failed(response: dict[str, Any], error: SimError) -> dict[str, Any]:
    """The response once `error` failed it: its `error` as `{code, message}`, no output, no
    usage."""
    detail = error.payload()["error"]
    return {
        **response,
        "status": "failed",
        "completed_at": None,
        "error": {"code": detail["code"] or detail["type"], "message": detail["message"]},
        "output": [],
        "usage": None,
    }


def input_items_page(
    items: list[dict[str, Any]], query: dict[str, str]
) -> dict[str, Any] | SimError:
    """One page of `/input_items`: `limit` (1-100, default 20), `order` (default desc), `after`."""
    return listing.page(items, query, default_order="desc")
