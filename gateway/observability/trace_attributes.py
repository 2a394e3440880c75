"""What a request's spans say, by the OpenTelemetry semantic conventions for generative AI
(`gen_ai.*`, OpenAI's `openai.api.type`) and for HTTP, plus the gateway's own (`gateway.*`).
Pure: requests, answers and the request's record in, attribute mappings out.

Prompts and answers appear only with content capture on (`gen_ai.input.messages`,
`gen_ai.system_instructions`, `gen_ai.output.messages`, as JSON strings, the conventions' form for
span attributes); keys and headers never do.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, cast

import orjson

from gateway.observability.record import Exchange
from gateway.wire import sse
from gateway.wire.validation import MAX_MODEL_CHARS

PROVIDER = "openai"
# The endpoints that are GenAI operations: their `gen_ai.operation.name` and, for OpenAI's two
# chat APIs, the `openai.api.type` telling them apart (the Responses API is a chat operation).
OPERATIONS: dict[str, tuple[str, str]] = {
    "chat": ("chat", "chat_completions"),
    "responses": ("chat", "responses"),
    "embeddings": ("embeddings", ""),
    "completions": ("text_completion", ""),
}
_FIRST_ID = re.compile(rb'"id"\s*:\s*"([^"\\]{1,200})"')
_FIRST_MODEL = re.compile(rb'"model"\s*:\s*"([^"\\]{1,200})"')
_FINISH = re.compile(rb'"finish_reason"\s*:\s*"([a-z_]{1,40})"')
_LIMITS = ("max_completion_tokens", "max_tokens", "max_output_tokens")
_SAMPLING = tuple(
    (field, f"gen_ai.request.{field}")
    for field in ("temperature", "top_p", "frequency_penalty", "presence_penalty")
)
# An answer's own id and model come before anything else in OpenAI's JSON.
_HEAD = 512
# An answer's model not in its head is searched for from this far back, a match the head's end
# cut found whole.
_OVERLAP = 64
# A stream's last reads kept for its finish reasons (`StreamFacts`).
_RECENT = 16


def operation(endpoint: str) -> tuple[str, str] | None:
    """(`gen_ai.operation.name`, `openai.api.type` or "") of an endpoint, None for the rest."""
    return OPERATIONS.get(endpoint)


def span_name(method: str, endpoint: str, model: str) -> str:
    """`{gen_ai.operation.name} {gen_ai.request.model}` for a GenAI operation; otherwise the
    HTTP method alone, the HTTP conventions' name when no low-cardinality route is known."""
    found = OPERATIONS.get(endpoint)
    if found is not None and model:
        return f"{found[0]} {model}"
    return method


def server_attributes(scope: Mapping[str, Any]) -> dict[str, Any]:
    """The HTTP server span's attributes that requests to one route share (ASGI scope); the
    caller's address is apart (`client.address`), being the request's own."""
    attributes: dict[str, Any] = {
        "http.request.method": scope.get("method", ""),
        "url.path": scope.get("path", ""),
        "url.scheme": scope.get("scheme", "http"),
        "network.protocol.version": scope.get("http_version", "1.1"),
    }
    server = scope.get("server")
    if server:
        attributes["server.address"] = str(server[0])
        if server[1] is not None:
            attributes["server.port"] = int(server[1])
    return attributes


def operation_attributes(endpoint: str) -> dict[str, Any]:
    """What names an endpoint's GenAI operation (none for other endpoints)."""
    found = OPERATIONS.get(endpoint)
    if found is None:
        return {}
    name, api = found
    attributes = {
        "gen_ai.operation.name": name,
        "gen_ai.provider.name": PROVIDER,
        "gen_ai.system": PROVIDER,  # the name before gen_ai.provider.name, still widely read
    }
    if api:
        attributes["openai.api.type"] = api
    return attributes


# The fields of a request's body whose values `request_attributes` reads (besides content):
# requests alike in them have the same attributes.
REQUEST_FIELDS = frozenset(
    ("model", *_LIMITS, *(field for field, _ in _SAMPLING), "seed", "n", "stream")
)


