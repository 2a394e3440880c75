"""Spans in OTLP's JSON encoding, the body of an OTLP/HTTP export (`Content-Type:
application/json`, POST `/v1/traces`). Pure.

The protobuf messages mapped to JSON as OTLP defines it: ids as hex strings (not base64), enums
as integers, 64-bit integers (times, `intValue`) as decimal strings, field names in lowerCamelCase.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from gateway.observability.spans import Span

ERROR = 2  # Status.code: STATUS_CODE_ERROR
_ERROR_STATUS = {"code": ERROR}


def any_value(value: Any) -> dict[str, Any]:
    """An attribute's `AnyValue` (strings, the common case, are mapped inline by `key_values`)."""
    kind = type(value)
    if kind is str:
        return {"stringValue": value}
    if kind is bool:
        return {"boolValue": value}
    if kind is int:
        return {"intValue": str(value)}
    if kind is float:
        return {"doubleValue": value}
    if isinstance(value, list | tuple):
        return {"arrayValue": {"values": [any_value(v) for v in value]}}
    return {"stringValue": str(value)}


def key_values(attributes: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        {"key": key, "value": {"stringValue": value}}
        if type(value) is str
        else {"key": key, "value": any_value(value)}
        for key, value in attributes.items()
    ]


def span_json(span: Span) -> dict[str, Any]:
    encoded: dict[str, Any] = {
        "traceId": span.trace_id,
        "spanId": span.span_id,
        "name": span.name,
        "kind": span.kind,
        "startTimeUnixNano": str(span.start_ns),
        "endTimeUnixNano": str(span.end_ns),
        "attributes": key_values(span.attributes),
    }
    if span.parent_id:
        encoded["parentSpanId"] = span.parent_id
    if span.failed:
        encoded["status"] = _ERROR_STATUS
    return encoded


def export_request(spans: Iterable[Span], service_name: str, scope_name: str) -> bytes:
    """An `ExportTraceServiceRequest`: the spans under one resource and one scope."""
    request = {
        "resourceSpans": [
            {
                "resource": {"attributes": key_values({"service.name": service_name})},
                "scopeSpans": [
                    {"scope": {"name": scope_name}, "spans": [span_json(s) for s in spans]}
                ],
            }
        ]
    }
    return orjson.dumps(request)
