"""The admission script's replies read back without Redis: rate-limit headers and refusals."""

from __future__ import annotations

from gateway.admission.decision import OutputCap, decode_admit, ratelimit_headers, refusal
from gateway.admission.pricing import worst_case_micros
from gateway.config import Limits, ModelLimits, Price
from tests.redis.admission.test_redis_side import make_plan


def test_headers_report_the_tightest_limit_and_refusals_name_it() -> None:
    plan = make_plan(rpm=20, tpm=1000, est=10, key_rpm=5)
    decision = decode_admit(plan, [0, 3, 1500, 0, 0, 19, 3000, 900, 6000, 0, 12000])
    headers = dict(ratelimit_headers(decision.windows, "requests"))
    assert headers["x-ratelimit-limit-requests"] == "5"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-reset-requests"] == "12s"
    assert headers["x-ratelimit-limit-tokens"] == "1000"
    from datetime import UTC, datetime

    error = refusal(decision, plan, datetime(2026, 12, 1, tzinfo=UTC))
    assert error.status == 429 and error.type == "requests" and error.code == "rate_limit_exceeded"
    assert "key k1 on requests per min (RPM): Limit 5, Used 5, Requested 1" in error.message
    assert error.headers["retry-after"] == "2" and error.headers["retry-after-ms"] == "1500"


def test_a_spent_budget_is_insufficient_quota_and_not_retried() -> None:
    from datetime import UTC, datetime

    plan = make_plan(budget=100_000_000, reserve=1_966_080)
    decision = decode_admit(plan, [0, 1, -1, 100_000_000, 0])
    error = refusal(decision, plan, datetime(2026, 12, 1, tzinfo=UTC))
    assert error.status == 429 and error.code == "insufficient_quota"
    assert error.message.startswith("You exceeded your team's monthly budget")
    assert error.headers["x-should-retry"] == "false"
    assert "$100.00" in error.message and "2026-12-01" in error.message


def test_a_worst_case_over_what_is_left_names_what_is_left_and_the_cap_that_fits() -> None:
    from datetime import UTC, datetime

    o1_preview = Price(input=15_000_000, cached_input=7_500_000, output=60_000_000)
    plan = make_plan(budget=100_000_000, reserve=worst_case_micros(o1_preview, 0, 32_768))
    decision = decode_admit(plan, [0, 1, -1, 99_000_000, 500_000])
    cap = OutputCap("max_completion_tokens", o1_preview, prompt_tokens=0, copies=1, most=32_768)
    error = refusal(decision, plan, datetime(2026, 12, 1, tzinfo=UTC), cap)
    assert error.status == 429 and error.code == "request_over_budget"
    assert error.param == "max_completion_tokens"
    # $0.50 left at $60 per 1M output tokens: 8,333 tokens, and not one more.
    assert worst_case_micros(o1_preview, 0, 8_333) <= 500_000
    assert worst_case_micros(o1_preview, 0, 8_334) > 500_000
    assert error.message == (
        "This request could cost up to $1.966080 (its worst case), more than team t1 has left "
        "of its monthly budget: $0.50 of $100.00 ($99.00 spent, $0.50 held for requests in "
        "flight). Set max_completion_tokens to at most 8333 for it to fit. The budget resets "
        "on 2026-12-01 00:00 UTC."
    )
    assert error.headers["x-should-retry"] == "false"
    # Nothing fits below the field's minimum; what is held is freed as requests finish.
    tight = OutputCap("max_output_tokens", o1_preview, 33_300, 1, 32_768, least=16)
    held = decode_admit(plan, [0, 1, -1, 98_000_000, 1_500_000])
    error = refusal(held, plan, datetime(2026, 12, 1, tzinfo=UTC), tight)
    assert "No max_output_tokens makes it fit" in error.message
    assert error.message.endswith(
        "What requests in flight hold is freed as they finish: retry then."
    )
    assert error.headers["retry-after-ms"] == "200" and "x-should-retry" not in error.headers


def test_a_refusal_says_none_is_left_only_of_the_limit_that_refused() -> None:
    """A refusal's `x-ratelimit-*` say what is left: nothing of the kind of limit that refused
    (rate limiters and routers read these headers), and the rest as it is."""
    from datetime import UTC, datetime

    plan = make_plan(rpm=20, tpm=1000, est=10, budget=100_000_000, reserve=1_000_000)
    # Refused by the budget: 19 requests and 990 tokens a minute are left.
    by_budget = decode_admit(plan, [0, 3, -1, 99_500_000, 0, 19, 3000, 990, 600])
    headers = refusal(by_budget, plan, datetime(2026, 12, 1, tzinfo=UTC)).headers
    assert headers["x-ratelimit-remaining-requests"] == "19"
    assert headers["x-ratelimit-remaining-tokens"] == "990"
    # Refused by the tokens a minute: requests are left, tokens are not.
    by_tokens = decode_admit(plan, [0, 2, 400, 0, 0, 19, 3000, 4, 59_600])
    headers = refusal(by_tokens, plan, datetime(2026, 12, 1, tzinfo=UTC)).headers
    assert headers["x-ratelimit-remaining-requests"] == "19"
    assert headers["x-ratelimit-remaining-tokens"] == "0"


def test_a_cap_suggested_beside_hosted_tool_fees_leaves_room_for_them() -> None:
    price = Price(input=2_500_000, cached_input=1_250_000, output=10_000_000)
    searches = OutputCap("max_output_tokens", price, 0, 1, 16_384, least=16, fees=40_000)
    assert searches.largest_within(50_000) == 1_000  # $0.01 left beside the searches
    assert searches.largest_within(39_999) is None  # the searches alone do not fit


def test_limits_are_unused_here() -> None:
    # Limits/ModelLimits are the config shapes plans are built from
    # (see tests/unit/admission/test_plan.py).
    assert Limits(models={"m": ModelLimits(messages_per_week=3)}).models["m"].messages_per_week == 3


def test_only_the_scripts_own_refusals_are_refused_settles() -> None:
    """A settle the admission script refuses is not retried; every other reply Redis gives an
    error with (busy, loading, read-only, a missing script, a lost connection) passes, and is."""
    from redis.exceptions import (
        BusyLoadingError,
        NoScriptError,
        ReadOnlyError,
        ResponseError,
    )
    from redis.exceptions import ConnectionError as RedisConnectionError

    from gateway.admission.redis_side import refused

    own = "user_script:78: admission.lua: ARGV[4] is no count Redis can add: 1e+17 script: 3737"
    assert refused(ResponseError(own))
    assert refused(ResponseError("admission.lua: unknown mode bogus"))
    for passing in (
        ResponseError("BUSY Redis is busy running a script. You can only call SCRIPT KILL"),
        BusyLoadingError("Redis is loading the dataset in memory"),
        ReadOnlyError("You can't write against a read only replica."),
        NoScriptError("No matching script. Please use EVAL."),
        RedisConnectionError("Connection reset by peer"),
        ResponseError("OOM command not allowed when used memory > 'maxmemory'."),
    ):
        assert not refused(passing), passing
