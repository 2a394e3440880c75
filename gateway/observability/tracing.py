"""OpenTelemetry traces without an SDK: each traced request's spans, recorded in a few slots
each (`spans.Span`) and exported in batches as OTLP/HTTP JSON (`span_export`).

A tracing SDK pays, per span, for contexts, locks, span processors and a protobuf encoder; the
gateway spends about 0.3 ms of CPU on a whole proxied call, so a request's three spans must cost
microseconds. Here a span is a plain object, its ids come from one per-process random generator,
and a request's spans are encoded together when it ends (`otlp_json.SpanEncoder`), attributes
that many requests share encoded once for all of them.

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
from collections.abc import Callable, Mapping
from time import time_ns
from typing import Any, TypeVar
from urllib.parse import urlsplit

import orjson

from gateway.observability import trace_attributes as attrs
from gateway.observability.otlp_json import shared_attributes
from gateway.observability.record import Exchange
from gateway.observability.span_export import Client, SpanExport
from gateway.observability.spans import CLIENT, INTERNAL, SERVER, Span
from gateway.observability.trace_context import caller_parent, kept, ratio_bound, traceparent
from gateway.observability.trace_settings import TraceSettings

SCOPE_NAME = "o1-gateway"
_dumps = orjson.dumps


# Encoded attribute lists kept per route, upstream call kind, decision, request parameters and
# answer kind (`Tracing.keep`): past this many in one cache, it starts again.
_SHARED_KINDS = 256
_LOW_64 = (1 << 64) - 1
_Kept = TypeVar("_Kept")


class Tracing:
    """The gateway's tracer, made in the lifespan; `run` exports in the background and `close`
    sends what is left."""

    def __init__(self, settings: TraceSettings, upstream_base_url: str, client: Client) -> None:
        self.capture = settings.capture_content
        self.bound = ratio_bound(settings.sample_ratio)
        self.export = SpanExport(client, settings.export, settings.service_name, SCOPE_NAME)
        # Made in each worker (the lifespan runs there), so forked workers never share ids.
        self.bits = random.Random().getrandbits
        upstream = urlsplit(upstream_base_url)
        port = upstream.port or (443 if upstream.scheme == "https" else 80)
        self.upstream_server: dict[str, Any] = {
            "server.address": upstream.hostname or "",
            "server.port": port,
        }
        self.routes: dict[tuple[Any, ...], tuple[bytes, ...]] = {}
        self.calls: dict[tuple[str, str, str], tuple[str, tuple[bytes, ...]]] = {}
        self.decisions: dict[tuple[Any, ...], tuple[bytes]] = {}
        self.requests: dict[tuple[Any, ...], tuple[tuple[bytes, ...], str]] = {}
        self.responses: dict[tuple[str, tuple[str, ...]], tuple[bytes, ...]] = {}

    def span_id(self) -> bytes:
        return b"%016x" % (self.bits(64) or 1)  # all zeros is no id

    def begin(self, scope: Mapping[str, Any], endpoint: str) -> RequestTrace | None:
        """The request's span, continuing the caller's trace; None when it is not sampled (a
        request nobody will see costs no more work)."""
        parent = caller_parent(scope["headers"])
        if parent is not None:
            if not parent.sampled:
                return None
            trace_id, parent_id, state = parent.trace_id, parent.span_id, parent.state
            span_id = self.span_id()
        else:
            # The trace's id and its first span's, drawn at once.
            number = self.bits(192)
            if not kept(number >> 64, self.bound):
                return None
            if not number >> 64 or not number & _LOW_64:
                number |= 1 << 64 | 1  # all zeros is no id
            ids = b"%048x" % number
            trace_id, span_id, parent_id, state = ids[:32], ids[32:], b"", ""
        # What of the scope the route's attributes read (`attrs.server_attributes`).
        client, get = scope.get("client"), scope.get
        route = (
            get("path"), endpoint, client[0] if client else None, get("server"), get("method"),
            get("scheme"), get("http_version"),
        )  # fmt: skip
        shared = self.routes.get(route)
        if shared is None:
            attributes = {**attrs.server_attributes(scope), **attrs.operation_attributes(endpoint)}
            if client:
                attributes["client.address"] = str(client[0])
            shared = self.keep(self.routes, route, (shared_attributes(attributes),))
        span = Span(trace_id, span_id, parent_id, scope["method"], SERVER, time_ns(), {}, shared)
        return RequestTrace(self, span, state)

    def call(self, method: str, path: str, model: str) -> tuple[str, tuple[bytes, ...]]:
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
            found = self.keep(self.calls, key, (name, (shared_attributes(attributes),)))
        return found

    def decided(self, exchange: Exchange, status: int, outcome: str) -> tuple[bytes]:
        """A request span's decision attributes (and how its hold was settled), encoded once
        for all the requests alike in them."""
        key = (*attrs.decision_key(exchange, status), outcome)
        found = self.decisions.get(key)
        if found is None:
            attributes = attrs.decision_attributes(exchange, status)
            if outcome:
                attributes["gateway.settle.outcome"] = outcome
            found = self.keep(self.decisions, key, (shared_attributes(attributes),))
        return found

    def requested(
        self, endpoint: str, payload: Mapping[str, Any] | None, model: str
    ) -> tuple[tuple[bytes, ...], str]:
        """A GenAI request's `gen_ai.request.*` (of its body, and `model`, the configured model
        or policy it named, when known), encoded once for all the requests alike in them; and
        the model it names."""
        if endpoint not in attrs.OPERATIONS:
            return (), ""
        key: tuple[Any, ...] = (endpoint, model)
        if payload is not None:
            # The fields' JSON tells apart what equality does not (`1`, `1.0` and `true`), and
            # is a key whatever the values (lists too).
            try:
                key = (*key, _dumps(tuple(map(payload.get, attrs.REQUEST_FIELDS))))
            except orjson.JSONEncodeError:  # no JSON (an integer past 64 bits): its own
                key = ()
        found = self.requests.get(key) if key else None
        if found is None:
            attributes = (
                {} if payload is None else attrs.request_attributes(endpoint, payload, False)
            )
            if model:
                attributes["gen_ai.request.model"] = model
            encoded = (shared_attributes(attributes),) if attributes else ()
            found = encoded, str(attributes.get("gen_ai.request.model", ""))
            if key:
                self.keep(self.requests, key, found)
        return found

    def responded(self, model: str, finish_reasons: tuple[str, ...]) -> tuple[bytes, ...]:
        """An answer's model and finish reasons, encoded once for all the answers alike."""
        key = (model, finish_reasons)
        found = self.responses.get(key)
        if found is None:
            attributes = attrs.response_attributes(model, finish_reasons)
            encoded = (shared_attributes(attributes),) if attributes else ()
            found = self.keep(self.responses, key, encoded)
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


