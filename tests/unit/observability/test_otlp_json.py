from __future__ import annotations

import orjson

from gateway.observability.otlp_json import (
    ERROR,
    export_frame,
    export_request,
    shared_attributes,
    span_json,
)
from gateway.observability.spans import CLIENT, SERVER, Span

TRACE = "5b8efff798038103d269b633813fc60c"


def test_spans_in_otlps_json_mapping() -> None:
    shared = shared_attributes({"http.request.method": "POST", "server.port": 8080})
    root = Span(TRACE, "eee19b7ec3c1b174", "", "chat gpt-4o", SERVER, 10, {}, shared)
    root.end_ns = 1544712661000000000
    root.fail("500")
    call = Span(
        TRACE, "eee19b7ec3c1b175", "eee19b7ec3c1b174", "chat gpt-4o-2024-08-06", CLIENT, 11,
        {"ratio": 0.5, "reasons": ["stop", "length"], "streamed": True, "tokens": 2**60},
    )  # fmt: skip
    call.end_ns = 12
    body = export_request([span_json(root), span_json(call)], export_frame("o1-gateway", "gw"))
    (resource,) = orjson.loads(body)["resourceSpans"]
    assert resource["resource"] == {
        "attributes": [{"key": "service.name", "value": {"stringValue": "o1-gateway"}}]
    }
    ((scope,),) = [resource["scopeSpans"]]
    assert scope["scope"] == {"name": "gw"}
    first, second = scope["spans"]
    assert first == {
        "traceId": TRACE,
        "spanId": "eee19b7ec3c1b174",
        "name": "chat gpt-4o",
        "kind": 2,
        "startTimeUnixNano": "10",
        "endTimeUnixNano": "1544712661000000000",
        "status": {"code": ERROR},
        "attributes": [
            {"key": "error.type", "value": {"stringValue": "500"}},
            {"key": "http.request.method", "value": {"stringValue": "POST"}},
            {"key": "server.port", "value": {"intValue": "8080"}},
        ],
    }
    assert second["parentSpanId"] == "eee19b7ec3c1b174" and "status" not in second
    assert second["attributes"] == [
        {"key": "ratio", "value": {"doubleValue": 0.5}},
        {"key": "reasons", "value": {"arrayValue": {"values": [
            {"stringValue": "stop"}, {"stringValue": "length"}]}}},
        {"key": "streamed", "value": {"boolValue": True}},
        {"key": "tokens", "value": {"intValue": str(2**60)}},
    ]  # fmt: skip
