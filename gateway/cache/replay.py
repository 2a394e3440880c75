"""A kept answer sent again as the stream a miss would have sent. Pure.

Chat: the real chunk sequence (`compat.fake_stream`: a role delta, word-sized deltas, the
finish chunk, the usage chunk when the client asked for it, `[DONE]`). Responses: OpenAI's
event sequence for each output item (added, content parts and their deltas, done), between
`response.created`/`response.in_progress` and `response.completed`, numbered from 0.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.compat import fake_stream

# Part kind -> the event family and the field that carries its text.
_FAMILY = {
    "output_text": ("response.output_text", "text"),
    "refusal": ("response.refusal", "refusal"),
}


def chat_stream(completion: dict[str, Any], *, include_usage: bool) -> bytes:
    return fake_stream.encode_completion(completion, include_usage=include_usage)


def responses_stream(response: dict[str, Any]) -> bytes:
    opening = {
        **response, "status": "in_progress", "output": [], "usage": None,
        "incomplete_details": None,
    }  # fmt: skip
    if "completed_at" in response:
        opening["completed_at"] = None
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": opening},
        {"type": "response.in_progress", "response": opening},
    ]
    for index, item in enumerate(response.get("output") or ()):
        if isinstance(item, dict):
            events += _item_events(index, item)
    events.append({"type": "response.completed", "response": response})
    return b"".join(
        b"event: " + event["type"].encode() + b"\ndata: "
        + orjson.dumps({**event, "sequence_number": n}) + b"\n\n"
        for n, event in enumerate(events)
    )  # fmt: skip


def _item_events(index: int, item: dict[str, Any]) -> list[dict[str, Any]]:
    kind = item.get("type")
    opened: dict[str, Any] = {**item, "status": "in_progress"} if "status" in item else dict(item)
    where = {"item_id": item.get("id"), "output_index": index}
    body: list[dict[str, Any]] = []
    if kind == "message":
        opened["content"] = []
        for at, part in enumerate(item.get("content") or ()):
            body += _part_events(where, at, part)
    elif kind == "function_call":
        opened["arguments"] = ""
        arguments = item.get("arguments") or ""
        if arguments:
            body.append(
                {"type": "response.function_call_arguments.delta", **where, "delta": arguments}
            )
        body.append(
            {
                "type": "response.function_call_arguments.done", **where,
                "name": item.get("name"), "arguments": arguments,
            }
        )  # fmt: skip
    return [
        {"type": "response.output_item.added", "output_index": index, "item": opened},
        *body,
        {"type": "response.output_item.done", "output_index": index, "item": item},
    ]


def _part_events(where: dict[str, Any], at: int, part: Any) -> list[dict[str, Any]]:
    family = _FAMILY.get(str(part.get("type"))) if isinstance(part, dict) else None
    if family is None:
        return []
    prefix, field = family
    text = part.get(field) or ""
    extra: dict[str, Any] = {"logprobs": []} if part["type"] == "output_text" else {}
    common = {**where, "content_index": at}
    return [
        {"type": "response.content_part.added", **common, "part": {**part, field: ""}},
        *(
            {"type": f"{prefix}.delta", **common, "delta": piece, **extra}
            for piece in fake_stream.pieces(text)
        ),
        {"type": f"{prefix}.done", **common, field: text, **extra},
        {"type": "response.content_part.done", **common, "part": part},
    ]
