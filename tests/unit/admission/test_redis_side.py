"""The admission script's replies read back without Redis: rate-limit headers and refusals."""

from __future__ import annotations

from gateway.admission.decision import decode_admit, ratelimit_headers, refusal
from gateway.config import Limits, ModelLimits
from tests.redis.admission.test_redis_side import make_plan


def test_headers_report_the_tightest_limit_and_refusals_name_it() -> None:
    plan = make_plan(rpm=20, tpm=1000, est=10, key_rpm=5)
    decision = decode_admit(plan, [0, 3, 1500, 0, 0, 19, 3000, 900, 6000, 0, 12000])
    headers = dict(ratelimit_headers(decision.windows, refused=True))
    assert headers["x-ratelimit-limit-requests"] == "5"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-reset-requests"] == "12s"
    assert headers["x-ratelimit-limit-tokens"] == "1000"
    from datetime import UTC, datetime

    error = refusal(decision, plan, datetime(2026, 12, 1, tzinfo=UTC))
    assert error.status == 429 and error.type == "requests" and error.code == "rate_limit_exceeded"
    assert "key k1 on requests per min (RPM): Limit 5, Used 5, Requested 1" in error.message
    assert error.headers["retry-after"] == "2" and error.headers["retry-after-ms"] == "1500"


def test_budget_refusal_is_insufficient_quota_and_not_retried() -> None:
    from datetime import UTC, datetime

    plan = make_plan(budget=100_000_000, reserve=1_966_080)
    decision = decode_admit(plan, [0, 1, -1, 99_000_000, 500_000])
    error = refusal(decision, plan, datetime(2026, 12, 1, tzinfo=UTC))
    assert error.status == 429 and error.code == "insufficient_quota"
    assert error.headers["x-should-retry"] == "false"
    assert (
        "$100.00" in error.message and "$99.00" in error.message and "2026-12-01" in error.message
    )


def test_limits_are_unused_here() -> None:
    # Limits/ModelLimits are the config shapes plans are built from
    # (see tests/unit/admission/test_plan.py).
    assert Limits(models={"m": ModelLimits(messages_per_week=3)}).models["m"].messages_per_week == 3
