"""OpenTelemetry traces without an SDK: each traced request's spans, recorded in a few slots
and exported in batches as OTLP/HTTP JSON (`span_export`).

A tracing SDK pays, per span, for contexts, locks, span processors and a protobuf encoder; the
gateway spends about 0.3 ms of CPU on a whole proxied call, so a request's three spans must cost
microseconds. Here a request's spans are a few values in slots (its children's, a small object
each), their ids drawn many requests' at a time from the operating system's random source, and
they are encoded together when the request ends: into a template of the request's shape
(`otlp_json`), kept for all the requests alike (the same route, request parameters, decisions
and answer kind), whose holes take the request's ids, times and own values. The package's build
compiles this module and the pure ones it uses with mypyc (`setup.py`).

A request's span is the SERVER span `{gen_ai.operation.name} {gen_ai.request.model}`, continuing
the caller's W3C `traceparent` (and `tracestate`). Its children: `gateway.admission.reserve` (the
hold taken in Redis) and the upstream call (a CLIENT span whose `traceparent` goes upstream);
how the hold was settled is the request span's `gateway.settle.outcome`. Spans never hold the
request's headers or keys; prompts and answers only with content capture on. Sampling is
OpenTelemetry's default, parent-based: a caller's sampled flag is followed, and a trace begun
here is kept by the ratio of `TraceIdRatioBased`.
"""

from __future__ import annotations

import random
from binascii import hexlify
from collections.abc import Mapping
from os import urandom
from time import time_ns
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import orjson

from gateway.observability import trace_attributes as attrs
from gateway.observability.otlp_json import (
    CLIENT,
    ENCODED,
    INTERNAL,
    SERVER,
    hole,
    literal,
    shared_attributes,
    span_template,
)
from gateway.observability.record import Exchange, StreamObserver
from gateway.observability.span_export import Client, SpanExport
from gateway.observability.span_queue import SpanQueue
from gateway.observability.trace_context import caller_parent, kept, ratio_bound, traceparent
from gateway.observability.trace_settings import TraceSettings
from gateway.wire.validation import MAX_MODEL_CHARS

SCOPE_NAME = "o1-gateway"
_dumps = orjson.dumps

# Encoded attributes kept per route, upstream call kind, decision, request parameters and
# answer kind (`Tracing.keep`): past this many in one cache, it starts again.
_SHARED_KINDS = 256
# Request shapes whose template is kept; past this many, they start again.
_TEMPLATES = 512
_Kept = TypeVar("_Kept")
# The lowest bit of each of n 64-bit ids drawn at once, set so that none is all zeros (no id).
_ODD = [sum(1 << (64 * i) for i in range(n)) for n in range(6)]
# Requests whose ids (a trace id and three span ids: 80 hex digits) are drawn at once: one draw
# and one conversion to hex for many costs less than one each.
_POOLED = 64
_NO_ID = b"0" * 16  # an id of zeros is no id: a draw holding one (odds of 2**-64 an id) is redrawn
# The request span's own values (`RequestTrace.finish`), each present or not: its template has
# holes for those present, in this order.
_REQUEST_ID, _RESPONSE_ID, _USAGE, _FIRST_CHUNK, _OTHERS = 1, 2, 4, 8, 16
_OWN_HOLES = (
    (_REQUEST_ID, (hole("gateway.request_id", str),)),
    (_RESPONSE_ID, (hole("gen_ai.response.id", str),)),
    (_USAGE, (hole("gateway.cost_micros", int), hole("gen_ai.usage.input_tokens", int),
              hole("gen_ai.usage.output_tokens", int))),
    (_FIRST_CHUNK, (hole("gen_ai.response.time_to_first_chunk", float),)),
    (_OTHERS, (ENCODED,)),  # attributes of the rarer cases, encoded apart (`shared_attributes`)
)  # fmt: skip


class ChildShape(Protocol):
    """What a kind of child span knows: its template, by what it says that many say alike."""

    def template(self, said: Any) -> bytes: ...


class Reserve:
    """The admission span, `gateway.admission.reserve`: it says (admitted, degraded, refused
    by, error), or nothing (left open); its holes take what was held and the tokens
    estimated."""

    def template(self, said: tuple[bool, bool, str, str] | None) -> bytes:
        attributes: dict[str, Any] = {}
        holes: tuple[bytes, ...] = ()
        if said is not None:
            admitted, degraded, refused_by, error = said
            if error:
                attributes["error.type"] = error
            else:
                attributes["gateway.admission.admitted"] = admitted
                holes = (
                    hole("gateway.admission.reserve_micros", int),
                    hole("gateway.admission.estimated_tokens", int),
                )
                if degraded:
                    attributes["gateway.admission.degraded"] = True
                if refused_by:
                    attributes["gateway.admission.refused_by"] = refused_by
        failed = said is not None and bool(said[3])
        parts = (literal(shared_attributes(attributes)), *holes)
        return span_template("gateway.admission.reserve", INTERNAL, True, failed, parts)


