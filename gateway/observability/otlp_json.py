"""Spans in OTLP's JSON encoding, the body of an OTLP/HTTP export (`Content-Type:
application/json`, POST `/v1/traces`). Pure.

The protobuf messages mapped to JSON as OTLP defines it: ids as hex strings (not base64), enums
as integers, 64-bit integers (times, `intValue`) as decimal strings, field names in lowerCamelCase.

Each span is encoded once, when it ends, and an export joins the encoded spans: the spans die
young (no garbage collection ever walks a queue of them), and attributes shared by many spans
are encoded once for all (`shared_attributes`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from gateway.observability.spans import Span

ERROR = 2  # Status.code: STATUS_CODE_ERROR
_ERROR_STATUS = {"code": ERROR}


def any_value(value: Any) -> dict[str, Any]:
    """An attribute's `AnyValue` (strings and integers, the common cases, are mapped inline by
    `key_values`)."""
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
        if (kind := type(value)) is str
        else {"key": key, "value": {"intValue": str(value)}}
        if kind is int
        else {"key": key, "value": any_value(value)}
        for key, value in attributes.items()
    ]


def shared_attributes(attributes: Mapping[str, Any]) -> bytes:
    """Attributes many spans carry, encoded once: KeyValues joined, without the brackets."""
    return orjson.dumps(key_values(attributes))[1:-1]


def span_json(span: Span) -> bytes:
    """One `Span` message."""
    encoded: dict[str, Any] = {
        "traceId": span.trace_id,
        "spanId": span.span_id,
        "name": span.name,
        "kind": span.kind,
        "startTimeUnixNano": str(span.start_ns),
        "endTimeUnixNano": str(span.end_ns),
    }
    if span.parent_id:
        encoded["parentSpanId"] = span.parent_id
    if span.failed:
        encoded["status"] = _ERROR_STATUS
    own = span.attributes
    encoded["attributes"] = key_values(own) if own else ()
    text = orjson.dumps(encoded)  # ends with the attributes' `]}`
    shared = span.shared
    if not shared:
        return text
    return b"".join((text[:-2], b"," if own else b"", shared, b"]}"))


def export_frame(service_name: str, scope_name: str) -> tuple[bytes, bytes]:
    """What comes before and after the spans of an `ExportTraceServiceRequest`: one resource,
    one scope."""
    resource = {"attributes": key_values({"service.name": service_name})}
    head = b"".join(
        (
            b'{"resourceSpans":[{"resource":', orjson.dumps(resource),
            b',"scopeSpans":[{"scope":', orjson.dumps({"name": scope_name}), b',"spans":[',
        )
    )  # fmt: skip
    return head, b"]}]}]}"


def export_request(spans: Iterable[bytes], frame: tuple[bytes, bytes]) -> bytes:
    """An `ExportTraceServiceRequest` of encoded spans (`span_json`) in their frame."""
    head, tail = frame
    return b"".join((head, b",".join(spans), tail))
