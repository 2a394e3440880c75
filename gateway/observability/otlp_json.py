"""Spans in OTLP's JSON encoding, the body of an OTLP/HTTP export (`Content-Type:
application/json`, POST `/v1/traces`). Pure.

The protobuf messages mapped to JSON as OTLP defines it: ids as hex strings (not base64), enums
as integers, 64-bit integers (times, `intValue`) as decimal strings, field names in lowerCamelCase.

Each span is encoded once, when it ends, and an export joins the encoded spans: the spans die
young (no garbage collection ever walks a queue of them). Attributes shared by many spans are
encoded once for all (`shared_attributes`), and so is the rest of a span's shape
(`SpanEncoder`): what is left per span is its ids, times and own values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from gateway.observability.spans import Span

ERROR = 2  # Status.code: STATUS_CODE_ERROR
_dumps = orjson.dumps


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


class SpanEncoder:
    """Encodes a request's spans together, by their shape. The spans' shape (each one's name,
    kind, status, whether it has a parent, its shared attributes and its own attributes' keys
    and types) is encoded once into a template with holes; spans of that shape fill in their
    ids, times and own values with one `%` format. Requests alike make spans alike, so nearly
    every request's spans are a template filled in, not a tree of dicts built and serialised."""

    __slots__ = ("templates",)

    def __init__(self) -> None:
        self.templates: dict[tuple[Any, ...], bytes] = {}

    def __call__(self, spans: Sequence[Span]) -> bytes:
        """The spans' `Span` messages, joined by commas."""
        # One flat key (hashing nested tuples is paid on every lookup) and one list of holes.
        shape: list[Any] = []
        holes: list[Any] = []
        for span in spans:
            own = span.attributes
            values = own.values()
            kinds = tuple(map(type, values))
            shape += (span.name, span.kind, span.failed, not span.parent_id, span.shared,
                      len(kinds), *own, *kinds)  # fmt: skip
            holes += (span.trace_id, span.span_id, span.parent_id, span.start_ns, span.end_ns)
            start = len(holes)
            try:
                # Scalars' JSON, the usual case, by one call in C for them all.
                holes += map(_dumps, values) if _SCALARS.issuperset(kinds) else _holes(own)
            except orjson.JSONEncodeError:  # an integer past 64 bits
                del holes[start:]
                holes += _holes(own)
        key = tuple(shape)
        template = self.templates.get(key)
        if template is None:
            if len(self.templates) >= _TEMPLATES:
                self.templates.clear()
            template = self.templates[key] = b",".join(map(_template, spans))
        return template % tuple(holes)


def _holes(own: Mapping[str, Any]) -> list[bytes]:
    """A span's own values as its template's holes take them: a scalar's JSON text (an integer
    of any size), a whole `AnyValue` for the rest."""
    return [
        b"%d" % value if type(value) is int
        else _dumps(value) if type(value) in _SCALARS else _dumps(any_value(value))
        for value in own.values()
    ]  # fmt: skip


# Shapes kept; past this many (attributes with ever new keys) they start again.
_TEMPLATES = 512
# Values whose JSON is a hole's whole content (`orjson` writes them as OTLP's JSON does).
_SCALARS = frozenset((str, int, bool, float))
# A hole's JSON by the value's type; others are a whole `AnyValue` (`any_value`).
_HOLES = {
    str: b'{"stringValue":%s}', int: b'{"intValue":"%s"}', bool: b'{"boolValue":%s}',
    float: b'{"doubleValue":%s}',
}  # fmt: skip


def _literal(text: bytes) -> bytes:
    return text.replace(b"%", b"%%")


def _template(span: Span) -> bytes:
    # A root's parent hole prints nothing (`%.0s`): every span fills the same holes.
    parent = b'"parentSpanId":"%s",' if span.parent_id else b"%.0s"
    parts = [
        b'{"traceId":"%s","spanId":"%s",', parent, b'"name":', _literal(_dumps(span.name)),
        b',"kind":%d' % span.kind, b',"startTimeUnixNano":"%d","endTimeUnixNano":"%d"',
    ]  # fmt: skip
    if span.failed:
        parts.append(b',"status":{"code":%d}' % ERROR)
    attributes = [
        b'{"key":%s,"value":%s}' % (_literal(_dumps(key)), _HOLES.get(type(value), b"%s"))
        for key, value in span.attributes.items()
    ]
    attributes += (_literal(shared) for shared in span.shared if shared)
    parts += (b',"attributes":[', b",".join(attributes), b"]}")
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


def export_request(spans: Iterable[bytes], frame: tuple[bytes, bytes]) -> bytes:
    """An `ExportTraceServiceRequest` of encoded spans (`span_json`) in their frame."""
    head, tail = frame
    return b"".join((head, b",".join(spans), tail))