class RequestTrace:
    """One traced request's spans (see `gateway.observability.record.RequestTrace`). They
    leave together when the request's own span ends, encoded at once."""

    __slots__ = (
        "answer", "call", "children", "facts", "outcome", "parsed_answer", "payload", "span",
        "state", "tracing",
    )  # fmt: skip

    def __init__(self, tracing: Tracing, span: Span, state: str) -> None:
        self.tracing = tracing
        self.span = span
        self.state = state  # the caller's `tracestate`, passed upstream
        self.payload: Mapping[str, Any] | None = None
        self.answer: bytes | None = None
        self.parsed_answer: Mapping[str, Any] | None = None  # the answer, as charging read it
        self.facts: attrs.StreamFacts | None = None
        self.call: Span | None = None  # the upstream call under way
        self.children: list[Span] = []  # in the order begun; open ones have no end yet
        self.outcome = ""  # how the hold was settled (`gateway.settle.outcome`)

    def request(self, payload: Mapping[str, Any]) -> None:
        self.payload = payload

    def child(
        self, name: str, kind: int, attributes: dict[str, Any], shared: tuple[bytes, ...]
    ) -> Span:
        span = self.span
        child = Span(
            span.trace_id, self.tracing.span_id(), span.span_id, name, kind, time_ns(),
            attributes, shared,
        )  # fmt: skip
        self.children.append(child)
        return child

    def start(self, name: str) -> Span:
        return self.child(name, INTERNAL, {}, ())

    def end(
        self, span: object, error: str = "", attributes: Mapping[str, Any] | None = None
    ) -> None:
        assert isinstance(span, Span)
        if span.end_ns:
            return  # ended already
        if attributes:
            span.attributes.update(attributes)
        if error:
            span.fail(error)
        span.end_ns = time_ns()

    def upstream(self, headers: dict[str, str], method: str, path: str, model: str) -> None:
        if self.call is not None:
            # Begun already: a call made ready during admission is the same call when sent.
            return
        name, shared = self.tracing.call(method, path, model)
        span = self.call = self.child(name, CLIENT, {}, shared)
        headers["traceparent"] = traceparent(span.trace_id, span.span_id)
        if self.state:
            headers["tracestate"] = self.state
        else:
            headers.pop("tracestate", None)  # a caller's, of a trace not continued

    def upstream_done(self, status: int, error: str = "") -> None:
        span = self.call
        if span is None:
            return
        self.call = None
        if status:
            span.attributes["http.response.status_code"] = status
        # A client span's 4xx is an error too (the HTTP conventions): the call did not succeed.
        self.end(span, error or (str(status) if status >= 400 else ""))

    def answered(self, content: bytes) -> None:
        self.answer = content

    def read(self, answer: Mapping[str, Any]) -> None:
        self.parsed_answer = answer

    def streaming(self) -> Callable[[bytes], None]:
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
        request's spans leave."""
        span, tracing = self.span, self.tracing
        capture = tracing.capture
        endpoint = exchange.endpoint
        status = exchange.status or 499
        attributes = span.attributes
        requested, model = tracing.requested(endpoint, self.payload, exchange.model)
        if capture and self.payload is not None and endpoint in attrs.OPERATIONS:
            attributes.update(attrs.input_content(endpoint, self.payload))
        responded: tuple[bytes, ...] = ()
        if self.answer is not None and status < 400 and endpoint in attrs.OPERATIONS:
            # The answer is parsed here only for its output (captured) or its usage (when nothing
            # was charged, with admission off): otherwise read as charging parsed it, or found.
            if capture or exchange.ticket is None:
                attributes.update(self.parsed(endpoint, self.answer))
            elif self.parsed_answer is not None:
                responded = self.response(attrs.parsed_facts(self.parsed_answer))
            else:
                responded = self.response(attrs.answer_facts(self.answer))
        if self.facts is not None and endpoint in attrs.OPERATIONS:
            responded = self.response(self.facts.facts())
            if capture:
                attributes.update(self.facts.captured())
        # The record's charge over the answer's own usage: what the gateway counted.
        attributes.update(attrs.charge_attributes(exchange))
        decided = tracing.decided(exchange, status, self.outcome)
        span.shared += (*requested, *responded, *decided)
        span.name = attrs.span_name(exchange.method, endpoint, model)
        error = attrs.error_type(exchange, status)
        if error:
            span.fail(error)
        # Spans a failure left open end with the request.
        children = self.children
        for child in children:
            if not child.end_ns:
                child.end_ns = end_ns
        span.end_ns = end_ns
        children.append(span)
        tracing.export.add(children)
        self.children = []
        self.call = None

    def response(self, facts: tuple[str, str, tuple[str, ...]]) -> tuple[bytes, ...]:
        """The answer's id, the request span's own; its model and finish reasons, shared."""
        response_id, model, finish_reasons = facts
        if response_id:
            self.span.attributes["gen_ai.response.id"] = response_id
        return self.tracing.responded(model, finish_reasons)

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
