from __future__ import annotations

import orjson

from gateway.observability.otlp_json import (
    ERROR,
    SpanEncoder,
    export_frame,
    export_request,
    shared_attributes,
)
from gateway.observability.spans import CLIENT, SERVER, Span

TRACE = b"5b8efff798038103d269b633813fc60c"


def test_spans_in_otlps_json_mapping() -> None:
    shared = (shared_attributes({"http.request.method": "POST", "server.port": 8080}),)
    root = Span(TRACE, b"eee19b7ec3c1b174", b"", "chat gpt-4o", SERVER, 10, {}, shared)
    root.end_ns = 1544712661000000000
    root.fail("500")
    call = Span(
        TRACE, b"eee19b7ec3c1b175", b"eee19b7ec3c1b174", "chat gpt-4o-2024-08-06", CLIENT, 11,
        {"ratio": 0.5, "reasons": ["stop", "length"], "streamed": True, "tokens": 2**60},
    )  # fmt: skip
    call.end_ns = 12
    encode = SpanEncoder()
    body = export_request([encode([root]), encode([call])], export_frame("o1-gateway", "gw"))
    (resource,) = orjson.loads(body)["resourceSpans"]
    assert resource["resource"] == {
        "attributes": [{"key": "service.name", "value": {"stringValue": "o1-gateway"}}]
    }
    ((scope,),) = [resource["scopeSpans"]]
    assert scope["scope"] == {"name": "gw"}
    first, second = scope["spans"]
    assert first == {
        "traceId": TRACE.decode(),
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


def test_a_span_of_a_known_shape_is_its_template_filled_in() -> None:
    encode = SpanEncoder()
    shared = (shared_attributes({"url.path": "/v1/100%"}), shared_attributes({"team": "a%sb"}))

    def span(value: str, tokens: int, failed: bool) -> Span:
        made = Span(
            TRACE, b"00f067aa0ba902b7", b"eee19b7ec3c1b174", "chat 100%d", CLIENT, 5,
            {"gateway.request_id": value, "tokens": tokens, "ok": not failed}, shared,
        )  # fmt: skip
        made.end_ns = 7
        if failed:
            made.fail("502")
        return made

    first = orjson.loads(encode([span("plain", 3, False)]))
    # The same shape again, with values a template must escape: quotes, a percent, a newline.
    second = orjson.loads(encode([span('"%s\\\n', 2**63, False)]))
    assert len(encode.templates) == 1
    assert first["attributes"][0]["value"] == {"stringValue": "plain"}
    assert second["name"] == "chat 100%d"
    assert second["attributes"] == [
        {"key": "gateway.request_id", "value": {"stringValue": '"%s\\\n'}},
        {"key": "tokens", "value": {"intValue": str(2**63)}},
        {"key": "ok", "value": {"boolValue": True}},
        {"key": "url.path", "value": {"stringValue": "/v1/100%"}},
        {"key": "team", "value": {"stringValue": "a%sb"}},
    ]
    # A failed span is another shape: its status and its `error.type` attribute.
    third = orjson.loads(encode([span("x", 1, True)]))
    assert third["status"] == {"code": ERROR}
    assert third["attributes"][-3] == {"key": "error.type", "value": {"stringValue": "502"}}
    assert len(encode.templates) == 2


def test_a_requests_spans_are_encoded_together() -> None:
    encode = SpanEncoder()
    spans = [
        Span(TRACE, b"%016x" % n, b"eee19b7ec3c1b174" if n else b"", f"s{n}", SERVER, n, {"n": n})
        for n in range(3)
    ]
    body = export_request([encode(spans), encode(spans[:1])], export_frame("o1-gateway", "gw"))
    found = orjson.loads(body)["resourceSpans"][0]["scopeSpans"][0]["spans"]
    assert [(s["name"], s["attributes"][0]["value"]["intValue"]) for s in found] == [
        ("s0", "0"),
        ("s1", "1"),
        ("s2", "2"),
        ("s0", "0"),
    ]
    assert "parentSpanId" not in found[0] and found[1]["parentSpanId"] == "eee19b7ec3c1b174"
    assert len(encode.templates) == 2  # three spans are one shape, one span another
