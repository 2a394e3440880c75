"""W3C Trace Context: the caller's `traceparent` and `tracestate` read, the gateway's own
`traceparent` written, and the ratio sampling of traces begun here. Pure.

Ids are lower-case hex throughout, as they appear in `traceparent` and in OTLP's JSON encoding,
and bytes, as spans are encoded, so that nothing converts them on the way through.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# version-traceid-parentid-flags; a later version may append fields after another dash.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_INVALID_TRACE, _INVALID_SPAN = "0" * 32, "0" * 16
_SAMPLED = 0x01
_LOW_64 = (1 << 64) - 1


@dataclass(frozen=True, slots=True)
class Parent:
    """The caller's span, as its `traceparent` names it."""

    trace_id: bytes
    span_id: bytes
    sampled: bool
    state: str  # its `tracestate`, passed on as it came ("" when none)


def parse_traceparent(value: str, state: str = "") -> Parent | None:
    """The parent a `traceparent` names, or None when it is not a valid one (then the request
    begins a trace of its own, as the W3C specification says)."""
    found = _TRACEPARENT.fullmatch(value.strip())
    if found is None:
        return None
    version, trace_id, span_id, flags, rest = found.groups()
    if version == "ff" or (version == "00" and rest) or trace_id == _INVALID_TRACE:
        return None
    if span_id == _INVALID_SPAN:
        return None
    sampled = bool(int(flags, 16) & _SAMPLED)
    return Parent(trace_id.encode(), span_id.encode(), sampled, state)


def caller_parent(headers: list[tuple[bytes, bytes]]) -> Parent | None:
    """The parent a request's raw (ASGI) headers name: its first `traceparent`, and its
    `tracestate` headers joined."""
    for name, _ in headers:
        if name == b"traceparent":
            break
    else:
        return None  # the usual case: one pass over the names, the cheapest test measured
    parent = ""
    states: list[str] = []
    for name, value in headers:
        if name == b"traceparent" and not parent:
            parent = value.decode("latin-1")
        elif name == b"tracestate":
            states.append(value.decode("latin-1").strip())
    if not parent:
        return None
    return parse_traceparent(parent, ",".join(s for s in states if s))


def traceparent(trace_id: bytes, span_id: bytes) -> str:
    """The `traceparent` of a span the gateway records (so sampled)."""
    return (b"00-%s-%s-01" % (trace_id, span_id)).decode()


def ratio_bound(ratio: float) -> int:
    """The bound a new trace id's low 64 bits are kept under, for a sample ratio (0..1): the
    rule of OpenTelemetry's `TraceIdRatioBased`, so every tracer keeps the same traces."""
    return round(min(max(ratio, 0.0), 1.0) * (1 << 64))


def kept(trace_id: int, bound: int) -> bool:
    return (trace_id & _LOW_64) < bound
