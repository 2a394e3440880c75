"""Reading usage out of upstream responses, streamed or not. Pure: bytes in, bytes and usage out.

A stream is metered event by event: the final usage chunk when there is one, and otherwise the
generated text so far, so a client that leaves mid-stream is charged for what was generated.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.wire import sse, tokens
from gateway.wire.hosted_tools import call_counts


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # part of prompt_tokens, billed at the cached-input price
    reasoning_tokens: int = 0  # part of completion_tokens, billed as output
    # Part of prompt_tokens written to the prompt cache, billed at the cache-write price (the
    # newest models bill them dearer than input).
    cache_write_tokens: int = 0
    # The usage object itself, when read from one: every detail upstream gave, those the charge
    # does not read too (audio, predicted tokens), which a cached answer says again.
    reported: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


# More tokens than any one call reads or writes, by far (a context of millions, every choice of
# `n` at its longest): a count past it is no usage upstream bills, and from 1e17 Redis could not
# even add it up.
MOST_TOKENS = 10**10


def usage_from(payload: Any) -> Usage | None:
    """Read an OpenAI `usage` object (chat, embeddings, or the responses API's shape). None
    when it does not say what the call cost: neither count given, a count given that is no
    count (negative, fractional, past `MOST_TOKENS`), or a `total_tokens` that is not their
    sum, in which case it cannot be believed either (the call is charged as one whose usage
    never came)."""
    if not isinstance(payload, dict):
        return None
    prompt_details = (
        payload.get("prompt_tokens_details") or payload.get("input_tokens_details") or {}
    )
    completion_details = (
        payload.get("completion_tokens_details") or payload.get("output_tokens_details") or {}
    )
    given = (
        payload.get("prompt_tokens", payload.get("input_tokens")),
        payload.get("completion_tokens", payload.get("output_tokens")),
        _get(prompt_details, "cached_tokens"),
        _get(completion_details, "reasoning_tokens"),
        _get(prompt_details, "cache_write_tokens"),
    )
    counts = [_int(value) for value in given]
    if counts[0] is None and counts[1] is None:
        return None
    if any(count is None and value is not None for count, value in zip(counts, given, strict=True)):
        return None
    prompt, completion, cached, reasoning, written = (count or 0 for count in counts)
    total = payload.get("total_tokens")
    if total is not None and total != prompt + completion:
        return None  # it does not add up: a count left out (the output's, say), or made up
    return Usage(prompt, completion, cached, reasoning, written, reported=payload)


def _get(details: Any, name: str) -> Any:
    return details.get(name) if isinstance(details, dict) else None


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MOST_TOKENS:
        return None
    return value


def whole_answer(content: bytes) -> dict[str, Any] | None:
    """A JSON response body (chat, embeddings, responses API) parsed, None when it is no JSON
    object."""
    try:
        payload = orjson.loads(content)
    except orjson.JSONDecodeError:
        return None
    return payload if isinstance(payload, dict) else None


def answer_usage(answer: dict[str, Any] | None) -> tuple[Usage | None, str]:
    """Usage and model of a parsed response body (`whole_answer`)."""
    if answer is None:
        return None, ""
    model = answer.get("model")
    return usage_from(answer.get("usage")), model if isinstance(model, str) else ""


def ask_usage_chunk(payload: dict[str, Any]) -> bool:
    """Make a streamed request's `payload` ask upstream for its usage chunk
    (`stream_options.include_usage`), so that the stream is charged exactly. True when its
    client had not asked for it: the chunk is then kept from the client (`StreamMeter`'s
    `strip_usage`). `stream_options` that is no object is left as sent, for upstream to refuse."""
    options = payload.get("stream_options")
    if options is None:
        options = {}
    if not isinstance(options, dict) or options.get("include_usage") is True:
        return False
    payload["stream_options"] = {**options, "include_usage": True}
    return True


class StreamMeter:
    """Watch an SSE stream go by; optionally drop the usage chunk the caller did not ask for.

    The gateway asks upstream for `stream_options.include_usage` so it can charge exactly; when
    the caller had not asked, the usage-only chunk (`choices: []`) is removed again, because
    clients that index `choices[0]` on every chunk would break on it.

    Parsing every event cost more CPU than the rest of relaying a streamed answer. The events
    of a read before its first usage object, when routine (one `data:` line each, no tool
    calls or errors, content deltas in OpenAI's compact form), are searched as a whole
    instead: their content deltas' JSON string literals are kept, and decoded in one call only
    if the stream ends without usage. The rest is parsed event by event.
    """

    __slots__ = (
        "_decoder", "_literals", "_strip_usage", "failed", "model", "on_id", "service_tier",
        "usage",
    )  # fmt: skip

    def __init__(
        self, strip_usage: bool = False, on_id: Callable[[str, int], None] | None = None
    ) -> None:
        self._decoder = sse.Decoder()
        self._strip_usage = strip_usage
        self._literals: list[bytes] = []  # the text generated, as JSON string literals
        self.usage: Usage | None = None
        self.model = ""
        # The tier the stream says served it (chat: every chunk, the usage chunk too; the
        # Responses API: its terminal event), which is the one upstream bills.
        self.service_tier: str | None = None
        # The upstream ended the stream with an error event of its own (OpenAI's mid-stream
        # failure), which the gateway relays as it came.
        self.failed = False
        # Told the completion's id and `created` by the first event that names its model (a
        # stored completion's owner is recorded from it).
        self.on_id = on_id

    def feed(self, chunk: bytes) -> bytes:
        """Returns the bytes to pass on to the client: the events `chunk` completes. An event
        is passed on whole, never in part: a stream broken mid-event then ends in the gateway's
        error event, not in half an event joined to it. (One a stream ends without its blank
        line is not passed on: no client would dispatch it.)"""
        block = whole = self._decoder.complete(chunk)
        out: list[bytes] = []
        if not self.model and block:
            first = block.find(b"\n\n") + 2  # the first event names the model
            out.append(self._parse(block[:first]))
            block = block[first:]
        if self.model and block:
            # The events before the first usage object (the usual last event) may be routine.
            found = _USAGE_OBJECT.search(block)
            cut = block.rfind(b"\n\n", 0, found.start()) + 2 if found else len(block)
            if cut > 1 and self._take_routine(block[:cut]):
                # Routine events are one `data: ` line each: they are their own encoding.
                out.append(block[:cut])
                block = block[cut:]
        out.append(self._parse(block))
        return b"".join(out) if self._strip_usage else whole

    def _parse(self, block: bytes) -> bytes:
        return self._parse_events(sse.events(block))

    def _parse_events(self, events: list[bytes]) -> bytes:
        """Observe each event; the ones to pass on, encoded, when the meter strips usage."""
        kept = [data for data in events if self._observe(data)]
        return b"".join(b"data: " + data + b"\n\n" for data in kept) if self._strip_usage else b""

    def _take_routine(self, head: bytes) -> bool:
        """Keep the content of a block without a usage object, if it is routine: one `data: `
        line an event (so no JSON is split across lines), no tool calls."""
        events = head.count(b"\n\n")
        if not (
            head.startswith(b"data: ")
            and head.count(b"\n") == 2 * events
            and head.count(b"\n\ndata: ") == events - 1
            and b'"tool_calls"' not in head
            and b'"error"' not in head
        ):
            return False
        literals = _CONTENT_DELTA.findall(head)
        if len(literals) != head.count(b'"delta":{"content":'):
            return False
        self._literals += literals
        return True

    def flush(self) -> bytes:
        return self._parse_events(self._decoder.flush())

    def ended_before_usage(self, tail: bytes) -> bool:
        """Whether a stream that asked for its usage chunk (`ask_usage_chunk`) ended without it:
        neither the usage, its own error, nor the `[DONE]` that follows the usage came
        (`tail`: its last bytes)."""
        return self.usage is None and not self.failed and b"[DONE]" not in tail

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
        if event.get("error") is not None:
            self.failed = True
        if isinstance(event.get("service_tier"), str):
            self.service_tier = event["service_tier"]
        if not self.model and isinstance(event.get("model"), str):
            self.model = event["model"]
            if self.on_id is not None and isinstance(event.get("id"), str):
                created = event.get("created")
                self.on_id(event["id"], created if isinstance(created, int) else 0)
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


class TextStreamMeter(StreamMeter):
    """A legacy completion's stream (`text_completion` chunks): its usage chunk, and otherwise
    the text of its choices seen so far. Every event is parsed: no routine block is taken by
    its bytes, which know chat's deltas only."""

    __slots__ = ()

    def _take_routine(self, head: bytes) -> bool:
        return False


# A usage object, not the `"usage":null` that `include_usage` puts in every other chunk.
_USAGE_OBJECT = re.compile(rb'"usage"\s*:\s*(?!null\b)')
# A delta of content only, as OpenAI writes it: the text's JSON string literal. A quote inside
# a JSON string is always escaped, so a match cannot start inside one.
_CONTENT_DELTA = re.compile(rb'"delta":\{"content":("[^"\\]*(?:\\.[^"\\]*)*")\}')


def _collect(choice: Any, parts: list[str]) -> None:
    if isinstance(choice, dict) and isinstance(choice.get("text"), str):
        parts.append(choice["text"])  # a legacy completion's chunk
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


class ResponsesStreamMeter(StreamMeter):
    """The Responses API's stream (`event: response.*` frames): the usage of its terminal
    event (`response.completed`, `.incomplete` or `.failed`), and otherwise the text and call
    arguments generated so far. It also notes the response's id and model from the first event,
    so the gateway can record who owns the response.

    Only the events that say something are parsed. Each names its type on its `event:` line:
    a delta's text is found by a search of its bytes (its JSON string literal, decoded only if
    the stream ends without usage), the lifecycle events carrying the response are parsed, and
    the rest (items and parts added or done, which repeat what the deltas said) are skipped.
    """

    __slots__ = (
        "closing", "context_tokens", "events", "final", "on_response", "response", "response_id",
        "started",
    )  # fmt: skip

    def __init__(self, on_response: Callable[[str, int, list[str]], None] | None = None) -> None:
        super().__init__(False)  # the Responses API always reports usage: nothing to strip
        self.response_id = ""
        self.context_tokens = 0  # input plus output of the finished response, for chaining
        # The response as the stream's first event told it, and the events seen so far (the
        # next event's `sequence_number`): what a failure the gateway reports continues.
        self.response: dict[str, Any] | None = None
        self.events = 0
        # The response as its terminal event told it, and the hosted tool calls begun so far
        # (by item type): what the calls the response made are counted from.
        self.final: dict[str, Any] | None = None
        self.started: dict[str, int] = {}
        # The last whole event generated nothing: it closed a part, an item or the response
        # (`response.output_text.done`, ..., `response.completed`).
        self.closing = False
        # Told the response's id when the stream names it, and again with the context tokens
        # and the ids of its output items when it ends (the gateway records who owns them).
        self.on_response = on_response

    def feed(self, chunk: bytes) -> bytes:
        block = self._decoder.complete(chunk)
        if block:
            events = block.split(b"\n\n")[:-1]
            self.events += len(events)
            for event in events:
                self._see(event)
        return block

    def flush(self) -> bytes:
        for data in self._decoder.flush():
            self._observe_event(data)
        return b""

    def _see(self, event: bytes) -> None:
        self.closing = False
        if event.startswith(b"event: "):
            kind = event[7 : event.find(b"\n")]
            self.closing = kind in _RESPONSES_CLOSING
            if kind == b"error":
                self.failed = True
                return
            if kind in _RESPONSES_DELTAS:
                found = _DELTA_LITERAL.search(event)
                if found is not None:
                    self._literals.append(found.group(1))
                    return
            elif kind not in _RESPONSES_LIFECYCLE:
                return
        data = sse.data_of(event)
        if data is not None:
            self._observe_event(data)

    def _observe_event(self, data: bytes) -> None:
        try:
            event: Any = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if not isinstance(event, dict):
            return
        kind = event.get("type")
        if kind in _RESPONSES_DELTA_TYPES:
            delta = event.get("delta")
            if isinstance(delta, str):
                self._literals.append(orjson.dumps(delta))
            return
        if kind == "response.output_item.added":
            for item_type, n in call_counts((event.get("item"),)).items():
                self.started[item_type] = self.started.get(item_type, 0) + n
            return
        response = event.get("response")
        if not isinstance(response, dict):
            return
        if self.response is None:
            self.response = response
        if kind in _RESPONSES_TERMINAL:
            self.final = response
            if isinstance(response.get("service_tier"), str):
                self.service_tier = response["service_tier"]
        if not self.model and isinstance(response.get("model"), str):
            self.model = response["model"]
        usage = usage_from(response.get("usage")) if kind in _RESPONSES_TERMINAL else None
        if usage is not None:
            self.usage = usage
            self.context_tokens = chained_context(response, usage.total_tokens)
        named = response.get("id")
        if isinstance(named, str) and (not self.response_id or usage is not None):
            self.response_id = named
            if self.on_response is not None:
                items = output_item_ids(response) if usage is not None else []
                self.on_response(named, self.context_tokens, items)

    def hosted_calls(self) -> dict[str, int]:
        """The hosted tool calls the response made, by item type: as its terminal event lists
        them, or, for a stream cut before it, as many as began."""
        final = self.final
        if final is not None and isinstance(final.get("output"), list):
            return call_counts(final["output"])
        return dict(self.started)


def chained_context(response: dict[str, Any], total_tokens: int) -> int:
    """The tokens a response's context is read as by a response chained to it
    (`previous_response_id`): its input and output as billed (`total_tokens`), and each output
    item's message framing, which the next call's input is billed for and this usage never
    counted."""
    output = response.get("output")
    return total_tokens + tokens.TOKENS_PER_MESSAGE * (
        len(output) if isinstance(output, list) else 0
    )


def reasoning_carried(response: Any) -> dict[str, int]:
    """The reasoning items of an ended Response object, each with the reasoning tokens its
    usage reports: the most one of them carries when a later request gives it back, which
    upstream reads (by its id, or its encrypted content) and bills as input."""
    if not isinstance(response, dict):
        return {}
    used = usage_from(response.get("usage"))
    output = response.get("output")
    if used is None or not isinstance(output, list):
        return {}
    return {
        item["id"]: used.reasoning_tokens
        for item in output
        if isinstance(item, dict) and item.get("type") == "reasoning"
        and isinstance(item.get("id"), str)
    }  # fmt: skip


def reasoning_given(payload: dict[str, Any]) -> list[str] | None:
    """The ids of the reasoning items a Responses request's input gives back; None when one
    has no id (what it carries cannot be looked up)."""
    given = payload.get("input")
    found: list[str] = []
    for item in given if isinstance(given, list) else ():
        if isinstance(item, dict) and item.get("type") == "reasoning":
            item_id = item.get("id")
            if not isinstance(item_id, str):
                return None
            found.append(item_id)
    return found


def output_item_ids(response: Any) -> list[str]:
    """The ids of a Response object's output items."""
    return item_ids(response.get("output") if isinstance(response, dict) else None)


def item_ids(items: Any) -> list[str]:
    """The ids of Responses items (a response's `output`, a page of input items' `data`)."""
    ids = (item.get("id") for item in items if isinstance(item, dict))
    return (
        [item_id for item_id in ids if isinstance(item_id, str)] if isinstance(items, list) else []
    )


_RESPONSES_DELTA_TYPES = frozenset(
    {
        "response.output_text.delta",
        "response.function_call_arguments.delta",
        "response.refusal.delta",
    }
)
_RESPONSES_DELTAS = frozenset(kind.encode() for kind in _RESPONSES_DELTA_TYPES)
_RESPONSES_TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})
# The events parsed: the first names the response and its model, the last has the usage; an
# item added may be a hosted tool's call.
_RESPONSES_LIFECYCLE = frozenset(
    kind.encode()
    for kind in ("response.created", "response.output_item.added", *_RESPONSES_TERMINAL)
)
# The events that generate nothing: each closes what the deltas before it generated.
_RESPONSES_CLOSING = frozenset(
    kind.encode()
    for kind in (
        "response.output_text.done", "response.refusal.done",
        "response.function_call_arguments.done", "response.content_part.done",
        "response.output_item.done", *_RESPONSES_TERMINAL,
    )
)  # fmt: skip
# A delta event's text: the JSON string literal of its `delta` field.
_DELTA_LITERAL = re.compile(rb'"delta"\s*:\s*("[^"\\]*(?:\\.[^"\\]*)*")')