def request_attributes(endpoint: str, payload: Mapping[str, Any], capture: bool) -> dict[str, Any]:
    """`gen_ai.request.*` of a GenAI request's body (and its messages, captured); the operation
    is `operation_attributes`'."""
    if endpoint not in OPERATIONS:
        return {}
    attributes: dict[str, Any] = {}
    get = payload.get
    model = get("model")
    # A longer name is no model (its 404 follows): megabytes of it stay off the span.
    if isinstance(model, str) and len(model) <= MAX_MODEL_CHARS:
        attributes["gen_ai.request.model"] = model
    for field in _LIMITS:
        limit = get(field)
        if type(limit) is int:
            attributes["gen_ai.request.max_tokens"] = limit
            break
    for field, key in _SAMPLING:
        value = get(field)
        if value is not None and type(value) in (int, float):
            attributes[key] = float(value)
    for field, key in (("seed", "gen_ai.request.seed"), ("n", "gen_ai.request.choice.count")):
        value = get(field)
        if type(value) is int and (field != "n" or value != 1):
            attributes[key] = value
    if get("stream") is True:
        attributes["gen_ai.request.stream"] = True
    if capture:
        attributes.update(input_content(endpoint, payload))
    return attributes


def answer_attributes(endpoint: str, answer: Any, capture: bool) -> dict[str, Any]:
    """`gen_ai.response.*` and usage of a whole answer (a chat completion, a Response, an
    embeddings list), and its output messages, captured."""
    if not isinstance(answer, dict) or endpoint not in OPERATIONS:
        return {}
    if isinstance(answer.get("response"), dict):
        answer = answer["response"]  # a Responses stream's terminal event
    response_id, model, reasons = parsed_facts(answer)
    attributes: dict[str, Any] = {"gen_ai.response.id": response_id} if response_id else {}
    attributes.update(response_attributes(model, reasons))
    usage = answer.get("usage")
    if isinstance(usage, dict):
        attributes.update(usage_attributes(usage))
    if capture:
        messages = _output_messages(answer)
        if messages:
            attributes["gen_ai.output.messages"] = _json(messages)
    return attributes


def parsed_facts(answer: Mapping[str, Any]) -> tuple[str, str, tuple[str, ...]]:
    """A whole answer's id, model and each choice's `finish_reason`, of its parsed JSON ("" and
    none when it has none)."""
    # A parsed JSON answer is a dict, which the compiled code reads fastest as one.
    body: dict[str, Any] = answer if type(answer) is dict else dict(answer)
    response_id, model, choices = body.get("id"), body.get("model"), body.get("choices")
    reasons: tuple[str, ...] = ()
    if type(choices) is list:
        if len(choices) == 1:  # the usual answer, read without a loop
            choice = choices[0]
            reason = choice.get("finish_reason") if type(choice) is dict else None
            if type(reason) is str:
                reasons = (reason,)
        else:
            found = [c.get("finish_reason") if type(c) is dict else None for c in choices]
            if found and all(type(r) is str for r in found):
                reasons = tuple(cast(list[str], found))
    return (
        response_id if type(response_id) is str else "", model if type(model) is str else "",
        reasons,
    )  # fmt: skip


def answer_facts(content: bytes) -> tuple[str, str, tuple[str, ...]]:
    """A whole answer's id, model and each choice's `finish_reason`, read from its bytes
    without parsing it: its first id and model (found early in the answer; an embeddings list
    names its model after the vectors), "" when it has none."""
    found = _FIRST_ID.search(content, 0, _HEAD)
    response_id = found.group(1).decode() if found else ""
    found = _FIRST_MODEL.search(content, 0, _HEAD) or _FIRST_MODEL.search(content, _HEAD - _OVERLAP)
    model = found.group(1).decode() if found else ""
    return response_id, model, tuple(r.decode() for r in _FINISH.findall(content))


def response_attributes(model: str, finish_reasons: tuple[str, ...]) -> dict[str, Any]:
    """`gen_ai.response.model` and `.finish_reasons`, which many answers share (unlike their
    id)."""
    attributes: dict[str, Any] = {}
    if model:
        attributes["gen_ai.response.model"] = model
    if finish_reasons:
        attributes["gen_ai.response.finish_reasons"] = list(finish_reasons)
    return attributes


def usage_attributes(usage: Mapping[str, Any]) -> dict[str, Any]:
    """`gen_ai.usage.*` of an OpenAI usage object (chat's or the Responses API's names)."""
    attributes: dict[str, Any] = {}
    for key, names in (
        ("gen_ai.usage.input_tokens", ("prompt_tokens", "input_tokens")),
        ("gen_ai.usage.output_tokens", ("completion_tokens", "output_tokens")),
    ):
        value = next((usage[n] for n in names if isinstance(usage.get(n), int)), None)
        if value is not None:
            attributes[key] = value
    return attributes


