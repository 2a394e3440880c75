"""OpenTelemetry traces: the tracer (OTLP/HTTP protobuf export through the SDK's batch span
processor) and each traced request's spans.

Imported only when tracing is on (`gateway.runtime.build`): with it off, nothing of the optional
`opentelemetry` packages is loaded, and a request pays one `None` check per hook.

A request's span is the SERVER span `{gen_ai.operation.name} {gen_ai.request.model}`, continuing
the caller's W3C `traceparent`/`tracestate`. Its children: `gateway.admission.reserve` (the hold
taken in Redis), the upstream call (a CLIENT span whose context goes upstream as `traceparent`),
and `gateway.admission.settle` (from the charge to Redis having it, which may be after the
response). Spans never hold the request's headers or keys; prompts and answers only with content
capture on. The tracer provider is this gateway's own, not the process-wide global, so that
several gateways in one process (tests) each export their own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import orjson
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from gateway.observability import trace_attributes as attrs
from gateway.observability.record import Exchange
from gateway.observability.trace_settings import TraceSettings

log = logging.getLogger("gateway")
SCOPE_NAME = "o1-gateway"
TRACE_HEADERS = (b"traceparent", b"tracestate")


class Tracing:
    """The gateway's tracer, made in the lifespan and shut down (spans flushed) at its end."""

    def __init__(self, settings: TraceSettings, upstream_base_url: str) -> None:
        self.capture = settings.capture_content
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": settings.service_name}),
            sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)),
        )
        self.provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.endpoint))
        )
        self.tracer = self.provider.get_tracer(SCOPE_NAME)
        self.propagator = TraceContextTextMapPropagator()
        upstream = urlsplit(upstream_base_url)
        self.upstream_server: dict[str, Any] = {"server.address": upstream.hostname or ""}
        port = upstream.port or (443 if upstream.scheme == "https" else 80)
        self.upstream_server["server.port"] = port

    def begin(self, scope: Mapping[str, Any]) -> RequestTrace | None:
        """The request's span, continuing the caller's trace; None when it is not sampled (a
        request nobody will see costs no more work)."""
        carrier = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope["headers"]
            if name in TRACE_HEADERS
        }
        parent = self.propagator.extract(carrier) if carrier else None
        span = self.tracer.start_span(
            scope["method"], context=parent, kind=SpanKind.SERVER,
            attributes=attrs.server_attributes(scope),
        )  # fmt: skip
        if not span.is_recording():
            return None
        return RequestTrace(self, span)

    def shutdown(self) -> None:
        """Export what is left and stop (blocking: run it off the event loop)."""
        self.provider.shutdown()


class RequestTrace:
    """One traced request's spans (see `gateway.observability.record.RequestTrace`)."""

    __slots__ = (
        "answer", "calls", "context", "endpoint", "facts", "open", "payload", "span", "tracing",
    )  # fmt: skip

    def __init__(self, tracing: Tracing, span: Span) -> None:
        self.tracing = tracing
        self.span = span
        self.context: Context = set_span_in_context(span)
        self.payload: Mapping[str, Any] | None = None
        self.answer: bytes | None = None
        self.facts: attrs.StreamFacts | None = None
        self.calls: list[Span] = []  # upstream calls not yet ended, oldest first
        self.open: list[Span] = []  # every child not yet ended

    def request(self, payload: Mapping[str, Any]) -> None:
        self.payload = payload

    def start(self, name: str, kind: SpanKind = SpanKind.INTERNAL, attributes: Any = None) -> Span:
        span = self.tracing.tracer.start_span(
            name, context=self.context, kind=kind, attributes=attributes
        )
        self.open.append(span)
        return span

    def end(
        self, span: object, error: str = "", attributes: Mapping[str, Any] | None = None
    ) -> None:
        assert isinstance(span, Span)
        if attributes:
            span.set_attributes(attributes)
        if error:
            span.set_attribute("error.type", error)
            span.set_status(Status(StatusCode.ERROR))
        span.end()
        if span in self.open:
            self.open.remove(span)

    def upstream(self, headers: dict[str, str], method: str, path: str, model: str) -> None:
        if self.calls:
            # Begun already: a call made ready during admission is the same call when sent.
            return
        tracing = self.tracing
        endpoint = path.lstrip("/").split("/", 1)[0]
        found = attrs.operation(endpoint)
        attributes = {**tracing.upstream_server, "http.request.method": method, "url.path": path}
        name = method
        if found is not None and model:
            name = f"{found[0]} {model}"
            attributes["gen_ai.operation.name"] = found[0]
            attributes["gen_ai.provider.name"] = attrs.PROVIDER
            attributes["gen_ai.request.model"] = model
        span = self.start(name, SpanKind.CLIENT, attributes)
        self.calls.append(span)
        tracing.propagator.inject(headers, context=set_span_in_context(span))

    def upstream_done(self, status: int, error: str = "") -> None:
        if not self.calls:
            return
        span = self.calls.pop(0)
        if status:
            span.set_attribute("http.response.status_code", status)
        # A client span's 4xx is an error too (the HTTP conventions): the call did not succeed.
        self.end(span, error or (str(status) if status >= 400 else ""))

    def answered(self, content: bytes) -> None:
        self.answer = content

    def streamed(self, chunk: bytes) -> None:
        facts = self.facts
        if facts is None:
            facts = self.facts = attrs.StreamFacts(self.tracing.capture)
        facts.feed(chunk)

    def settling(self, outcome: str, cost: int) -> Callable[[], None]:
        # Not among `open`: it ends when Redis has the charge, which may be after the response.
        span = self.tracing.tracer.start_span(
            "gateway.admission.settle", context=self.context,
            attributes={"gateway.settle.outcome": outcome, "gateway.cost_micros": cost},
        )  # fmt: skip
        return span.end

    def finish(self, exchange: Exchange, end_ns: int) -> None:
        """Everything the request's span says, and its end (called after the response)."""
        span, capture = self.span, self.tracing.capture
        endpoint = exchange.endpoint
        status = exchange.status or 499
        attributes: dict[str, Any] = {}
        if self.payload is not None:
            attributes.update(attrs.request_attributes(endpoint, self.payload, capture))
        if self.answer is not None and status < 400:
            try:
                answer = orjson.loads(self.answer)
            except orjson.JSONDecodeError:
                answer = None
            attributes.update(attrs.answer_attributes(endpoint, answer, capture))
        if self.facts is not None:
            attributes.update(self.facts.attributes(endpoint, capture))
        # The record's charge over the answer's own usage: what the gateway counted.
        attributes.update(attrs.exchange_attributes(exchange, status))
        if exchange.model and attrs.operation(endpoint) is not None:
            attributes["gen_ai.request.model"] = exchange.model
        span.update_name(
            attrs.span_name(
                exchange.method, endpoint, str(attributes.get("gen_ai.request.model", ""))
            )
        )
        span.set_attributes(attributes)
        error = attrs.error_type(exchange, status)
        if error:
            span.set_attribute("error.type", error)
            span.set_status(Status(StatusCode.ERROR))
        # Spans a failure left open end with the request (a settle still on its way does not).
        for child in self.open:
            child.end(end_time=end_ns)
        self.open.clear()
        self.calls.clear()
        span.end(end_time=end_ns)
