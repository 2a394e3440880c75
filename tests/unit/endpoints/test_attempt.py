"""What a whole upstream answer is told as, read before it reaches its client."""

from __future__ import annotations

from gateway.endpoints.attempt import error_answer


def test_an_error_object_in_a_200_names_neither_the_organization_nor_its_usage() -> None:
    proxied = {
        "error": {
            "message": "Rate limit reached for gpt-4o in organization org-abc123 on tokens per "
            "min (TPM): Limit 30000, Used 29500, Requested 700. Please try again in 1.2s.",
            "type": "tokens", "param": None, "code": "rate_limit_exceeded",
        }
    }  # fmt: skip
    exc = error_answer(proxied)
    assert exc is not None and exc.code == "upstream_invalid_answer"
    assert "org-" not in exc.message and "Used" not in exc.message
    assert "every team of this gateway shares" in exc.message
    assert error_answer({"object": "response", "error": proxied["error"]}) is None


def test_an_error_object_in_a_200_on_a_teams_own_key_is_told_of_that_key() -> None:
    quota = {"message": "You exceeded your current quota.", "code": "insufficient_quota"}
    exc = error_answer({"error": quota}, own_key=True)
    assert exc is not None and "upstream account of your team's own upstream key" in exc.message
    assert "gateway's upstream account" not in exc.message