RESERVE = Reserve()


class Call:
    """An upstream call's span: its name and the attributes calls alike share; it says (status,
    error), or nothing (left open)."""

    def __init__(self, name: str, shared: bytes) -> None:
        self.name = name
        self.shared = shared

    def template(self, said: tuple[int, str] | None) -> bytes:
        status, error = said or (0, "")
        own: dict[str, Any] = {"error.type": error} if error else {}
        if status:
            own["http.response.status_code"] = status
        parts = (literal(shared_attributes(own)), literal(self.shared))
        return span_template(self.name, CLIENT, True, bool(error), parts)


class Tracing:
    """The gateway's tracer, made in the lifespan; `run` exports in the background and `close`
    sends what is left."""

    def __init__(self, settings: TraceSettings, upstream_base_url: str, client: Client) -> None:
        self.capture = settings.capture_content
        self.bound = ratio_bound(settings.sample_ratio)
        self.partial = self.bound < 1 << 64  # some of the traces begun here are not kept
        self.export = SpanExport(client, settings.export, settings.service_name, SCOPE_NAME)
        self.queue: SpanQueue = self.export.queue
        # Made in each worker (the lifespan runs there), so forked workers never share ids.
        self.bits = random.Random().getrandbits
        self.pool = b""  # ids drawn for the next requests beginning traces here
        self.taken = 0  # of `pool`
        upstream = urlsplit(upstream_base_url)
        port = upstream.port or (443 if upstream.scheme == "https" else 80)
        self.upstream_server: dict[str, Any] = {
            "server.address": upstream.hostname or "",
            "server.port": port,
        }
        self.routes: dict[tuple[Any, ...], bytes] = {}
        self.calls: dict[tuple[str, str, str], Call] = {}
        self.decisions: dict[tuple[Any, ...], bytes] = {}
        self.requests: dict[tuple[Any, ...], tuple[bytes, str]] = {}
        self.responses: dict[tuple[str, tuple[str, ...]], bytes] = {}
        self.templates: dict[tuple[Any, ...], bytes] = {}

    def ids(self, count: int) -> bytes:
        """`count` span ids (64 bits each) drawn at once, as lower-case hex: one draw costs less
        than a draw each."""
        return b"%0*x" % (count << 4, self.bits(count << 6) | _ODD[count])

    def begin(self, scope: dict[str, Any], endpoint: str) -> RequestTrace | None:
        """The request's span, continuing the caller's trace; None when it is not sampled (a
        request nobody will see costs no more work). The ids of the request's span and of its
        first two children are drawn with it (and the trace's, when it begins here)."""
        parent = caller_parent(scope["headers"])
        if parent is not None:
            if not parent.sampled:
                return None
            trace_id, parent_id, state = parent.trace_id, parent.span_id, parent.state
            ids = self.ids(3)
        else:
            at = self.taken
            if at >= len(self.pool):
                pool = hexlify(urandom(40 * _POOLED))
                while _NO_ID in pool:
                    pool = hexlify(urandom(40 * _POOLED))
                self.pool = pool
                at = 0
            self.taken = at + 80
            # Kept by the trace id's low 64 bits (all kept at a ratio of 1: nothing to read).
            if self.partial and not kept(int(self.pool[at + 16 : at + 32], 16), self.bound):
                return None
            trace_id, ids = self.pool[at : at + 32], self.pool[at + 32 : at + 80]
            parent_id, state = b"", ""
        # What of the scope the route's attributes read (`attrs.server_attributes`).
        client = scope.get("client")
        route = (
            scope.get("path"), endpoint, client[0] if client else None, scope.get("server"),
            scope.get("method"), scope.get("scheme"), scope.get("http_version"),
        )  # fmt: skip
        shared = self.routes.get(route)
        if shared is None:
            attributes = {**attrs.server_attributes(scope), **attrs.operation_attributes(endpoint)}
            if client:
                attributes["client.address"] = str(client[0])
            shared = self.keep(self.routes, route, shared_attributes(attributes))
        return RequestTrace(self, trace_id, ids, parent_id, state, shared)

    def call(self, method: str, path: str, model: str) -> Call:
        """An upstream call's span name and shared attributes."""
        key = (method, path, model)
        found = self.calls.get(key)
        if found is None:
            endpoint = path.lstrip("/").split("/", 1)[0]
            operation = attrs.operation(endpoint)
            attributes = {
                **self.upstream_server, "http.request.method": method, "url.path": path,
            }  # fmt: skip
            name = method
            if operation is not None and model:
                name = f"{operation[0]} {model}"
                attributes["gen_ai.operation.name"] = operation[0]
                attributes["gen_ai.provider.name"] = attrs.PROVIDER
                attributes["gen_ai.request.model"] = model
            found = self.keep(self.calls, key, Call(name, shared_attributes(attributes)))
        return found

    def decided(self, exchange: Exchange, status: int, outcome: str) -> bytes:
        """A request span's decision attributes (and how its hold was settled), encoded once
        for all the requests alike in them."""
        key = (status, outcome, attrs.decision_key(exchange))
        found = self.decisions.get(key)
        if found is None:
            attributes = attrs.decision_attributes(exchange, status)
            if outcome:
                attributes["gateway.settle.outcome"] = outcome
            found = self.keep(self.decisions, key, shared_attributes(attributes))
        return found

    def requested(
        self, endpoint: str, payload: Mapping[str, Any] | None, model: str
    ) -> tuple[bytes, str]:
        """A GenAI request's `gen_ai.request.*` (of its body, and `model`, the configured model
        or policy it named, when known), encoded once for all the requests alike in them; and
        its span's name ("" when it is not a GenAI operation: the HTTP method names it)."""
        if endpoint not in attrs.OPERATIONS:
            return b"", ""
        key: list[Any] = [endpoint, model]
        if payload is not None:
            # The fields a body has (few: fewer lookups than asking for each field read), and
            # their types, which tell apart what equality does not (`1`, `1.0` and `true`).
            fields = attrs.REQUEST_FIELDS
            # A parsed JSON body is a dict, whose items the compiled loop reads fastest as one.
            body: dict[str, Any] = payload if type(payload) is dict else dict(payload)
            for field, value in body.items():
                if field in fields:
                    kind = type(value)
                    if kind is str and len(value) > MAX_MODEL_CHARS:
                        value = []  # a client's long string: never kept (256 may be gigabytes)
                    key.append(field)
                    key.append(value)
                    key.append(kind)
        try:
            found = self.requests.get(shape := tuple(key))
        except TypeError:  # a list or an object among the values: encoded for itself
            found, shape = None, ()
        if found is None:
            attributes = (
                {} if payload is None else attrs.request_attributes(endpoint, payload, False)
            )
            if model:
                attributes["gen_ai.request.model"] = model
            named = str(attributes.get("gen_ai.request.model", ""))
            name = attrs.span_name("", endpoint, named)
            found = shared_attributes(attributes), name
            if shape:
                self.keep(self.requests, shape, found)
        return found

    def responded(self, model: str, finish_reasons: tuple[str, ...]) -> bytes:
        """An answer's model and finish reasons, encoded once for all the answers alike."""
        key = (model, finish_reasons)
        found = self.responses.get(key)
        if found is None:
            attributes = attrs.response_attributes(model, finish_reasons)
            found = self.keep(self.responses, key, shared_attributes(attributes))
        return found

    @staticmethod
    def keep(cache: dict[Any, _Kept], key: Any, value: _Kept) -> _Kept:
        """`value` kept in `cache` under `key`; a cache full of kinds starts again (paths with
        ids in them, or clients' odd values, would make it grow)."""
        if len(cache) >= _SHARED_KINDS:
            cache.clear()
        cache[key] = value
        return value

    async def run(self) -> None:
        await self.export.run()

    async def close(self) -> None:
        await self.export.close()


