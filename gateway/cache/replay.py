"""A kept answer sent again as the answer, or the stream, a miss would have sent. Pure.

A Response object echoes who asked and where upstream caches its prompt, which the key leaves
out: a hit says the request's own (`as_asked`).

Chat: the real chunk sequence (`compat.fake_stream`: a role delta, word-sized deltas, the
finish chunk, the usage chunk when the client asked for it, `[DONE]`). Responses: OpenAI's
event sequence for each output item (added, content parts or reasoning summary parts and their
deltas, a call's input deltas or a local shell call's commands, done), between `response.created`/`response.in_progress`
and `response.completed`, numbered from 0, each delta padded with random characters
(`wire.obfuscation`) unless the request asked for none, as upstream pads its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from gateway.compat import fake_stream
from gateway.wire import obfuscation

# Call item kind -> the field that carries its input, and the family of events streaming it.
_CALL_INPUT = {
    "function_call": ("arguments", "response.function_call_arguments"),
    "custom_tool_call": ("input", "response.custom_tool_call_input"),
}
# Part kind -> the event family and the field that carries its text.
_FAMILY = {
    "output_text": ("response.output_text", "text"),
    "refusal": ("response.refusal", "refusal"),
}


def as_asked(response: dict[str, Any], echoed: Mapping[str, Any]) -> dict[str, Any]:
    """A kept Response object with the settings in `echoed` (the request's own) in place of
    those of the request it answered, where it echoes them."""
    changed = {
        name: value for name, value in echoed.items()
        if name in response and response[name] != value
    }  # fmt: skip
    return {**response, **changed} if changed else response


def chat_stream(completion: dict[str, Any], *, include_usage: bool) -> bytes:
    listed = completion.get("choices")
    # One choice: a request for several is never kept.
    choice = listed[0] if isinstance(listed, list) and len(listed) == 1 else None
    logprobs = choice.get("logprobs") if isinstance(choice, dict) else None
    if not isinstance(logprobs, dict) or not any(logprobs.get(f) for f in _TEXTS):
        return fake_stream.encode_completion(completion, include_usage=include_usage)
    return fake_stream.encode(_with_logprobs(completion, logprobs, include_usage))


_TEXTS = ("content", "refusal")


def _with_logprobs(
    completion: dict[str, Any], logprobs: dict[str, Any], include_usage: bool
) -> list[dict[str, Any]]:
    """The chunks of a one-choice answer that carries the logprobs its client asked for, as
    upstream streams them: each text's deltas with their tokens' logprobs (`_steps`)."""
    message = completion["choices"][0].get("message") or {}
    out: list[dict[str, Any]] = []
    sent: set[str] = set()
    for chunk in fake_stream.chunks(completion, include_usage=include_usage):
        delta = chunk["choices"][0]["delta"] if chunk["choices"] else {}
        field: str = next(iter(delta)) if len(delta) == 1 else ""
        tokens = logprobs.get(field) if field in _TEXTS else None
        if not isinstance(tokens, list) or not tokens:
            out.append(chunk)
            continue
        if field in sent:
            continue
        sent.add(field)
        text = message.get(field)
        for piece, entries in _steps(text if isinstance(text, str) else "", tokens):
            choice = {**chunk["choices"][0], "delta": {field: piece}}
            choice["logprobs"] = {name: entries if name == field else None for name in _TEXTS}
            out.append({**chunk, "choices": [choice]})
    return out


def responses_stream(response: dict[str, Any], key: bytes | None = None) -> bytes:
    """The event stream of a kept Response object; each delta event padded with characters
    drawn from `key` (`wire.obfuscation`; None: the request asked for no padding)."""
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
        + orjson.dumps(obfuscation.numbered(event, n, key)) + b"\n\n"
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
    elif kind == "reasoning":
        # The summary streams as upstream streams it: each part opened empty, then its text.
        opened["summary"] = []
        for at, part in enumerate(item.get("summary") or ()):
            body += _summary_events(where, at, part)
    elif isinstance(kind, str) and kind in _CALL_INPUT:
        field, prefix = _CALL_INPUT[kind]
        opened[field] = ""
        given = item.get(field) or ""
        if given:
            body.append({"type": f"{prefix}.delta", **where, "delta": given})
        done = {"type": f"{prefix}.done", **where, field: given}
        if kind == "function_call":
            done["name"] = item.get("name")
        body.append(done)
    elif kind == "shell_call":
        # A local shell's commands stream one by one, each opened empty, then its text.
        action = item.get("action")
        if isinstance(action, dict) and isinstance(action.get("commands"), list):
            opened["action"] = {**action, "commands": []}
            for at, command in enumerate(action["commands"]):
                body += _command_events(index, at, command)
    return [
        {"type": "response.output_item.added", "output_index": index, "item": opened},
        *body,
        {"type": "response.output_item.done", "output_index": index, "item": item},
    ]


def _command_events(index: int, at: int, command: Any) -> list[dict[str, Any]]:
    if not isinstance(command, str):
        return []
    # Upstream's command events name the item by its place only.
    common = {"output_index": index, "command_index": at}
    prefix = "response.shell_call_command"
    events: list[dict[str, Any]] = [{"type": f"{prefix}.added", **common, "command": ""}]
    if command:
        events.append({"type": f"{prefix}.delta", **common, "delta": command})
    events.append({"type": f"{prefix}.done", **common, "command": command})
    return events


def _part_events(where: dict[str, Any], at: int, part: Any) -> list[dict[str, Any]]:
    family = _FAMILY.get(str(part.get("type"))) if isinstance(part, dict) else None
    if family is None:
        return []
    prefix, field = family
    text = part.get(field) or ""
    common = {**where, "content_index": at}
    if part["type"] != "output_text":
        deltas: list[dict[str, Any]] = [{"delta": piece} for piece in fake_stream.pieces(text)]
        done: dict[str, Any] = {field: text}
    else:
        # The logprobs `include` asked for ride with the deltas of their tokens.
        tokens = part.get("logprobs")
        tokens = tokens if isinstance(tokens, list) else []
        deltas = [{"delta": piece, "logprobs": entries} for piece, entries in _steps(text, tokens)]
        done = {field: text, "logprobs": tokens}
    opened = {**part, field: ""}
    if "logprobs" in part:
        opened["logprobs"] = []  # its tokens' come with their deltas
    return [
        {"type": "response.content_part.added", **common, "part": opened},
        *({"type": f"{prefix}.delta", **common, **delta} for delta in deltas),
        {"type": f"{prefix}.done", **common, **done},
        {"type": "response.content_part.done", **common, "part": part},
    ]


def _steps(text: str, tokens: list[Any]) -> list[tuple[str, list[Any]]]:
    """The deltas `text` streams as, each with the logprobs of its tokens: one per token when
    the tokens spell the text; else the text in one delta with all of them (a character cut
    between tokens), or in word-sized pieces when it has none."""
    if not tokens:
        return [(piece, []) for piece in fake_stream.pieces(text)]
    spelled = [t.get("token") if isinstance(t, dict) else None for t in tokens]
    if all(isinstance(s, str) for s in spelled) and "".join(map(str, spelled)) == text:
        return [(str(piece), [entry]) for piece, entry in zip(spelled, tokens, strict=True)]
    return [(text, tokens)]


def _summary_events(where: dict[str, Any], at: int, part: Any) -> list[dict[str, Any]]:
    text = part.get("text") if isinstance(part, dict) else None
    if not isinstance(text, str):
        return []
    common = {**where, "summary_index": at}
    prefix = "response.reasoning_summary"
    return [
        {"type": f"{prefix}_part.added", **common, "part": {**part, "text": ""}},
        *(
            {"type": f"{prefix}_text.delta", **common, "delta": piece}
            for piece in fake_stream.pieces(text)
        ),
        {"type": f"{prefix}_text.done", **common, "text": text},
        {"type": f"{prefix}_part.done", **common, "part": part},
    ]