def decision_key(ex: Exchange) -> tuple[Any, ...]:
    """What `decision_attributes` read besides the status: requests alike in it share those
    attributes' encoding (a few teams, models and routes make few of them)."""
    return (
        ex.team,
        ex.routed_model,
        ex.policy,
        ex.route_reason,
        ex.patches,
        ex.cache,
        ex.error_code,
    )


def decision_attributes(ex: Exchange, status: int) -> dict[str, Any]:
    """The status and the gateway's decisions: who, which model, which route, which patches."""
    attributes: dict[str, Any] = {"http.response.status_code": status}
    for key, value in (
        ("gateway.team", ex.team),
        ("gateway.routed_model", ex.routed_model),
        ("gateway.route.policy", ex.policy),
        ("gateway.route.reason", ex.route_reason if ex.policy else ""),
        ("gateway.patches", ex.patches),
        ("gateway.cache.status", ex.cache),
        ("gateway.error.code", ex.error_code),
    ):
        if value:
            attributes[key] = value
    return attributes


def charge_attributes(ex: Exchange) -> dict[str, Any]:
    """The request's own: its id, what it was charged, its first chunk's time."""
    attributes: dict[str, Any] = {}
    if ex.request_id:
        attributes["gateway.request_id"] = ex.request_id
    ticket = ex.ticket
    if ticket is not None and ticket.usage is not None:
        # What was charged: the usage upstream reported, or what the gateway counted.
        attributes["gateway.cost_micros"] = ticket.cost
        attributes["gen_ai.usage.input_tokens"] = ticket.usage.prompt_tokens
        attributes["gen_ai.usage.output_tokens"] = ticket.usage.completion_tokens
    if ex.first_token_at is not None:
        attributes["gen_ai.response.time_to_first_chunk"] = ex.first_token_at - ex.started
    return attributes


def error_type(ex: Exchange, status: int) -> str:
    """The server span's `error.type`, "" when it did not fail: a 5xx (a 4xx is the caller's,
    which the HTTP conventions leave unmarked on a server span), or a stream cut by an error
    after its 200."""
    if status >= 500:
        return ex.error_code or str(status)
    if status == 200 and ex.error_code:
        return ex.error_code
    return ""


class StreamFacts:
    """What a relayed stream says about its answer: its first id and model, each
    `finish_reason`. Nothing is searched while the stream goes by (a search per read cost more
    than the rest of tracing a stream): its first reads, up to `_HEAD` bytes, and its last
    `_RECENT` reads are kept, and read when it ends. A choice's finish reason comes in its last
    chunk, before only the usage chunk and `[DONE]`: a stream of one choice has it last. A
    stream of several choices, whose first may finish long before the stream does, or one whose
    output is captured, is kept whole."""

    __slots__ = ("_head", "_head_size", "_reads")

    def __init__(self, whole: bool) -> None:
        self._head: list[bytes] = []
        self._head_size = 0
        self._reads: deque[bytes] = deque(maxlen=None if whole else _RECENT)

    def feed(self, chunk: bytes) -> Callable[[bytes], None] | None:
        """Keep a read of the stream's head; once the head is read, the reads that follow
        are only kept, which the deque's own append does (a call into C, not into this)."""
        self._reads.append(chunk)
        self._head.append(chunk)
        self._head_size += len(chunk)
        return self._reads.append if self._head_size >= _HEAD else None

    def facts(self) -> tuple[str, str, tuple[str, ...]]:
        """The answer's id, model and finish reasons, as `answer_facts` reads them."""
        head = b"".join(self._head)
        found = _FIRST_ID.search(head)
        response_id = found.group(1).decode() if found else ""
        found = _FIRST_MODEL.search(head)
        model = found.group(1).decode() if found else ""
        if self._reads.maxlen is None:  # kept whole: every choice's
            reasons = _FINISH.findall(b"".join(self._reads))
        else:
            reasons = _last_reason(self._reads)
        return response_id, model, tuple(reason.decode() for reason in reasons)

    def captured(self) -> dict[str, Any]:
        """The output messages (of a stream kept whole: captured)."""
        messages = streamed_output(b"".join(self._reads))
        return {"gen_ai.output.messages": _json(messages)} if messages else {}


