from __future__ import annotations

import orjson

from gateway.observability.otlp_json import (
    CLIENT,
    ENCODED,
    ERROR,
    SERVER,
    export_frame,
    export_request,
    hole,
    literal,
    shared_attributes,
    span_template,
)

TRACE = b"5b8efff798038103d269b633813fc60c"


def test_spans_in_otlps_json_mapping() -> None:
    shared = shared_attributes({"http.request.method": "POST", "server.port": 8080})
    failed = shared_attributes({"error.type": "500"})
    root = span_template("chat gpt-4o", SERVER, False, True, (failed, shared))
    others = shared_attributes(
        {"ratio": 0.5, "reasons": ["stop", "length"], "streamed": True, "tokens": 2**70}
    )
    call = span_template("chat gpt-4o-2024-08-06", CLIENT, True, False, (ENCODED,))
    spans = [
        root % (TRACE, b"eee19b7ec3c1b174", 10, 1544712661000000000),
        call % (TRACE, b"eee19b7ec3c1b175", b"eee19b7ec3c1b174", 11, 12, others),
    ]
    body = export_request(spans, export_frame("o1-gateway", "gw"))
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
        {"key": "tokens", "value": {"intValue": str(2**70)}},
    ]  # fmt: skip


def test_a_template_keeps_its_text_and_its_holes_take_any_value() -> None:
    shared = literal(shared_attributes({"url.path": "/v1/100%", "team": "a%sb"}))
    own = (hole("gateway.request_id", str), hole("tokens", int), hole("ratio", float))
    template = span_template("chat 100%d", CLIENT, True, False, (*own, shared))
    # Values a template must escape in a hole: quotes, a percent, a newline; and any integer.
    text = '"%s\\\n'
    values = (orjson.dumps(text), 2**63, orjson.dumps(0.25))
    found = orjson.loads(
        template % (TRACE, b"00f067aa0ba902b7", b"eee19b7ec3c1b174", 5, 7, *values)
    )
    assert found["name"] == "chat 100%d"
    assert found["attributes"] == [
        {"key": "gateway.request_id", "value": {"stringValue": text}},
        {"key": "tokens", "value": {"intValue": str(2**63)}},
        {"key": "ratio", "value": {"doubleValue": 0.25}},
        {"key": "url.path", "value": {"stringValue": "/v1/100%"}},
        {"key": "team", "value": {"stringValue": "a%sb"}},
    ]
    # Attributes encoded to nothing leave no empty place in the list.
    bare = span_template("s", SERVER, False, False, (shared_attributes({}),))
    assert orjson.loads(bare % (TRACE, b"00f067aa0ba902b7", 1, 2))["attributes"] == []


def test_an_export_holds_every_span_given_in_its_frame() -> None:
    frame = export_frame("o1-gateway", "gw")
    template = span_template("s", SERVER, False, False, (hole("n", int),))
    for count in (0, 1, 3):
        spans = [template % (TRACE, b"%016x" % (n + 1), 1, 2, n) for n in range(count)]
        found = orjson.loads(export_request(spans, frame))["resourceSpans"][0]["scopeSpans"][0]
        assert [s["attributes"][0]["value"]["intValue"] for s in found["spans"]] == [
            str(n) for n in range(count)
        ]
