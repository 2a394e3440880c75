"""A chat.completion.chunk stream rebuilt from a complete, non-streamed chat.completion.

For models that cannot stream. The chunks follow OpenAI's sequence: a role delta, content (or
tool-call, or legacy function-call) deltas, a finish chunk, the usage chunk when asked for,
then `[DONE]`. Pure: the chunks carry the upstream completion's id, created and model, so
nothing here reads a clock or makes ids.

Content goes out in word-sized pieces rather than one blob, because clients render deltas as they
arrive and some (token counters, UIs) misbehave on a single huge delta; pieces are whole words,
not characters, which would multiply the bytes on the wire for no benefit.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import orjson

from gateway.wire import sse

__all__ = ["KEEPALIVE", "chunks", "encode", "encode_completion", "pieces"]

# Sent while the upstream model thinks: SDKs ignore comments, idle proxies (about 60 s) see
# traffic and keep the connection open.
KEEPALIVE = sse.comment("o1-gateway: waiting for the model")

# Leading whitespace rides with the word after it, as upstream tokens do (" world"); trailing
# whitespace at the very end rides with the last word so it never becomes a lone "\n" piece.
_WORD = re.compile(r"\s*\S+(?:\s+\Z)?|\s+")
# Text without spaces (CJK, long URLs, base64) would otherwise be one blob.
_MAX_PIECE = 32
# A word that may need cutting, in a text of spaced words (a piece is a space and a word).
_LONG_WORD = re.compile(f"[^ ]{{{_MAX_PIECE}}}")
# Upstream streams tool arguments in token-like runs (`{"`, `city`, `": "`), not by words.
_ARGUMENT_PIECE = re.compile(r"\w+|\W+")


def pieces(text: str) -> list[str]:
    """Split text into word-sized pieces whose concatenation is exactly `text`."""
    words = _words(text)
    if not words or max(map(len, words)) <= _MAX_PIECE:
        return words  # prose: nothing to cut
    out: list[str] = []
    for word in words:
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


def _words(text: str) -> list[str]:
    """`_WORD.findall(text)`."""
    if _spaced_words(text):
        # A replace and a split cost far less than the regex (a printable text holds no NUL).
        return text.replace(" ", "\x00 ").split("\x00") if text else []
    return _WORD.findall(text)


def _spaced_words(text: str) -> bool:
    """Words between single spaces, the only whitespace a printable text can hold: each piece
    after the first is a space and a word."""
    return text.isprintable() and "  " not in text and text[:1] != " " and text[-1:] != " "


def chunks(completion: dict[str, Any], *, include_usage: bool) -> list[dict[str, Any]]:
    """The chunk objects of the stream, without the final `[DONE]`."""
    common = {
        "id": completion.get("id"),
        "object": "chat.completion.chunk",
        "created": completion.get("created"),
        "model": completion.get("model"),
        "system_fingerprint": completion.get("system_fingerprint"),
    }
    if completion.get("service_tier") is not None:
        # Every chunk upstream streams names the tier that served the call (its price).
        common["service_tier"] = completion["service_tier"]

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


# One piece that cannot occur in an answer's other fields; it serializes as "\u0000o1gw\u0000".
_PROBE = "\x00o1gw\x00"
_PROBE_JSON = orjson.dumps(_PROBE)


def encode_completion(completion: dict[str, Any], *, include_usage: bool) -> bytes:
    """`encode(chunks(completion, ...))`, the same bytes, built several times faster.

    An answer is mostly one-word content deltas, and building and serializing a dict per word
    dominated the cost of a fake stream. Here `chunks` lays out a probe answer with one piece
    per text, and each text's pieces are spliced into that serialized delta chunk, so the
    layout still has one definition.
    """
    listed = completion.get("choices")
    item = listed[0] if isinstance(listed, list) and len(listed) == 1 else None
    message = item.get("message") if isinstance(item, dict) else None
    if (
        not isinstance(item, dict)
        or not isinstance(message, dict)
        or message.get("tool_calls")
        or message.get("function_call")
    ):
        return encode(chunks(completion, include_usage=include_usage))
    texts = {key: message.get(key) for key in ("content", "refusal")}
    probe_message = {**message, **{k: _PROBE for k, v in texts.items() if isinstance(v, str)}}
    probe = {**completion, "choices": [{**item, "message": probe_message}]}
    out: list[bytes] = []
    for obj in chunks(probe, include_usage=include_usage):
        event = sse.encode(obj)
        delta = obj["choices"][0]["delta"] if obj["choices"] else {}
        key = next(iter(delta)) if len(delta) == 1 else None
        if key not in texts or delta[key] != _PROBE:
            out.append(event)
            continue
        head, _, tail = event.partition(_PROBE_JSON)
        out.append(_spliced(head, tail, texts[key]))  # type: ignore[arg-type]  # a str: probed
    out.append(sse.DONE)
    return b"".join(out)


def _spliced(head: bytes, tail: bytes, text: str) -> bytes:
    """`head + orjson.dumps(piece) + tail` for each of the text's pieces, joined.

    The pieces are serialized as one string with NULs between them, which orjson writes as
    `\\u0000`; each of those is then replaced by the bytes between two pieces: one call into
    orjson instead of one per word. It needs a text in which `\\u0000` can only be a joint: one
    with neither a NUL nor a backslash before "u0000" (an escaped backslash would make one).
    """
    if "\x00" in text or "\\u0000" in text:
        return b"".join(head + orjson.dumps(piece) + tail for piece in pieces(text))
    if not text:
        return b""
    if _spaced_words(text) and not _LONG_WORD.search(text):
        joined = text.replace(" ", "\x00 ")  # pieces(text), joined, without the list
    else:
        joined = "\x00".join(pieces(text))
    return head + orjson.dumps(joined).replace(b"\\u0000", b'"' + tail + head + b'"') + tail


def _deltas(message: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The role delta that opens a choice, then its content, refusal, tool-call or legacy
    function-call deltas."""
    content = message.get("content")
    refusal = message.get("refusal")
    tool_calls = message.get("tool_calls")
    function_call = message.get("function_call")
    rest: list[dict[str, Any]] = []
    first: dict[str, Any]
    if isinstance(function_call, dict) and not tool_calls:
        # A legacy `functions` client: upstream opens the call on the role delta, its name
        # whole and its arguments empty, then streams only argument fragments.
        first = {"role": "assistant", "content": None}
        if isinstance(content, str) and content:
            first["content"] = ""
            rest.extend({"content": piece} for piece in pieces(content))
        first["function_call"] = {"name": function_call.get("name"), "arguments": ""}
        first["refusal"] = None
        arguments = function_call.get("arguments")
        if isinstance(arguments, str):
            rest.extend(
                {"function_call": {"arguments": piece}}
                for piece in _ARGUMENT_PIECE.findall(arguments)
            )
        return first, rest
    if not tool_calls:
        first = {"role": "assistant", "content": "", "refusal": None}
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
