"""Retry timing, the circuit breaker and deployment choice: pure rules, no clock."""

from __future__ import annotations

import math

import pytest

from gateway.upstream.resilience import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    Breaker,
    RetryPolicy,
    may_retry,
    pick,
    retry_after_s,
    retry_delay,
)

POLICY = RetryPolicy(attempts=3, backoff_s=0.5, backoff_max_s=8.0, retry_after_max_s=20.0)


def test_retry_after_ms_wins_then_seconds_then_http_date() -> None:
    assert retry_after_s([(b"retry-after", b"7"), (b"retry-after-ms", b"250")], 0) == 0.25
    assert retry_after_s([(b"retry-after", b"1.5")], 0) == 1.5
    date = b"Wed, 21 Oct 2015 07:28:10 GMT"
    assert retry_after_s([(b"retry-after", date)], 1445412480.0) == 10.0
    assert retry_after_s([(b"retry-after", b"soon")], 0) is None
    assert retry_after_s([], 0) is None


def test_a_retry_after_no_clock_can_wait_is_unreadable_and_a_date_past_9999_is_forever() -> None:
    assert retry_after_s([(b"retry-after-ms", b"nan"), (b"retry-after", b"2")], 0) == 2.0
    assert retry_after_s([(b"retry-after", b"NaN")], 0) is None
    late = b"Mon, 01 Jan 99999 00:00:00 GMT"
    assert retry_after_s([(b"retry-after", late)], 0) == math.inf


@pytest.mark.parametrize(
    ("retry", "low", "high"), [(1, 0.25, 0.5), (2, 0.5, 1.0), (3, 1.0, 2.0), (9, 4.0, 8.0)]
)
def test_backoff_doubles_with_equal_jitter_and_a_ceiling(
    retry: int, low: float, high: float
) -> None:
    assert retry_delay(POLICY, retry, None, 0.0) == low
    assert retry_delay(POLICY, retry, None, 0.999999) == pytest.approx(high, rel=1e-5)


def test_upstream_retry_after_is_honoured() -> None:
    assert retry_delay(POLICY, 1, 3.0, 0.5) == 3.0


def test_retries_stop_at_attempts_long_waits_and_the_client_deadline() -> None:
    assert may_retry(POLICY, 1, 0.5, None, now=10.0, deadline=None)
    assert not may_retry(POLICY, 3, 0.5, None, now=10.0, deadline=None)
    assert not may_retry(POLICY, 1, 30.0, 30.0, now=10.0, deadline=None)  # retry-after too long
    assert may_retry(POLICY, 1, 0.5, None, now=10.0, deadline=10.6)
    assert not may_retry(POLICY, 1, 0.5, None, now=10.0, deadline=10.4)


def test_breaker_opens_after_failures_in_a_row_and_probes_once() -> None:
    breaker = Breaker(failures=3, cooldown_s=10.0)
    for t in (1.0, 2.0):
        assert breaker.begin(t)
        breaker.failure(t)
    breaker.success()  # a success in between resets the streak
    for t in (3.0, 4.0, 5.0):
        assert breaker.begin(t)
        breaker.failure(t)
    assert breaker.state == OPEN
    assert not breaker.allows(14.9)
    assert breaker.begin(15.0)  # cooldown over: one probe
    assert breaker.state == HALF_OPEN
    assert not breaker.begin(15.1)  # only one
    breaker.failure(16.0, probe=True)
    assert breaker.state == OPEN and not breaker.allows(25.9)
    assert breaker.begin(26.0)
    breaker.success(probe=True)
    assert breaker.state == CLOSED and breaker.begin(26.1) and breaker.begin(26.2)


def test_a_probe_that_tells_nothing_frees_the_slot() -> None:
    breaker = Breaker(failures=1, cooldown_s=1.0)
    breaker.begin(0.0)
    breaker.failure(0.0)
    assert breaker.begin(1.0)
    breaker.release(probe=True)  # e.g. the client left, or a 429
    assert breaker.state == HALF_OPEN and breaker.begin(1.1)


def test_calls_begun_before_the_breaker_opened_tell_nothing_when_they_end_later() -> None:
    """A call's verdict comes at its end (a stream's, minutes later): one begun while the
    breaker was closed neither closes an open breaker, nor ends or frees the probe."""
    breaker = Breaker(failures=2, cooldown_s=1.0)
    assert breaker.begin(0.0)  # a long stream, still running below
    for t in (0.1, 0.2):
        assert breaker.begin(t)
        breaker.failure(t)
    assert breaker.state == OPEN
    breaker.success()  # the long stream ends well: the deployment stays open
    assert breaker.state == OPEN and not breaker.allows(0.5)
    assert breaker.begin(1.2) and breaker.state == HALF_OPEN  # the probe
    breaker.release()  # another old call whose client left
    breaker.failure(1.3)  # another that failed
    assert breaker.state == HALF_OPEN and not breaker.begin(1.4)  # still one probe at a time
    breaker.success(probe=True)
    assert breaker.state == CLOSED


def test_one_team_failing_alone_does_not_shut_a_deployment_other_teams_use() -> None:
    """Upstream may fail on what one team asks (a prompt it answers 500 for, again and again):
    that team's failures open the breaker only when no other team called in the cooldown; a
    second team failing in the same streak opens it, as an outage does."""
    breaker = Breaker(failures=3, cooldown_s=10.0)
    assert breaker.begin(0.0, "bystander")
    breaker.success()
    for t in (1.0, 2.0, 3.0, 4.0, 5.0):
        assert breaker.begin(t, "hostile")
        breaker.failure(t, team="hostile")
    assert breaker.state == CLOSED and breaker.allows(5.0)
    assert breaker.begin(6.0, "bystander")
    breaker.failure(6.0, team="bystander")  # the bystander fails too: an outage
    assert breaker.state == OPEN

    alone = Breaker(failures=3, cooldown_s=10.0)
    assert alone.begin(0.0, "bystander")
    alone.success()
    for t in (11.0, 12.0, 13.0):  # the bystander's call is older than the cooldown
        assert alone.begin(t, "only")
        alone.failure(t, team="only")
    assert alone.state == OPEN


def test_pick_prefers_fewest_in_flight_and_rotates_ties() -> None:
    assert pick([3, 1, 2], [True, True, True]) == 1
    assert pick([3, 1, 2], [True, False, True]) == 2
    assert pick([0, 0, 0], [True, True, True], start=1) == 1
    assert pick([0, 0, 0], [True, True, True], start=5) == 2
    assert pick([0, 0], [False, False]) is None
