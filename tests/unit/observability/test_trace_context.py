from __future__ import annotations

from gateway.observability.trace_context import (
    Parent,
    caller_parent,
    kept,
    parse_traceparent,
    ratio_bound,
    traceparent,
)

TRACE, SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
TRACE_ID, SPAN_ID = TRACE.encode(), SPAN.encode()


def test_a_valid_traceparent_and_its_flags() -> None:
    assert parse_traceparent(f"00-{TRACE}-{SPAN}-01") == Parent(TRACE_ID, SPAN_ID, True, "")
    assert parse_traceparent(f" 00-{TRACE}-{SPAN}-00 ", "a=1") == Parent(
        TRACE_ID, SPAN_ID, False, "a=1"
    )
    assert parse_traceparent(f"00-{TRACE}-{SPAN}-03") == Parent(TRACE_ID, SPAN_ID, True, "")
    # A later version may add fields: what is known of it is read.
    assert parse_traceparent(f"01-{TRACE}-{SPAN}-01-more") == Parent(TRACE_ID, SPAN_ID, True, "")
    assert traceparent(TRACE_ID, SPAN_ID) == f"00-{TRACE}-{SPAN}-01"


def test_invalid_traceparents_begin_a_trace() -> None:
    for value in (
        "",
        f"00-{TRACE}-{SPAN}",
        f"00-{TRACE.upper()}-{SPAN}-01",
        f"00-{'0' * 32}-{SPAN}-01",
        f"00-{TRACE}-{'0' * 16}-01",
        f"ff-{TRACE}-{SPAN}-01",
        f"00-{TRACE}-{SPAN}-01-extra",  # version 00 has exactly four fields
        f"00-{TRACE}x-{SPAN}-01",
    ):
        assert parse_traceparent(value) is None, value


def test_the_callers_headers() -> None:
    headers = [
        (b"tracestate", b"a=1"),
        (b"traceparent", f"00-{TRACE}-{SPAN}-01".encode()),
        (b"traceparent", b"00-ignored"),
        (b"tracestate", b" b=2 "),
    ]
    assert caller_parent(headers) == Parent(TRACE_ID, SPAN_ID, True, "a=1,b=2")
    assert caller_parent([(b"tracestate", b"a=1")]) is None


def test_ratio_sampling_by_the_trace_ids_low_bits() -> None:
    assert kept((1 << 64) - 1, ratio_bound(1.0))
    assert not kept(0, ratio_bound(0.0))
    half = ratio_bound(0.5)
    assert kept(5 << 64 | (half - 1), half) and not kept(half, half)
    assert ratio_bound(7.0) == ratio_bound(1.0)
