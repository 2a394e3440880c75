"""What a server answered, read back: the text of a chat completion or of a Response object,
whole or streamed, checked for the shape each API gives it. Pure: it gets the bytes of an answer
and returns text or raises ValueError."""

from __future__ import annotations

import json
from typing import Any


def sse_events(raw: bytes) -> list[tuple[str, str]]:
    """A server-sent event stream's events as (event name or "", data), in order; comments and
    blank events are left out."""
    out = []
    for block in raw.decode().replace("\r\n", "\n").split("\n\n"):
        name, data = "", []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
        if name or data:
            out.append((name, "\n".join(data)))
    return out


def _object(data: str | bytes) -> dict[str, Any]:
    value = json.loads(data)
    if not isinstance(value, dict):
        raise ValueError(f"not a JSON object: {data[:200]!r}")
    return value


def chat_text(raw: bytes, streamed: bool) -> str:
    """The answer's text from a chat completion, or from its stream (which must end with
    `data: [DONE]`); ValueError if it is neither."""
    if streamed:
        events = [data for _, data in sse_events(raw)]
        if len(events) < 2 or events[-1] != "[DONE]":
            raise ValueError(f"does not end with data: [DONE]: {raw[-200:]!r}")
        return "".join(
            (choice.get("delta") or {}).get("content") or ""
            for event in events[:-1]
            for choice in _object(event).get("choices") or []
        )
    answer = _object(raw)
    if answer.get("object") != "chat.completion" or not answer.get("choices"):
        raise ValueError(f"not a chat.completion: {raw[:200]!r}")
    return answer["choices"][0]["message"]["content"] or ""


def output_text(response: dict[str, Any]) -> str:
    """The text of a Response object's output messages (what the SDKs call output_text)."""
    output = response.get("output")
    return "".join(
        part.get("text") or ""
        for item in (output if isinstance(output, list) else [])
        if isinstance(item, dict) and item.get("type") == "message"
        for part in item.get("content") or []
        if isinstance(part, dict) and part.get("type") == "output_text"
    )


def _completed(response: object, raw: bytes) -> dict[str, Any]:
    if (
        not isinstance(response, dict)
        or response.get("object") != "response"
        or response.get("status") != "completed"
    ):
        raise ValueError(f"not a completed response: {raw[:300]!r}")
    return response


def responses_text(raw: bytes, streamed: bool) -> str:
    """The answer's text from a Response object, or from its event stream: that must end with
    `event: response.completed` carrying the completed Response, and its text deltas must add up
    to that Response's text. ValueError otherwise."""
    if not streamed:
        return output_text(_completed(_object(raw), raw))
    events = sse_events(raw)
    if not events or events[-1][0] != "response.completed":
        raise ValueError(f"does not end with event: response.completed: {raw[-200:]!r}")
    final = _completed(_object(events[-1][1]).get("response"), raw[-300:])
    deltas = "".join(
        _object(data).get("delta") or ""
        for name, data in events
        if name == "response.output_text.delta"
    )
    if deltas != output_text(final):
        raise ValueError(f"the text deltas do not add up to the response's text: {raw[-300:]!r}")
    return deltas
