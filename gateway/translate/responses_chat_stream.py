"""A chat.completion.chunk stream as a Responses API event stream.

Chat streams one message whose text and tool calls arrive as deltas; the Responses API streams
output items, each opened (`output_item.added`), filled by deltas and closed (`.done` events)
before the next opens, every event numbered from 0 and each delta padded as upstream pads its
own. So the translator keeps one item open at a time: the first text delta opens the message
item, a new tool call index closes whatever is open and opens a function_call item, and the
finish chunk closes the last one. The terminal event (`response.completed` or `.incomplete`)
waits for `[DONE]`, because the usage chunk comes after the finish chunk.

Pure: bytes in, bytes out; ids, the time and the padding's key come from the caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.translate.responses_chat import (
    INCOMPLETE,
    NewId,
    finished,
    function_call_item,
    message_item,
    response_shell,
)
from gateway.wire import obfuscation, sse

__all__ = ["EventStream"]

# Part kind -> the event family and the field that carries its text.
_FAMILY = {
    "output_text": ("response.output_text", "text"),
    "refusal": ("response.refusal", "refusal"),
}
_CUT = "The upstream stream ended before the answer was complete."


@dataclass(slots=True)
class _Item:
    """An output item being streamed."""

    index: int
    id: str
    kind: str  # "message" or "function_call"
    parts: list[dict[str, Any]] = field(default_factory=list)  # message: parts so far
    call_id: Any = None
    name: Any = None
    arguments: str = ""
    status: str = "in_progress"

    def as_output(self) -> dict[str, Any]:
        if self.kind == "message":
            return message_item(self.id, [dict(part) for part in self.parts], self.status)
        return function_call_item(self.id, self.call_id, self.name, self.arguments, self.status)


class EventStream:
    """Chat completion chunk SSE bytes in, Responses API SSE event bytes out."""

    def __init__(
        self, payload: dict[str, Any], *, response_id: str, created_at: int, new_id: NewId,
        model: str | None = None, obfuscation_key: bytes | None = None,
    ) -> None:  # fmt: skip
        # `model`: the snapshot expected to answer, named before it does (`response.created`);
        # the chunks' own name it then (else the request's model). `obfuscation_key`: the
        # deltas are padded as upstream pads its own (`wire.obfuscation`); None, they are not.
        self._shell = response_shell(
            payload, response_id=response_id, created_at=created_at, model=model
        )
        self._created_at = created_at
        self._new_id = new_id
        self._key = obfuscation_key
        self._decoder = sse.Decoder()
        self._sequence = 0
        self._started = False
        self._items: list[_Item] = []
        self._open: _Item | None = None
        self._calls: dict[Any, _Item] = {}  # chat tool call index -> its item
        self._finish_reason: str | None = None
        self._usage: dict[str, Any] | None = None
        self._served: Any = None  # the `service_tier` the chunks name
        self._response: dict[str, Any] | None = None

    @property
    def response(self) -> dict[str, Any] | None:
        """The final Response object once a terminal event was sent, else None."""
        return self._response

    @property
    def done(self) -> bool:
        return self._response is not None

    def start(self) -> bytes:
        """`response.created` and `response.in_progress`; sent before any upstream byte."""
        if self._started:
            return b""
        self._started = True
        return self._event("response.created", response=self._shell) + self._event(
            "response.in_progress", response=self._shell
        )

    def feed(self, chunk: bytes) -> bytes:
        """Any slice of the chat SSE stream; the Responses events it completes."""
        out = [self.start()]
        for event in self._decoder.complete(chunk).split(b"\n\n")[:-1]:
            if self.done:
                break
            if event and all(line.startswith(b":") for line in event.split(b"\n")):
                out.append(event + b"\n\n")  # a keep-alive: proxies must still see traffic
                continue
            for data in sse.events(event + b"\n\n"):
                out.append(self._data(data))
        return b"".join(out)

    def finish(self) -> bytes:
        """The upstream stream ended: its last unterminated event, then a terminal event if none
        was sent, so the client is never left waiting."""
        out = [self.start(), *(self._data(data) for data in self._decoder.flush())]
        if self.done:
            return b"".join(out)
        if self._finish_reason is not None:
            out.append(self._terminal())  # only `[DONE]` was lost: the answer is whole
        else:
            out.append(self._fail({"code": "server_error", "message": _CUT, "param": None}))
        return b"".join(out)

    # -- one upstream event ---------------------------------------------------------------------

    def _data(self, data: bytes) -> bytes:
        if self.done:
            return b""
        if data.strip() == b"[DONE]":
            return self._terminal()
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return b""  # not OpenAI's: nothing a client could use
        if not isinstance(chunk, dict):
            return b""
        if chunk.get("error") is not None:
            error = chunk["error"] if isinstance(chunk["error"], dict) else {}
            return self._fail(error)
        if chunk.get("model"):
            self._shell["model"] = chunk["model"]
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        if chunk.get("service_tier"):
            self._served = chunk["service_tier"]
        out: list[bytes] = []
        for choice in chunk.get("choices") or []:
            if isinstance(choice, dict) and choice.get("index", 0) == 0:  # n is always 1 here
                out.append(self._choice(choice))
        return b"".join(out)

    def _choice(self, choice: dict[str, Any]) -> bytes:
        out: list[bytes] = []
        delta = choice.get("delta") or {}
        for kind, key in (("output_text", "content"), ("refusal", "refusal")):
            if isinstance(delta.get(key), str) and delta[key]:
                out.append(self._text(kind, delta[key]))
        for call in delta.get("tool_calls") or []:
            if isinstance(call, dict):
                out.append(self._call(call))
        if choice.get("finish_reason"):
            self._finish_reason = choice["finish_reason"]
            out.append(self._close())
        return b"".join(out)

    def _text(self, kind: str, delta: str) -> bytes:
        out: list[bytes] = []
        item = self._open
        if item is None or item.kind != "message":
            out.append(self._close())
            item = self._add(_Item(len(self._items), self._new_id("msg_"), "message"))
            out.append(self._added(item))
        family, key = _FAMILY[kind]
        where = {"item_id": item.id, "output_index": item.index}
        if not item.parts or item.parts[-1]["type"] != kind:
            if item.parts:
                out.append(self._part_done(item))
            part: dict[str, Any] = {"type": kind, key: ""}
            if kind == "output_text":
                part.update(annotations=[], logprobs=[])
            item.parts.append(part)
            out.append(
                self._event(
                    "response.content_part.added",
                    **where,
                    content_index=len(item.parts) - 1,
                    part=dict(part),
                )
            )
        item.parts[-1][key] += delta
        extra: dict[str, Any] = {"logprobs": []} if kind == "output_text" else {}
        out.append(
            self._event(
                f"{family}.delta",
                **where,
                content_index=len(item.parts) - 1,
                delta=delta,
                **extra,
            )
        )
        return b"".join(out)

    def _call(self, call: dict[str, Any]) -> bytes:
        out: list[bytes] = []
        function = call.get("function") or {}
        item = self._calls.get(call.get("index", 0))
        if item is None:
            out.append(self._close())
            item = _Item(
                len(self._items),
                self._new_id("fc_"),
                "function_call",
                call_id=call.get("id"),
                name=function.get("name"),
            )
            self._calls[call.get("index", 0)] = self._add(item)
            out.append(self._added(item))
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            item.arguments += arguments
            out.append(
                self._event(
                    "response.function_call_arguments.delta",
                    item_id=item.id,
                    output_index=item.index,
                    delta=arguments,
                )
            )
        return b"".join(out)

    # -- items ----------------------------------------------------------------------------------

    def _add(self, item: _Item) -> _Item:
        self._items.append(item)
        self._open = item
        return item

    def _added(self, item: _Item) -> bytes:
        added = item.as_output()
        if item.kind == "message":
            added["content"] = []
        return self._event("response.output_item.added", output_index=item.index, item=added)

    def _part_done(self, item: _Item) -> bytes:
        part = item.parts[-1]
        family, key = _FAMILY[part["type"]]
        where = {"item_id": item.id, "output_index": item.index}
        index = len(item.parts) - 1
        extra: dict[str, Any] = {"logprobs": []} if part["type"] == "output_text" else {}
        return self._event(
            f"{family}.done", **where, content_index=index, **{key: part[key]}, **extra
        ) + self._event("response.content_part.done", **where, content_index=index, part=dict(part))

    def _close(self) -> bytes:
        """The `.done` events of the open item, if any."""
        item, self._open = self._open, None
        if item is None:
            return b""
        # Cut short by the token limit or the filter, the item is as incomplete as the answer.
        item.status = "incomplete" if self._finish_reason in INCOMPLETE else "completed"
        out: list[bytes] = []
        if item.kind == "message":
            out.append(self._part_done(item))
        else:
            out.append(
                self._event(
                    "response.function_call_arguments.done",
                    item_id=item.id,
                    output_index=item.index,
                    name=item.name,
                    arguments=item.arguments,
                )
            )
        out.append(
            self._event("response.output_item.done", output_index=item.index, item=item.as_output())
        )
        return b"".join(out)

    # -- the end --------------------------------------------------------------------------------

    def _terminal(self) -> bytes:
        closed = self._close()
        reason = INCOMPLETE.get(str(self._finish_reason))
        status = "incomplete" if reason else "completed"
        self._response = finished(
            self._shell,
            status,
            [item.as_output() for item in self._items],
            self._usage,
            reason,
            self._created_at,
            self._served,
        )
        return closed + self._event(f"response.{status}", response=self._response)

    def _fail(self, error: dict[str, Any]) -> bytes:
        """An `error` event, then `response.failed`, as OpenAI sends a failure after the
        headers have left: the error object nested under `error`, as recorded from OpenAI (and
        as the gateway ends a stream it fails itself), which the SDKs raise. Open items stay
        unfinished, as OpenAI leaves them."""
        code = error.get("code") or error.get("type") or "server_error"
        message = str(error.get("message") or "The upstream model failed.")
        told = {"type": error.get("type") or code, "code": code, "message": message,
                "param": error.get("param")}  # fmt: skip
        if self._open is not None:
            self._open.status = "incomplete"
            self._open = None
        failed = finished(
            self._shell,
            "failed",
            [item.as_output() for item in self._items],
            None,
            None,
            self._created_at,
            self._served,
        )
        failed["error"] = {"code": code, "message": message}
        self._response = failed
        return self._event("error", error=told) + self._event("response.failed", response=failed)

    def _event(self, kind: str, **fields: Any) -> bytes:
        data = obfuscation.numbered({"type": kind, **fields}, self._sequence, self._key)
        self._sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