def _last_reason(reads: deque[bytes]) -> list[bytes]:
    """A one-choice stream's finish reason: its last, read back from its last reads until one
    is found (a regular expression over the whole stream, or joining it, costs more than
    tracing the rest of it). The last read is searched as it is: a read of many events (a
    stream that came faster than it was relayed) holds the reason, and copying it cost more
    than the search."""
    text = b""
    for read in reversed(reads):
        text = read + text if text else read
        at = text.rfind(b'"finish_reason"')
        if at >= 0:
            found = _FINISH.match(text, at)
            return [found.group(1)] if found else []  # null: the stream stopped short
    return []


def streamed_output(stream: bytes) -> list[dict[str, Any]]:
    """The output messages of a whole event stream: chat chunks' deltas joined per choice, or
    the Response a Responses stream ends with."""
    texts: dict[int, list[str]] = {}
    reasons: dict[int, str] = {}
    for data in sse.events(stream):
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(event, dict):
            continue
        if event.get("type") in ("response.completed", "response.incomplete"):
            return _output_messages(event.get("response"))
        for choice in event.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            index = choice.get("index", 0)
            delta = choice.get("delta")
            if isinstance(delta, dict) and isinstance(delta.get("content"), str):
                texts.setdefault(index, []).append(delta["content"])
            if isinstance(choice.get("finish_reason"), str):
                reasons[index] = choice["finish_reason"]
    return [
        _message("assistant", "".join(texts.get(i, ())), reasons.get(i))
        for i in sorted(texts.keys() | reasons.keys())
    ]


# -- content (captured only) -------------------------------------------------------------------


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _message(role: str, text: str, finish_reason: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": role, "parts": [{"type": "text", "content": text}]}
    if finish_reason is not None:
        message["finish_reason"] = finish_reason
    return message


def _parts(content: Any) -> list[dict[str, Any]]:
    """A message's content as the conventions' parts: text kept, other parts named by type."""
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    parts: list[dict[str, Any]] = []
    for part in content if isinstance(content, list) else ():
        if not isinstance(part, dict):
            continue
        text = part.get("text")
        if isinstance(text, str):
            parts.append({"type": "text", "content": text})
        else:
            parts.append({"type": str(part.get("type", "unknown"))})
    return parts


def _chat_message(message: Mapping[str, Any]) -> dict[str, Any]:
    parts = _parts(message.get("content"))
    for call in message.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            parts.append(
                {"type": "tool_call", "id": call.get("id"), "name": function.get("name"),
                 "arguments": function.get("arguments")}
            )  # fmt: skip
    role = str(message.get("role", "user"))
    if role == "tool":
        parts = [
            {"type": "tool_call_response", "id": message.get("tool_call_id"),
             "response": message.get("content")}
        ]  # fmt: skip
    return {"role": role, "parts": parts}


def input_content(endpoint: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """`gen_ai.input.messages` and `gen_ai.system_instructions` of a request (captured only)."""
    attributes: dict[str, Any] = {}
    if endpoint == "chat":
        messages = payload.get("messages")
        if isinstance(messages, list):
            attributes["gen_ai.input.messages"] = _json(
                [_chat_message(m) for m in messages if isinstance(m, dict)]
            )
    elif endpoint == "responses":
        given = payload.get("input")
        if isinstance(given, str):
            attributes["gen_ai.input.messages"] = _json([_message("user", given)])
        elif isinstance(given, list):
            attributes["gen_ai.input.messages"] = _json(
                [
                    {"role": str(item.get("role", "user")), "parts": _parts(item.get("content"))}
                    for item in given
                    if isinstance(item, dict) and "content" in item
                ]
            )
        instructions = payload.get("instructions")
        if isinstance(instructions, str):
            attributes["gen_ai.system_instructions"] = _json(
                [{"type": "text", "content": instructions}]
            )
    return attributes


def _output_messages(answer: Any) -> list[dict[str, Any]]:
    if not isinstance(answer, dict):
        return []
    choices = answer.get("choices")
    if isinstance(choices, list):
        return [
            {**_chat_message(c["message"]), "finish_reason": c.get("finish_reason")}
            for c in choices
            if isinstance(c, dict) and isinstance(c.get("message"), dict)
        ]
    output = answer.get("output")
    if isinstance(output, list):  # a Response: its message items
        return [
            {"role": "assistant", "parts": _parts(item.get("content"))}
            for item in output
            if isinstance(item, dict) and item.get("type") == "message"
        ]
    return []
