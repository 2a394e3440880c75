"""A chat.completion.chunk stream rebuilt from a complete, non-streamed chat.completion.

For models that cannot stream (facts §4 gives the exact chunk sequence). Pure: the chunks carry
the upstream completion's id, created and model, so nothing here reads a clock or makes ids.

Content goes out in word-sized pieces rather than one blob, because clients render deltas as they
arrive and some (token counters, UIs) misbehave on a single huge delta; pieces are whole words,
not characters, which would multiply the bytes on the wire for no benefit.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from gateway import sse

__all__ = ["KEEPALIVE", "chunks", "encode", "pieces"]

# Sent while the upstream model thinks: SDKs ignore comments, idle proxies (about 60 s) see
# traffic and keep the connection open.
KEEPALIVE = sse.comment("o1-gateway: waiting for the model")

# Leading whitespace rides with the word after it, as upstream tokens do (" world"); trailing
# whitespace at the very end rides with the last word so it never becomes a lone "\n" piece.
_WORD = re.compile(r"\s*\S+(?:\s+\Z)?|\s+")
# Text without spaces (CJK, long URLs, base64) would otherwise be one blob.
_MAX_PIECE = 32
# Upstream streams tool arguments in token-like runs (`{"`, `city`, `": "`), not by words.
_ARGUMENT_PIECE = re.compile(r"\w+|\W+")


def pieces(text: str) -> list[str]:
    """Split text into word-sized pieces whose concatenation is exactly `text`."""
    out: list[str] = []
    for word in _WORD.findall(text):
        if len(word) <= _MAX_PIECE:
            out.append(word)
            continue
        # Slices differ by at most one character, so none is a stray scrap: each is at least
        # half of _MAX_PIECE.
        count = -(-len(word) // _MAX_PIECE)
        base, extra = divmod(len(word), count)
        at = 0
        for slot in range(count):
            size = base + (slot < extra)
            out.append(word[at : at + size])
            at += size
    return out


def chunks(completion: dict[str, Any], *, include_usage: bool) -> list[dict[str, Any]]:
    """The chunk objects of the stream, without the final `[DONE]`."""
    common = {
        "id": completion.get("id"),
        "object": "chat.completion.chunk",
        "created": completion.get("created"),
        "model": completion.get("model"),
        "system_fingerprint": completion.get("system_fingerprint"),
    }

    def chunk(choices: list[dict[str, Any]]) -> dict[str, Any]:
        obj: dict[str, Any] = {**common, "choices": choices}
        if include_usage:
            obj["usage"] = None
        return obj

    def choice(index: Any, delta: dict[str, Any], finish: Any) -> list[dict[str, Any]]:
        return [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}]

    choices = [c for c in completion.get("choices") or [] if isinstance(c, dict)]
    out: list[dict[str, Any]] = []
    bodies: list[list[dict[str, Any]]] = []
    for position, item in enumerate(choices):
        index = item.get("index", position)
        first, rest = _deltas(item.get("message") or {})
        out.append(chunk(choice(index, first, None)))
        bodies.append([choice(index, delta, None)[0] for delta in rest])
    # Several choices interleave their deltas, as upstream streams them.
    for step in range(max((len(rest) for rest in bodies), default=0)):
        for rest in bodies:
            if step < len(rest):
                out.append(chunk([rest[step]]))
    for position, item in enumerate(choices):
        out.append(chunk(choice(item.get("index", position), {}, item.get("finish_reason"))))
    if include_usage:
        final = chunk([])
        final["usage"] = completion.get("usage")
        out.append(final)
    return out


def encode(chunk_objects: Iterable[dict[str, Any]]) -> bytes:
    """SSE bytes of the chunks, ending in `data: [DONE]` as SDKs expect."""
    return b"".join(sse.encode(obj) for obj in chunk_objects) + sse.DONE


def _deltas(message: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The role delta that opens a choice, then its content, refusal or tool-call deltas."""
    content = message.get("content")
    refusal = message.get("refusal")
    tool_calls = message.get("tool_calls")
    rest: list[dict[str, Any]] = []
    if not tool_calls:
        first: dict[str, Any] = {"role": "assistant", "content": "", "refusal": None}
        if isinstance(content, str):
            rest.extend({"content": piece} for piece in pieces(content))
        if isinstance(refusal, str):
            rest.extend({"refusal": piece} for piece in pieces(refusal))
        return first, rest
    # A model without streaming may still call tools (o1 2024-12-17): stream them as upstream
    # would, the first call opening on the role delta and arguments following in fragments.
    first = {"role": "assistant", "content": None}
    if isinstance(content, str) and content:
        # Text said before the calls must not be lost.
        first["content"] = ""
        rest.extend({"content": piece} for piece in pieces(content))
    for position, call in enumerate(tool_calls):
        function = call.get("function") or {}
        opening = {
            "index": position,
            "id": call.get("id"),
            "type": call.get("type", "function"),
            "function": {"name": function.get("name"), "arguments": ""},
        }
        if position == 0:
            first["tool_calls"] = [opening]
        else:
            rest.append({"tool_calls": [opening]})
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            rest.extend(
                {"tool_calls": [{"index": position, "function": {"arguments": piece}}]}
                for piece in _ARGUMENT_PIECE.findall(arguments)
            )
    first["refusal"] = None
    return first, rest
