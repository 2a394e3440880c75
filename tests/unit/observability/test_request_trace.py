"""One request's spans as the tracer exports them: a span a failure left open ends with the
request, not when its spans are encoded (later, after the response)."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.observability.record import Exchange
from gateway.observability.trace_settings import TraceSettings
from gateway.observability.tracing import Tracing
from tests.unit.observability.test_tracing_caches import NoClient

SCOPE: dict[str, Any] = {
    "type": "http", "method": "POST", "path": "/v1/chat/completions", "scheme": "http",
    "http_version": "1.1", "server": ("127.0.0.1", 8080), "client": ("127.0.0.1", 5555),
    "headers": [(b"host", b"gateway")],
}  # fmt: skip


def test_spans_left_open_end_with_the_request() -> None:
    settings = TraceSettings("http://127.0.0.1:9/v1/traces", "o1-gateway", 1.0, False)
    tracing = Tracing(settings, "http://127.0.0.1:9/v1", NoClient())
    trace = tracing.begin(SCOPE, "chat")
    assert trace is not None
    trace.reserving()  # never answered: the request failed meanwhile
    trace.upstream({}, "POST", "/chat/completions", "gpt-4o")  # never done
    end = trace.start_ns + 5_000_000_000
    exchange = Exchange(started=0.0, method="POST", endpoint="chat", model="gpt-4o", status=500)
    trace.finish(exchange, end)
    spans = orjson.loads(b"[" + tracing.queue.pending[0] + b"]")
    assert [span["name"] for span in spans] == [
        "gateway.admission.reserve", "chat gpt-4o", "chat gpt-4o",
    ]  # fmt: skip
    assert {span["endTimeUnixNano"] for span in spans} == {str(end)}
    reserve, call, root = spans
    assert root["status"] == {"code": 2} and "status" not in reserve and "status" not in call
