"""A streamed answer gathered back into its final object, as the client received it. Pure.

A chat stream becomes the `chat.completion` it spells out (text, refusal and tool-call deltas
joined, each choice's finish reason, the usage chunk); a Responses stream's terminal event
carries its final Response object already (an incomplete one too: an answer that ended, which
is not kept, but not a failed call). An answer that ends in an error, or never ends, gathers to
nothing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import orjson

from gateway.wire import sse

_HEAD = ("id", "created", "model", "system_fingerprint", "service_tier")


class Capture(ABC):
    """SSE bytes in, as they go or all at once; the final answer out."""

    __slots__ = ("_decoder",)

    def __init__(self) -> None:
        self._decoder = sse.Decoder()

    def feed(self, chunk: bytes) -> None:
        for data in self._decoder.feed(chunk):
            self._event(data)

    def feed_all(self, body: bytes) -> None:
        self.feed(body)
        for data in self._decoder.flush():
            self._event(data)

    @abstractmethod
    def _event(self, data: bytes) -> None: ...

    @abstractmethod
    def answer(self) -> dict[str, Any] | None: ...


class ChatCapture(Capture):
    """`chat.completion.chunk` SSE bytes in; the `chat.completion` they make, once done."""

    __slots__ = ("_choices", "_done", "_failed", "_head", "_usage")

    def __init__(self) -> None:
        super().__init__()
        self._head: dict[str, Any] = {}
        self._choices: dict[int, dict[str, Any]] = {}
        self._usage: Any = None
        self._done = self._failed = False

    def _event(self, data: bytes) -> None:
        if data.strip() == b"[DONE]":
            self._done = True
            return
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            self._failed = True
            return
        if not isinstance(chunk, dict) or chunk.get("error") is not None:
            self._failed = True
            return
        for name in _HEAD:
            if chunk.get(name) is not None:
                self._head[name] = chunk[name]
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            if isinstance(choice, dict):
                self._choice(choice)

    def _choice(self, choice: dict[str, Any]) -> None:
        index = choice.get("index", 0)
        slot = self._choices.get(index)
        if slot is None:
            slot = self._choices[index] = {
                "content": [], "refusal": [], "calls": {}, "logprobs": None, "finish": None,
            }  # fmt: skip
        delta = choice.get("delta") or {}
        for name in ("content", "refusal"):
            if isinstance(delta.get(name), str):
                slot[name].append(delta[name])
        for call in delta.get("tool_calls") or ():
            calls = slot["calls"]
            made = calls.setdefault(
                call.get("index", len(calls)),
                {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
            )
            if call.get("id"):
                made["id"] = call["id"]
            if isinstance(call.get("type"), str):
                made["type"] = call["type"]  # another kind than a function's is never kept
            function = call.get("function") or {}
            if function.get("name"):
                made["function"]["name"] = function["name"]
            if isinstance(function.get("arguments"), str):
                made["function"]["arguments"] += function["arguments"]
        logprobs = choice.get("logprobs")
        if isinstance(logprobs, dict):
            kept = slot["logprobs"] = slot["logprobs"] or {"content": None, "refusal": None}
            for name in ("content", "refusal"):
                if isinstance(logprobs.get(name), list):
                    kept[name] = (kept[name] or []) + logprobs[name]
        if choice.get("finish_reason"):
            slot["finish"] = choice["finish_reason"]

    def answer(self) -> dict[str, Any] | None:
        """The completion, or None: the stream failed, or did not end with `[DONE]`."""
        if self._failed or not self._done or not self._choices:
            return None
        choices = []
        for index in sorted(self._choices):
            slot = self._choices[index]
            message: dict[str, Any] = {
                "role": "assistant",
                "content": "".join(slot["content"]) if slot["content"] else None,
                "refusal": "".join(slot["refusal"]) if slot["refusal"] else None,
                "annotations": [],
            }
            if slot["calls"]:
                message["tool_calls"] = [slot["calls"][i] for i in sorted(slot["calls"])]
            choices.append(
                {
                    "index": index,
                    "message": message,
                    "logprobs": slot["logprobs"],
                    "finish_reason": slot["finish"],
                }
            )
        head = self._head
        return {
            "id": head.get("id"),
            "object": "chat.completion",
            "created": head.get("created"),
            "model": head.get("model"),
            "choices": choices,
            "usage": self._usage,
            "service_tier": head.get("service_tier"),
            "system_fingerprint": head.get("system_fingerprint"),
        }


# The terminal events that carry the Response object the stream ended with.
_ENDED = (b"response.completed", b"response.incomplete")


class ResponsesCapture(Capture):
    """Responses API event bytes in; the Response object its `response.completed` (or
    `response.incomplete`) carries."""

    __slots__ = ("_response",)

    def __init__(self) -> None:
        super().__init__()
        self._response: dict[str, Any] | None = None

    def feed(self, chunk: bytes) -> None:
        block = self._decoder.complete(chunk)
        # Only the terminal event is read: the deltas before it are never parsed.
        if _ENDED[0] in block or _ENDED[1] in block:
            for data in sse.events(block):
                self._event(data)

    def _event(self, data: bytes) -> None:
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        kind = event.get("type") if isinstance(event, dict) else None
        if isinstance(kind, str) and kind.encode() in _ENDED:
            response = event.get("response")
            self._response = response if isinstance(response, dict) else None

    def answer(self) -> dict[str, Any] | None:
        return self._response
