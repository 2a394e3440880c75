"""A recorded span: the few slots an OTLP span needs, and nothing of a tracing SDK. Pure data;
`tracing` fills them in (ids, clock) and `otlp_json` encodes them.

Attributes that many spans share (a route's, an operation's, the gateway's decisions on a
request) come encoded already, in `shared`, the same bytes for all those spans: each span encodes
only what is its own (`attributes`), into a template of its shape (`otlp_json.SpanEncoder`).
"""

from __future__ import annotations

from typing import Any

# OTLP's span kinds.
INTERNAL, SERVER, CLIENT = 1, 2, 3


class Span:
    __slots__ = (
        "attributes", "end_ns", "failed", "kind", "name", "parent_id", "shared", "span_id",
        "start_ns", "trace_id",
    )  # fmt: skip

    def __init__(
        self,
        trace_id: bytes,
        span_id: bytes,
        parent_id: bytes,
        name: str,
        kind: int,
        start_ns: int,
        attributes: dict[str, Any],
        shared: tuple[bytes, ...] = (),
    ) -> None:
        # Lower-case hex, as in `traceparent` and OTLP's JSON, and bytes, as they are encoded.
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent_id = parent_id  # b"" for a root span
        self.name = name
        self.kind = kind
        self.start_ns = start_ns
        self.end_ns = 0  # 0 while it is open
        self.attributes = attributes
        # KeyValues encoded already (`otlp_json.shared_attributes`), a part per source: the same
        # objects for all spans alike, so that telling them alike costs nothing.
        self.shared = shared
        self.failed = False  # the span's status is an error (its `error.type` says which)

    def fail(self, error: str) -> None:
        self.attributes["error.type"] = error
        self.failed = True
