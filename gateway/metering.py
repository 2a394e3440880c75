"""Reading usage out of upstream responses, streamed or not. Pure: bytes in, bytes and usage out.

A stream is metered event by event: the final usage chunk when there is one, and otherwise the
generated text so far, so a client that leaves mid-stream is charged for what was generated.
"""

from __future__ import annotations

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
    """

    __slots__ = ("_decoder", "_parts", "_strip_usage", "model", "usage")

    def __init__(self, strip_usage: bool = False) -> None:
        self._decoder = sse.Decoder()
        self._strip_usage = strip_usage
        self._parts: list[str] = []
        self.usage: Usage | None = None
        self.model = ""

    def feed(self, chunk: bytes) -> bytes:
        """Returns the bytes to pass on to the client."""
        events = self._decoder.feed(chunk)
        kept = [data for data in events if self._observe(data)]
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
        return Usage(
            prompt_tokens=prompt_tokens, completion_tokens=tokens.count_text("".join(self._parts))
        )

    def _observe(self, data: bytes) -> bool:
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
            for choice in choices:
                self._collect(choice)
            if not choices and usage and self._strip_usage:
                return False
        return True

    def _collect(self, choice: Any) -> None:
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if not isinstance(delta, dict):
            return
        if isinstance(delta.get("content"), str):
            self._parts.append(delta["content"])
        for call in delta.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                self._parts.extend(
                    v
                    for v in (function.get("name"), function.get("arguments"))
                    if isinstance(v, str)
                )
