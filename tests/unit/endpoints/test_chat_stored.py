"""The filters of a team's stored chat completions list, as upstream filters them."""

from __future__ import annotations

from gateway.endpoints.chat_stored import _model_matches
from gateway.endpoints.owned import metadata_matches


def test_a_model_matches_itself_and_its_dated_snapshots() -> None:
    assert _model_matches("gpt-4o-2024-08-06", ())  # no filter
    assert _model_matches("gpt-4o-2024-08-06", ("gpt-4o",))
    assert _model_matches("gpt-4o", ("gpt-4o",))
    assert not _model_matches("gpt-4o-mini-2024-07-18", ("gpt-4o-mini-2",))
    assert not _model_matches("gpt-4o", ("gpt-4o-mini",))
    assert _model_matches("gpt-4o-2024-08-06", ("my-alias", "gpt-4o-2024-08-06"))
    assert not _model_matches(None, ("gpt-4o",))


def test_metadata_must_match_every_pair_asked() -> None:
    assert metadata_matches(None, {})
    assert metadata_matches({"a": "1", "b": "2"}, {"a": "1"})
    assert not metadata_matches({"a": "1"}, {"a": "1", "b": "2"})
    assert not metadata_matches({"a": "2"}, {"a": "1"})
    assert not metadata_matches(None, {"a": "1"})
