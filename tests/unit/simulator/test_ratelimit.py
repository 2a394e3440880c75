"""The per-key decaying window behind x-ratelimit-* headers."""

from __future__ import annotations

from gateway.simulator.ratelimit import RateWindow


def test_window_counts_requests_and_tokens_per_key() -> None:
    window = RateWindow(rpm=600, tpm=60_000)
    first = window.admit("k1", 1000, now=100.0)
    assert (first.limit_requests, first.limit_tokens) == (600, 60_000)
    assert (first.remaining_requests, first.remaining_tokens) == (599, 59_000)
    # 1 of 600 requests comes back after 60/600 s; 1000 of 60000 tokens after 1 s.
    assert (first.reset_requests, first.reset_tokens) == ("100ms", "1s")
    second = window.admit("k1", 1000, now=100.0)
    assert (second.remaining_requests, second.remaining_tokens) == (598, 58_000)
    assert window.admit("k2", 10, now=100.0).remaining_requests == 599


def test_window_replenishes_over_a_minute() -> None:
    window = RateWindow(rpm=60, tpm=6000)
    for _ in range(30):
        window.admit("k", 100, now=0.0)
    half = window.admit("k", 0, now=15.0)
    # 31 requests used, 15 s at 1/s replenished.
    assert half.remaining_requests == 60 - 16
    full = window.admit("k", 0, now=1000.0)
    assert (full.remaining_requests, full.remaining_tokens) == (59, 6000)
    assert full.reset_tokens == "0s"


def test_remaining_never_goes_negative_and_headers_are_named() -> None:
    window = RateWindow(rpm=2, tpm=10)
    for _ in range(5):
        headers = window.admit("k", 100, now=0.0)
    assert (headers.remaining_requests, headers.remaining_tokens) == (0, 0)
    assert headers.reset_tokens == "50m0s"
    assert [name for name, _ in headers.items()] == [
        "x-ratelimit-limit-requests",
        "x-ratelimit-limit-tokens",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-remaining-tokens",
        "x-ratelimit-reset-requests",
        "x-ratelimit-reset-tokens",
    ]
    assert window.idle().items()[2] == ("x-ratelimit-remaining-requests", "2")