class Child:
    """A child span begun: its shape, id and start, and whether it has ended."""

    __slots__ = ("ended", "shape", "span_id", "start_ns")

    def __init__(self, shape: ChildShape, span_id: bytes, start_ns: int) -> None:
        self.shape = shape
        self.span_id = span_id
        self.start_ns = start_ns
        self.ended = False


class RequestTrace:
    """One traced request's spans (see `gateway.observability.record.RequestTrace`). They
    leave together when the request's own span ends, encoded at once.

    A child span, while open, is a `Child`. When it ends it is written down for the template:
    its shape and what it says (which its shape's template reads) in `said`, its template's
    holes (its ids, times and own values) in `holes`."""

    __slots__ = (
        "answer", "call", "children", "facts", "holes", "ids", "outcome", "parent_id",
        "parsed_answer", "payload", "route", "said", "span_id", "start_ns", "state", "taken",
        "trace_id", "tracing",
    )  # fmt: skip

    def __init__(
        self, tracing: Tracing, trace_id: bytes, ids: bytes, parent_id: bytes, state: str,
        route: bytes,
    ) -> None:  # fmt: skip
        self.tracing = tracing
        self.trace_id = trace_id
        self.span_id = ids[:16]
        self.ids = ids  # the span's own id, then its first children's
        self.taken = 16
        self.parent_id = parent_id  # b"" for a trace begun here
        self.state = state  # the caller's `tracestate`, passed upstream
        self.route = route  # the route's attributes, encoded
        self.start_ns = time_ns()
        self.payload: Mapping[str, Any] | None = None
        self.answer: bytes | None = None
        self.parsed_answer: Mapping[str, Any] | None = None  # the answer, as charging read it
        self.facts: attrs.StreamFacts | None = None
        self.call: Child | None = None  # the upstream call under way
        self.children: list[Child] = []  # in the order begun
        self.said: list[Any] = []  # of the children ended, in the order ended
        self.holes: list[Any] = []  # theirs
        self.outcome = ""  # how the hold was settled (`gateway.settle.outcome`)

    def child(self, shape: ChildShape) -> Child:
        """A child span begun now."""
        at = self.taken
        if at < len(self.ids):
            self.taken = at + 16
            span_id = self.ids[at : at + 16]
        else:
            span_id = self.tracing.ids(1)  # a request retried or sent on to a fallback
        child = Child(shape, span_id, time_ns())
        self.children.append(child)
        return child

    def ended(self, child: Child, said: Any, values: tuple[int, ...] = (), end_ns: int = 0) -> None:
        """`child` ends now (or at `end_ns`): what it says and its holes written down."""
        child.ended = True
        self.said.append(child.shape)
        self.said.append(said)
        holes = self.holes
        holes.append(self.trace_id)
        holes.append(child.span_id)
        holes.append(self.span_id)
        holes.append(child.start_ns)
        holes.append(end_ns or time_ns())
        for value in values:
            holes.append(value)

    def request(self, payload: Mapping[str, Any]) -> None:
        self.payload = payload

    def reserving(self) -> object:
        return self.child(RESERVE)

    def reserved(
        self, span: object, error: str, admitted: bool = False, held: int = 0,
        estimated: int = 0, degraded: bool = False, refused_by: str = "",
    ) -> None:  # fmt: skip
        assert type(span) is Child
        if span.ended:
            return  # ended already
        if error:
            self.ended(span, (False, False, "", error))
        else:
            self.ended(span, (admitted, degraded, refused_by, ""), (held, estimated))

    def upstream(self, headers: dict[str, str], method: str, path: str, model: str) -> None:
        if self.call is not None:
            # Begun already: a call made ready during admission is the same call when sent.
            return
        call = self.call = self.child(self.tracing.call(method, path, model))
        headers["traceparent"] = traceparent(self.trace_id, call.span_id)
        if self.state:
            headers["tracestate"] = self.state
        else:
            headers.pop("tracestate", None)  # a caller's, of a trace not continued

    def upstream_done(self, status: int, error: str = "") -> None:
        call = self.call
        if call is None:
            return
        self.call = None
        # A client span's 4xx is an error too (the HTTP conventions): the call did not succeed.
        self.ended(call, (status, error or (str(status) if status >= 400 else "")))

    def answered(self, content: bytes) -> None:
        self.answer = content

    def read(self, answer: Mapping[str, Any]) -> None:
        self.parsed_answer = answer

    def streaming(self) -> StreamObserver:
        facts = self.facts
        if facts is None:
            # Kept whole when captured or when several choices may finish far from its end.
            choices = self.payload.get("n") if self.payload is not None else None
            whole = self.tracing.capture or (type(choices) is int and choices > 1)
            facts = self.facts = attrs.StreamFacts(whole)
        return facts.feed

    def settling(self, outcome: str, cost: int) -> None:
        # The charge itself is the record's (`gateway.cost_micros`), read when the span ends.
        self.outcome = outcome

    def finish(self, exchange: Exchange, end_ns: int) -> None:
        """Everything the request's span says, and its end (called after the response); the
        request's spans leave, encoded."""
        tracing = self.tracing
        endpoint = exchange.endpoint
        status = exchange.status or 499
        operation = endpoint in attrs.OPERATIONS
        requested, name = tracing.requested(endpoint, self.payload, exchange.model)
        responded = b""
        own: list[Any] = []
        mask = 0
        ticket = exchange.ticket
        if operation and (tracing.capture or ticket is None):
            others = self.others(exchange, status)
            if others:
                own.append(others)
                mask = _OTHERS
        else:
            facts: tuple[str, str, tuple[str, ...]] | None = None
            if operation and self.facts is not None:
                facts = self.facts.facts()
            elif operation and self.answer is not None and status < 400:
                # Read as charging parsed it, or found in its bytes.
                parsed = self.parsed_answer
                facts = attrs.answer_facts(self.answer) if parsed is None else (
                    attrs.parsed_facts(parsed)
                )  # fmt: skip
            if exchange.request_id:
                own.append(_dumps(exchange.request_id))
                mask = _REQUEST_ID
            if facts is not None:
                response_id, model, reasons = facts
                if response_id:
                    own.append(_dumps(response_id))
                    mask |= _RESPONSE_ID
                responded = tracing.responded(model, reasons)
            if ticket is not None and ticket.usage is not None:
                # What was charged: the usage upstream reported, or what the gateway counted.
                usage = ticket.usage
                own.extend((ticket.cost, usage.prompt_tokens, usage.completion_tokens))
                mask |= _USAGE
            if exchange.first_token_at is not None:
                own.append(_dumps(exchange.first_token_at - exchange.started))
                mask |= _FIRST_CHUNK
        decided = tracing.decided(exchange, status, self.outcome)
        error = attrs.error_type(exchange, status)
        name = name or exchange.method
        said, count = self.said, len(self.children)
        if len(said) < 2 * count:
            for child in self.children:
                if not child.ended:  # left open by a failure: it ends with the request
                    self.ended(child, None, (), end_ns)
        shapes = (
            name, error, mask, not self.parent_id, self.route, requested, responded, decided,
            tuple(said),
        )  # fmt: skip
        template = tracing.templates.get(shapes)
        if template is None:
            template = self.template(name, error, mask, requested, responded, decided)
            if len(tracing.templates) >= _TEMPLATES:
                tracing.templates.clear()
            tracing.templates[shapes] = template
        # The children's holes, then the request's span's, whose parent is the caller's if it
        # has one (spans leave in any order: the ids make the tree).
        holes = self.holes
        holes.append(self.trace_id)
        holes.append(self.span_id)
        if self.parent_id:
            holes.append(self.parent_id)
        holes.append(self.start_ns)
        holes.append(end_ns)
        for value in own:
            holes.append(value)
        tracing.queue.add(template % tuple(holes), count + 1)
        self.children = []
        self.call = None

    def template(
        self, name: str, error: str, mask: int, requested: bytes, responded: bytes,
        decided: bytes,
    ) -> bytes:  # fmt: skip
        """The template of the request's spans: its children's, then its own."""
        parts: list[bytes] = []
        if error:
            parts.append(literal(shared_attributes({"error.type": error})))
        for bit, holes in _OWN_HOLES:
            if mask & bit:
                parts += holes
        parts += (literal(shared) for shared in (self.route, requested, responded, decided))
        said = self.said
        spans = [shape.template(told) for shape, told in zip(said[::2], said[1::2], strict=True)]
        spans.append(span_template(name, SERVER, bool(self.parent_id), bool(error), parts))
        return b",".join(spans)

    def others(self, exchange: Exchange, status: int) -> bytes:
        """The request span's own attributes when its content is captured, or when nothing was
        charged (admission off: the answer's own usage says what it used), encoded."""
        payload, attributes = self.payload, {}
        endpoint = exchange.endpoint
        if self.tracing.capture and payload is not None:
            attributes.update(attrs.input_content(endpoint, payload))
        if self.answer is not None and status < 400:
            attributes.update(self.parsed(endpoint, self.answer))
        if self.facts is not None:
            facts = self.facts.facts()
            response_id, model, reasons = facts
            if response_id:
                attributes["gen_ai.response.id"] = response_id
            attributes.update(attrs.response_attributes(model, reasons))
            if self.tracing.capture:
                attributes.update(self.facts.captured())
        # The record's charge over the answer's own usage: what the gateway counted.
        attributes.update(attrs.charge_attributes(exchange))
        return shared_attributes(attributes)

    def parsed(self, endpoint: str, content: bytes) -> dict[str, Any]:
        """A whole answer's attributes, parsed: its usage (nothing was charged) or its output
        (captured)."""
        answer = self.parsed_answer
        if answer is None:
            try:
                answer = orjson.loads(content)
            except orjson.JSONDecodeError:
                return {}
        return attrs.answer_attributes(endpoint, answer, self.tracing.capture)