# -- token-priced audio: text and audio tokens priced apart --------------------------------------


@dataclass(frozen=True, slots=True)
class AudioUsage:
    """The tokens of a token-priced audio call, by kind (audio costs more than text)."""

    text_input: int = 0
    audio_input: int = 0
    text_output: int = 0
    audio_output: int = 0

    @property
    def usage(self) -> Usage:
        """All of it as input and output tokens, for the token limits and usage counters."""
        return Usage(
            prompt_tokens=self.text_input + self.audio_input,
            completion_tokens=self.text_output + self.audio_output,
        )


# The last event of an audio stream, the one that carries its usage.
AUDIO_DONE_EVENTS = frozenset({"speech.audio.done", "transcript.text.done"})
# What only an audio stream's ending names: the end of a done event's type, and an error.
_AUDIO_ENDING = b'.done"'
_ERROR = b'"error"'


def audio_usage_from(payload: Any, *, speech: bool) -> AudioUsage | None:
    """Read the `usage` of a token-priced audio answer. Speech reads text and writes audio; a
    transcription reads text (its prompt) and audio, told apart by `input_token_details`, and
    writes text. Input the details do not attribute to text is taken as audio, the dearer kind."""
    if not isinstance(payload, dict):
        return None
    read = _int(payload.get("input_tokens"))
    written = _int(payload.get("output_tokens"))
    if read is None or written is None:
        return None
    if speech:
        return AudioUsage(text_input=read, audio_output=written)
    text = min(_int(_get(payload.get("input_token_details"), "text_tokens")) or 0, read)
    return AudioUsage(text_input=text, audio_input=read - text, text_output=written)


