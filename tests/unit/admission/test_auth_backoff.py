from __future__ import annotations

import pytest

from gateway.admission.auth_backoff import AuthBackoff


def test_each_failure_doubles_the_wait_of_the_next_attempt_up_to_a_cap() -> None:
    backoff = AuthBackoff(base_s=1.0)
    assert [backoff.delay(n) for n in range(1, 10)] == [1, 2, 4, 8, 16, 32, 64, 64, 64]
    now = 0.0
    waits = []
    for _ in range(5):  # one after the other, each arriving as the previous was answered
        turn = backoff.take_turn("10.0.0.1", now)
        assert turn.wait_s is not None
        waits.append(turn.wait_s)
        now += turn.wait_s
    assert waits == [0, 1, 2, 4, 8]


def test_concurrent_attempts_are_checked_one_after_the_other() -> None:
    backoff = AuthBackoff(base_s=1.0)
    turns = [backoff.take_turn("10.0.0.1", 0.0) for _ in range(10)]
    # Arriving together, each waits for all before it: 0, 1, 1+2, 1+2+4, ...
    assert [t.wait_s for t in turns[:7]] == [0, 1, 3, 7, 15, 31, 63]
    assert [t.attempt for t in turns[:7]] == [1, 2, 3, 4, 5, 6, 7]
    # The eighth would wait 127 s, over the 100 s an attempt may wait: refused unseen, and
    # it takes no turn, so the ones after it are refused alike.
    assert all(t.wait_s is None for t in turns[7:])
    assert turns[7].retry_after_s == 127
    assert turns[9].attempt == 7


def test_other_addresses_are_not_slowed() -> None:
    backoff = AuthBackoff(base_s=1.0)
    for _ in range(3):
        backoff.take_turn("10.0.0.1", 0.0)
    assert backoff.take_turn("10.0.0.2", 0.0).wait_s == 0


def test_a_success_forgets_the_address() -> None:
    backoff = AuthBackoff(base_s=1.0)
    backoff.take_turn("10.0.0.1", 0.0)
    backoff.take_turn("10.0.0.1", 0.0)
    backoff.succeeded("10.0.0.1")
    turn = backoff.take_turn("10.0.0.1", 0.0)
    assert (turn.wait_s, turn.attempt) == (0, 1)


def test_an_address_quiet_long_enough_starts_afresh() -> None:
    backoff = AuthBackoff(base_s=1.0)
    for _ in range(4):
        backoff.take_turn("10.0.0.1", 0.0)
    assert backoff.take_turn("10.0.0.1", 100.0).attempt == 5
    turn = backoff.take_turn("10.0.0.1", 100.0 + 32 + 1200 + 1)
    assert (turn.wait_s, turn.attempt) == (0, 1)


def test_the_table_holds_at_most_its_size() -> None:
    backoff = AuthBackoff(base_s=1.0, max_addresses=100)
    for i in range(1000):
        backoff.take_turn(f"10.0.{i // 256}.{i % 256}", 0.0)
    assert len(backoff) == 100
    # The most recent stay; the oldest went first.
    assert backoff.take_turn("10.0.3.231", 0.0).attempt == 2
    assert backoff.take_turn("10.0.0.0", 0.0).attempt == 1


@pytest.mark.parametrize("base", [0.01, 0.5])
def test_the_wait_scales_with_the_configured_base(base: float) -> None:
    backoff = AuthBackoff(base_s=base)
    backoff.take_turn("a", 0.0)
    assert backoff.take_turn("a", 0.0).wait_s == pytest.approx(base)
