from __future__ import annotations

from gateway.admission.team_share import TeamShares


def test_a_team_is_refused_past_its_share_and_others_are_not() -> None:
    shares = TeamShares(2)
    assert shares.enter("noisy") and shares.enter("noisy")
    assert not shares.enter("noisy")
    assert shares.in_flight("noisy") == 2  # a refusal counts nothing
    assert shares.enter("quiet")
    shares.leave("noisy")
    assert shares.enter("noisy")


def test_a_team_with_nothing_in_flight_takes_no_room() -> None:
    shares = TeamShares(1)
    for i in range(1000):
        assert shares.enter(f"team-{i}")
        shares.leave(f"team-{i}")
    assert shares._counts == {}


def test_zero_bounds_nothing() -> None:
    shares = TeamShares(0)
    assert all(shares.enter("team") for _ in range(10_000))
    assert shares.in_flight("team") == 10_000