def audio_answer_usage(content: bytes) -> Any:
    """The `usage` object of a whole audio answer: a JSON body's, or the done event's of an
    event stream read whole; None for raw audio, plain text, or an answer that does not say."""
    head = content[:16].lstrip()
    if head.startswith(b"{"):
        try:
            payload: Any = orjson.loads(content)
        except orjson.JSONDecodeError:
            return None
        return payload.get("usage") if isinstance(payload, dict) else None
    if head.startswith((b"data:", b"event:")):
        meter = AudioStreamMeter()
        meter.feed(content)
        meter.flush()
        return meter.reported
    return None


class AudioStreamMeter(StreamMeter):
    """An audio event stream (speech `speech.audio.*`, transcription `transcript.text.*`): the
    `usage` of its done event, kept as reported, since text and audio tokens are priced apart.

    Speech deltas are base64 audio, which has no quotes: only blocks naming a `"usage"` are
    parsed, so the audio passes unread, and only the ending's quoted words are searched for."""

    __slots__ = ("ended", "reported")

    def __init__(self) -> None:
        super().__init__(False)
        self.reported: Any = None
        # Its done event or an error came: a stream that ends without either was cut short.
        self.ended = False

    def feed(self, chunk: bytes) -> bytes:
        block = self._decoder.complete(chunk)
        if not self.ended:
            self.ended = _AUDIO_ENDING in block or _ERROR in block
        if b'"usage"' in block:
            for data in sse.events(block):
                self._see(data)
        return block

    def flush(self) -> bytes:
        for data in self._decoder.flush():
            self.ended = self.ended or _AUDIO_ENDING in data or _ERROR in data
            self._see(data)
        return b""

    def _see(self, data: bytes) -> None:
        if b'"usage"' not in data:
            return
        try:
            event: Any = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if isinstance(event, dict) and event.get("type") in AUDIO_DONE_EVENTS:
            self.reported = event.get("usage")
