"""The admission script against a real redis-server: exact limits, budgets, holds, idempotency."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest
import redis.asyncio as redis

from gateway.admission.decision import BUDGET
from gateway.admission.plan import REQUESTS, RPM, TOKENS, TPM, Bucket, Plan, WeeklyCap, tag
from gateway.admission.redis_side import Admission
from gateway.admission.usage_breakdown import usage_label
from gateway.config import AdmissionConfig, RedisConfig
from gateway.runtime.redis_connection import open_redis
from gateway.wire.usage import Usage
from tests.conftest import ROOT

LUA = ROOT.joinpath("gateway", "admission", "admission.lua").read_text()

pytestmark = pytest.mark.anyio
_ids = itertools.count()


@pytest.fixture
async def client(redis_server: str) -> AsyncIterator[redis.Redis]:
    r = open_redis(RedisConfig(url=redis_server, pool_size=64, timeout_s=5.0))
    yield r
    await r.aclose()


def make_plan(
    team: str = "t1",
    rpm: int | None = None,
    tpm: int | None = None,
    est: int = 0,
    weekly: int | None = None,
    budget: int | None = None,
    reserve: int = 0,
    key_rpm: int | None = None,
    hold_id: str | None = None,
) -> Plan:
    t = tag(team)
    buckets = []
    if rpm is not None:
        buckets.append(Bucket(f"{t}:b:team:*:r", REQUESTS, rpm, 1, RPM, f"team {team}"))
    if tpm is not None:
        buckets.append(Bucket(f"{t}:b:team:*:t", TOKENS, tpm, est, TPM, f"team {team}"))
    if key_rpm is not None:
        buckets.append(Bucket(f"{t}:b:key:k1:*:r", REQUESTS, key_rpm, 1, RPM, "key k1"))
    caps = (WeeklyCap(f"{t}:w:team:o1-preview", weekly, "messages per week"),) if weekly else ()
    return Plan(
        team,
        t,
        hold_id or f"h{next(_ids)}",
        "o1-preview",
        tuple(buckets),
        caps,
        budget,
        reserve,
        est,
    )


async def pinned_clock(client: redis.Redis) -> Callable[[], int]:
    """Redis's time now, held still for the script. The buckets refill continuously, one request
    every 60 / limit seconds, so a burst that a loaded machine takes longer than that to send is
    rightly admitted one more: the exact counts below are of a burst at one instant."""
    seconds, micros = await client.time()
    now = seconds * 1000 + micros // 1000
    return lambda: now


async def test_hundreds_of_concurrent_requests_admit_exactly_the_limit(client: redis.Redis) -> None:
    admission = Admission(client, AdmissionConfig(), clock_ms=await pinned_clock(client))
    decisions = await asyncio.gather(*(admission.admit(make_plan(rpm=50)) for _ in range(300)))
    assert sum(d.admitted for d in decisions) == 50
    refused = [d for d in decisions if not d.admitted]
    assert all(0 < d.wait_ms <= 1200 for d in refused)  # one request's worth of refill: 60 s / 50


async def test_a_burst_spread_over_one_refill_is_admitted_one_more(client: redis.Redis) -> None:
    # Why the bursts pin the clock: the same 50-a-minute bucket gets a request back after 1.2 s,
    # so a burst a busy machine spreads over that long is admitted 51, rightly.
    start = (await pinned_clock(client))()
    now = start
    admission = Admission(client, AdmissionConfig(), clock_ms=lambda: now)
    burst = await asyncio.gather(*(admission.admit(make_plan(rpm=50)) for _ in range(100)))
    assert sum(d.admitted for d in burst) == 50
    now = start + 1199
    assert not (await admission.admit(make_plan(rpm=50))).admitted
    now = start + 1200
    later = await asyncio.gather(*(admission.admit(make_plan(rpm=50)) for _ in range(100)))
    assert sum(d.admitted for d in later) == 1


async def test_a_refusal_by_one_limit_consumes_none_of_the_others(client: redis.Redis) -> None:
    admission = Admission(client, AdmissionConfig())
    for _ in range(2):
        assert (await admission.admit(make_plan(rpm=100, key_rpm=2, weekly=10))).admitted
    third = await admission.admit(make_plan(rpm=100, key_rpm=2, weekly=10))
    assert (
        not third.admitted and isinstance(third.refused_by, Bucket) and third.refused_by.limit == 2
    )
    team, key, week = third.windows
    assert (team.remaining, key.remaining, week.remaining) == (98, 0, 8)


async def test_budget_reserves_worst_case_and_settles_to_actual(client: redis.Redis) -> None:
    admission = Admission(client, AdmissionConfig())
    first, second = make_plan(budget=1000, reserve=400), make_plan(budget=1000, reserve=400)
    assert (await admission.admit(first)).admitted
    assert (await admission.admit(second)).admitted
    third = await admission.admit(make_plan(budget=1000, reserve=400))
    assert not third.admitted and third.refused_by == BUDGET
    assert (third.spend, third.held) == (0, 800)
    assert await admission.settle(first, Usage(10, 20), 100, release_weekly=False) == 1
    again = await admission.admit(make_plan(budget=1000, reserve=400))
    assert again.admitted and (again.spend, again.held) == (100, 800)


async def test_an_exhausted_budget_refuses_even_free_calls(client: redis.Redis) -> None:
    admission = Admission(client, AdmissionConfig())
    plan = make_plan(budget=500, reserve=500)
    assert (await admission.admit(plan)).admitted
    await admission.settle(plan, Usage(1, 1), 500, release_weekly=False)
    assert not (await admission.admit(make_plan(budget=500, reserve=0))).admitted


async def test_admission_replay_counts_once(client: redis.Redis) -> None:
    admission = Admission(client, AdmissionConfig())
    plan = make_plan(rpm=10, budget=10_000, reserve=1000, hold_id="same")
    first = await admission.admit(plan)
    replay = await admission.admit(plan)
    assert first.admitted and replay.admitted
    assert replay.held == 1000 and replay.windows[0].remaining == 9


async def test_settle_is_idempotent_by_hold_id(client: redis.Redis) -> None:
    admission = Admission(client, AdmissionConfig())
    plan = make_plan(budget=10_000, reserve=1000)
    await admission.admit(plan)
    assert await admission.settle(plan, Usage(5, 5), 300, release_weekly=False) == 1
    assert await admission.settle(plan, Usage(5, 5), 300, release_weekly=False) == 2
    after = await admission.admit(make_plan(budget=10_000, reserve=0))
    assert (after.spend, after.held) == (300, 0)
    assert await admission.settle(make_plan(hold_id="never-admitted"), Usage(), 1, False) == -1


async def test_an_expired_hold_is_charged_its_reserve_and_a_late_settle_corrects_it(
    client: redis.Redis,
) -> None:
    admission = Admission(client, AdmissionConfig(hold_ttl_s=0.2))
    plan = make_plan(budget=10_000, reserve=1000)
    await admission.admit(plan)
    await asyncio.sleep(0.3)
    swept = await admission.admit(make_plan(budget=10_000, reserve=0))  # any call sweeps
    assert (swept.spend, swept.held) == (1000, 0)
    assert await admission.settle(plan, Usage(3, 4), 250, release_weekly=False) == 1
    corrected = await admission.admit(make_plan(budget=10_000, reserve=0))
    assert (corrected.spend, corrected.held) == (250, 0)


async def test_an_expired_holds_correction_is_filed_where_its_reserve_was(
    client: redis.Redis,
) -> None:
    admission = Admission(client, AdmissionConfig(hold_ttl_s=0.2))
    plan = dataclasses.replace(
        make_plan(budget=10_000, reserve=1000), label=usage_label("", "threads", "key_1")
    )
    await admission.admit(plan.refiled("gpt-4o"))
    await asyncio.sleep(0.3)
    await admission.admit(make_plan(budget=10_000, reserve=0))  # any call sweeps
    # The late settle names the model that answered: the hold keeps the row it was filed on.
    assert await admission.settle(plan.refiled("gpt-4o-mini"), Usage(3, 4), 250, False) == 1
    usage = await admission.usage("t1", 10_000, datetime.now(UTC))
    row = {(r["model"], r["endpoint"], r["key"]): r for r in usage["rows"]}
    assert row[("gpt-4o", "threads", "key_1")]["cost_micros"] == 250
    assert row[("gpt-4o", "threads", "key_1")]["expired_holds"] == 1
    assert ("gpt-4o-mini", "threads", "key_1") not in row


async def test_token_limits_settle_to_real_usage(client: redis.Redis) -> None:
    admission = Admission(client, AdmissionConfig())
    first = make_plan(tpm=1000, est=600)
    assert (await admission.admit(first)).admitted
    assert not (await admission.admit(make_plan(tpm=1000, est=600))).admitted
    await admission.settle(first, Usage(50, 50), 0, release_weekly=False)  # used 100, not 600
    assert (await admission.admit(make_plan(tpm=1000, est=600))).admitted


async def test_a_request_larger_than_the_token_limit_can_never_pass(client: redis.Redis) -> None:
    admission = Admission(client, AdmissionConfig())
    decision = await admission.admit(make_plan(tpm=1000, est=5000))
    assert not decision.admitted and decision.wait_ms == -1


async def test_weekly_caps_and_release_on_failure(client: redis.Redis) -> None:
    admission = Admission(client, AdmissionConfig())
    plans = [make_plan(weekly=2) for _ in range(2)]
    for plan in plans:
        assert (await admission.admit(plan)).admitted
    refused = await admission.admit(make_plan(weekly=2))
    assert not refused.admitted and isinstance(refused.refused_by, WeeklyCap)
    assert 0 < refused.wait_ms <= 7 * 86_400_000
    await admission.settle(plans[0], Usage(), 0, release_weekly=True)  # upstream failed
    assert (await admission.admit(make_plan(weekly=2))).admitted


async def test_every_key_written_has_an_expiry(client: redis.Redis) -> None:
    admission = Admission(client, AdmissionConfig())
    plan = make_plan(rpm=5, tpm=1000, est=10, weekly=3, budget=10_000, reserve=100, key_rpm=5)
    await admission.admit(plan)
    await admission.settle(plan, Usage(4, 4, 0, 2), 50, release_weekly=False)
    await admission.admit(make_plan(rpm=5, tpm=1000, est=10, weekly=3, budget=10_000, reserve=100))
    keys = await client.keys("*")
    assert keys
    for key in keys:
        assert await client.pttl(key) > 0, key


async def test_months_and_weeks_follow_the_utc_calendar(client: redis.Redis) -> None:
    script = client.register_script(LUA)
    cases = {
        1709164800000: "2024-02",  # 2024-02-29 00:00 UTC, a leap day
        1704067199999: "2023-12",  # 2023-12-31 23:59:59.999
        1704067200000: "2024-01",
        1735689600000: "2025-01",
    }
    for now_ms, month in cases.items():
        base = tag(f"cal{now_ms}")
        await script(keys=[base], args=["admit", "h", now_ms, 60000, 0, 0, 10_000, 7, 0, "m"])
        assert await client.get(f"{base}:held:{month}") == b"7"
    # 2024-01-01 was a Monday: a weekly cap resets at the next Monday 00:00 UTC.
    monday = 1704067200000
    base = tag("week")
    reply = await script(
        keys=[base, f"{base}:w"],
        args=["admit", "w1", monday + 3_600_000, 60000, 0, 1, -1, 0, 0, "m", 5],
    )
    assert reply[-1] == 7 * 86_400_000 - 3_600_000


async def test_invalid_arguments_write_nothing(client: redis.Redis) -> None:
    script = client.register_script(LUA)
    with pytest.raises(redis.ResponseError):
        await script(
            keys=[tag("bad")], args=["admit", "h", "", 60000, 1, 0, -1, "lots", 0, "m", 5, 1]
        )
    assert await client.keys("*") == []


@pytest.mark.parametrize("huge", ["cost", "tokens"])
async def test_a_settle_of_a_count_redis_cannot_add_writes_nothing(
    client: redis.Redis, huge: str
) -> None:
    """From 1e17 on, Redis formats a number from the script as no integer, and INCRBY refuses
    it: a settle failing there kept the release of the hold it had written, and each retry of
    it released the hold again, leaving the team's held spend below zero (room past its
    budget). It is refused before its first write: the hold stays open, held as it was."""
    admission = Admission(client, AdmissionConfig())
    plan = make_plan(team=f"absurd-{huge}", budget=10_000, reserve=1000, tpm=10**6, est=100)
    assert (await admission.admit(plan)).admitted
    usage, cost = (Usage(10, 10), 10**17) if huge == "cost" else (Usage(10**17, 10), 100)
    for _ in range(2):  # the settle and a retry of it
        with pytest.raises(redis.ResponseError):
            await admission.settle(plan, usage, cost, release_weekly=False)
    after = await admission.admit(make_plan(team=plan.team, budget=10_000, reserve=0))
    assert (after.spend, after.held) == (0, 1000)
