"""Moderations: plausible, deterministic results; trigger words flag on purpose."""

from __future__ import annotations

from gateway.simulator.moderations import OMNI_CATEGORIES, TEXT_CATEGORIES, check, moderation_object


def test_clean_text_is_not_flagged() -> None:
    body = {"input": "Have a nice day."}
    assert check(body) is None
    obj = moderation_object(body, "modr-1")
    assert obj["id"] == "modr-1" and obj["model"] == "text-moderation-007"
    (result,) = obj["results"]
    assert result["flagged"] is False
    assert list(result["categories"]) == list(TEXT_CATEGORIES)
    assert all(0 < score < 0.001 for score in result["category_scores"].values())
    assert obj == moderation_object(body, "modr-1")


def test_trigger_word_flags_its_category() -> None:
    (result,) = moderation_object({"input": "I will attack the castle"}, "m")["results"]
    assert result["flagged"] is True
    assert result["categories"]["violence"] is True and result["category_scores"]["violence"] > 0.5
    assert result["categories"]["hate"] is False


def test_omni_model_and_lists() -> None:
    body = {"model": "omni-moderation-latest", "input": ["a", {"type": "text", "text": "b"}]}
    assert check(body) is None
    obj = moderation_object(body, "m")
    assert obj["model"] == "omni-moderation-2024-09-26" and len(obj["results"]) == 2
    assert list(obj["results"][0]["categories"]) == list(OMNI_CATEGORIES)
    assert obj["results"][0]["category_applied_input_types"]["violence"] == ["text"]


def test_errors() -> None:
    err = check({"model": "moderation-9", "input": "x"})
    assert err is not None and (err.status, err.code) == (404, "model_not_found")
    err = check({})
    assert err is not None and err.message == "Missing required parameter: 'input'."
    err = check({"input": 5})
    assert err is not None and err.code == "invalid_type"
