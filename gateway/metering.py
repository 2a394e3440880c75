"""Reading usage out of upstream responses, streamed or not. Pure: bytes in, bytes and usage out.

A stream is metered event by event: the final usage chunk when there is one, and otherwise the
generated text so far, so a client that leaves mid-stream is charged for what was generated.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from gateway import sse, tokens
from gateway.pricing import Usage, usage_from


def response_usage(content: bytes) -> tuple[Usage | None, str]:
    """Usage and model of a JSON response body (chat, embeddings, responses API)."""
    try:
        payload = orjson.loads(content)
    except orjson.JSONDecodeError:
        return None, ""
    if not isinstance(payload, dict):
        return None, ""
    model = payload.get("model")
    return usage_from(payload.get("usage")), model if isinstance(model, str) else ""


class StreamMeter:
    """Watch an SSE stream go by; optionally drop the usage chunk the caller did not ask for.

    The gateway asks upstream for `stream_options.include_usage` so it can charge exactly; when
    the caller had not asked, the usage-only chunk (`choices: []`) is removed again, because
    clients that index `choices[0]` on every chunk would break on it.

    Parsing every event cost more CPU than the rest of relaying a streamed answer. A read whose
    events are routine (one `data:` line each, no usage object, no tool calls, content deltas
    in OpenAI's compact form) is searched as a whole instead: its content deltas' JSON string
    literals are kept, and decoded in one call only if the stream ends without usage.
    """

    __slots__ = ("_decoder", "_literals", "_strip_usage", "model", "usage")

    def __init__(self, strip_usage: bool = False) -> None:
        self._decoder = sse.Decoder()
        self._strip_usage = strip_usage
        self._literals: list[bytes] = []  # the text generated, as JSON string literals
        self.usage: Usage | None = None
        self.model = ""

    def feed(self, chunk: bytes) -> bytes:
        """Returns the bytes to pass on to the client."""
        block = self._decoder.complete(chunk)
        if self.model and _routine(block, self._strip_usage):
            literals = _CONTENT_DELTA.findall(block)
            if len(literals) == block.count(b'"delta":{"content":'):
                self._literals += literals
                # Routine events are one `data: ` line each: the block is their encoding.
                return block if self._strip_usage else chunk
        kept = [data for data in sse.events(block) if self._observe(data)]
        if not self._strip_usage:
            return chunk
        return b"".join(b"data: " + data + b"\n\n" for data in kept)

    def flush(self) -> bytes:
        kept = [data for data in self._decoder.flush() if self._observe(data)]
        return b"".join(b"data: " + data + b"\n\n" for data in kept) if self._strip_usage else b""

    def generated_usage(self, prompt_tokens: int) -> Usage:
        """The reported usage, or what the text seen so far amounts to when none came."""
        if self.usage is not None:
            return self.usage
        text = "".join(orjson.loads(b"[" + b",".join(self._literals) + b"]"))
        return Usage(prompt_tokens=prompt_tokens, completion_tokens=tokens.count_text(text))

    def _observe(self, data: bytes) -> bool:
        """Parse one event; False for a usage-only chunk the caller must not see."""
        if data == b"[DONE]":
            return True
        try:
            event: Any = orjson.loads(data)
        except orjson.JSONDecodeError:
            return True
        if not isinstance(event, dict):
            return True
        if not self.model and isinstance(event.get("model"), str):
            self.model = event["model"]
        usage = event.get("usage")
        if usage is None and isinstance(event.get("response"), dict):
            usage = event["response"].get("usage")  # the responses API's completed event
        if usage:
            self.usage = usage_from(usage) or self.usage
        choices = event.get("choices")
        if isinstance(choices, list):
            parts: list[str] = []
            for choice in choices:
                _collect(choice, parts)
            self._literals += map(orjson.dumps, parts)
            if not choices and usage and self._strip_usage:
                return False
        return True


# A delta of content only, as OpenAI writes it: the text's JSON string literal. A quote inside
# a JSON string is always escaped, so a match cannot start inside one.
_CONTENT_DELTA = re.compile(rb'"delta":\{"content":("[^"\\]*(?:\\.[^"\\]*)*")\}')


def _routine(block: bytes, reframed: bool) -> bool:
    """No usage object (with `include_usage` every chunk has `"usage":null`, only the last one
    an object) and no tool calls; when the block is passed on as the events' encoding
    (`reframed`), every event also one `data: ` line."""
    if not block or block.count(b'"usage"') != block.count(b'"usage":null'):
        return False
    if b'"tool_calls"' in block:
        return False
    if not reframed:
        return True
    events = block.count(b"\n\n")
    return (
        block.startswith(b"data: ")
        and block.count(b"\n") == 2 * events
        and block.count(b"\n\ndata: ") == events - 1
    )


def _collect(choice: Any, parts: list[str]) -> None:
    delta = choice.get("delta") if isinstance(choice, dict) else None
    if not isinstance(delta, dict):
        return
    if isinstance(delta.get("content"), str):
        parts.append(delta["content"])
    for call in delta.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            parts.extend(
                v for v in (function.get("name"), function.get("arguments")) if isinstance(v, str)
            )
