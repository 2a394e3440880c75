"""Spans in OTLP's JSON encoding, the body of an OTLP/HTTP export (`Content-Type:
application/json`, POST `/v1/traces`). Pure.

The protobuf messages mapped to JSON as OTLP defines it: ids as hex strings (not base64), enums
as integers, 64-bit integers (times, `intValue`) as decimal strings, field names in lowerCamelCase.

Spans are encoded by templates: everything a span shares with spans of its shape (its name,
kind, status, the attributes many spans carry, its own attributes' keys) is encoded once, with
holes (`%s`, `%d`) left for what is its own (ids, times, own values), so that a span costs one
`%` format, not a tree of dicts built and serialised. Building a value into a dict and into JSON
costs about a microsecond an attribute; a hole, a tenth of that.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

ERROR = 2  # Status.code: STATUS_CODE_ERROR
# OTLP's span kinds.
INTERNAL, SERVER, CLIENT = 1, 2, 3
_dumps = orjson.dumps


def any_value(value: Any) -> dict[str, Any]:
    """An attribute's `AnyValue`."""
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
    return [{"key": key, "value": any_value(value)} for key, value in attributes.items()]


def shared_attributes(attributes: Mapping[str, Any]) -> bytes:
    """Attributes encoded once: KeyValues joined, without the brackets (b"" for none)."""
    return orjson.dumps(key_values(attributes))[1:-1] if attributes else b""


def literal(encoded: bytes) -> bytes:
    """Encoded JSON as a template's text (its `%` doubled)."""
    return encoded.replace(b"%", b"%%")


# The hole of an attribute's value, by the type of what fills it: a string's or a float's JSON
# text (`orjson.dumps`), an integer itself.
_HOLES = {str: b'{"stringValue":%s}', int: b'{"intValue":"%d"}', float: b'{"doubleValue":%s}'}


def hole(key: str, kind: type) -> bytes:
    """A template's KeyValue whose value is a hole."""
    return b'{"key":%s,"value":%s}' % (literal(_dumps(key)), _HOLES[kind])


# Several KeyValues encoded apart (`shared_attributes`), filling one hole.
ENCODED = b"%s"


def span_template(
    name: str, kind: int, parent: bool, failed: bool, attributes: Iterable[bytes]
) -> bytes:
    """A span's template: holes for its trace id, its id, its parent's id (when `parent`), its
    start and its end, then the holes of `attributes` (template text, `hole`s among them)."""
    parts = [
        b'{"traceId":"%s","spanId":"%s",', b'"parentSpanId":"%s",' if parent else b"",
        b'"name":', literal(_dumps(name)), b',"kind":%d' % kind,
        b',"startTimeUnixNano":"%d","endTimeUnixNano":"%d"',
    ]  # fmt: skip
    if failed:
        parts.append(b',"status":{"code":%d}' % ERROR)
    parts += (b',"attributes":[', b",".join(a for a in attributes if a), b"]}")
    return b"".join(parts)


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


def export_request(spans: Sequence[bytes], frame: tuple[bytes, bytes]) -> bytes:
    """An `ExportTraceServiceRequest` of encoded spans (`Span` messages joined by commas) in
    their frame. The body is copied once: the frame is joined to the first and the last spans
    (small copies), not around all of them joined (a second copy of them all)."""
    head, tail = frame
    if len(spans) < 2:
        return b"".join((head, *spans, tail))
    return b",".join([head + spans[0], *spans[1:-1], spans[-1] + tail])
