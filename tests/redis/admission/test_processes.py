"""Exactness across OS processes: four processes (as four gateway replicas would be), each firing
100 concurrent admissions at one redis-server, share one team's limits and budget exactly.

The processes call `Admission` directly, not through the HTTP gateway. They start together on a
barrier, so their calls really interleave at the server. A naive read-compare-write limiter run
the same way over-admits, which shows the count below would catch a non-atomic implementation.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import traceback
from collections.abc import Iterator
from multiprocessing.synchronize import Barrier
from typing import Any

import pytest
import redis

from gateway.admission.decision import BUDGET
from gateway.admission.plan import tag
from gateway.admission.redis_side import Admission
from gateway.config import AdmissionConfig, RedisConfig
from gateway.runtime.redis_connection import open_redis
from gateway.wire.usage import Usage
from tests.admission_model import month_of
from tests.redis.admission.test_redis_side import make_plan

PROCESSES = 4
CALLS = 100  # concurrent admissions per process
LIMIT = 57
BUDGET_MICROS = 10_000


def replica(url: str, mode: str, seed: int, now_ms: int, barrier: Barrier, results: Any) -> None:
    """One process: wait for the others, then fire CALLS admissions at once; report them."""
    try:
        results.put(asyncio.run(fire(url, mode, seed, now_ms, barrier)))
    except BaseException:
        results.put(traceback.format_exc())  # the parent fails with it instead of waiting
        raise


async def fire(
    url: str, mode: str, seed: int, now_ms: int, barrier: Barrier
) -> list[tuple[Any, ...]]:
    client = open_redis(RedisConfig(url=url, pool_size=CALLS, timeout_s=10.0))
    # One instant for all: the exact counts are of a burst the buckets cannot refill during.
    admission = Admission(client, AdmissionConfig(), clock_ms=lambda: now_ms)
    rng = random.Random(seed)
    # Hold ids must be unique across processes: a repeated id is a replay and reserves nothing.
    ids = (f"p{seed}-{i}" for i in range(CALLS))
    await client.ping()  # connect before the barrier: the race starts at the first admission
    barrier.wait()
    try:
        if mode == "rpm":
            decisions = await asyncio.gather(
                *(admission.admit(make_plan("shared", rpm=LIMIT, hold_id=i)) for i in ids)
            )
            return [(d.admitted, d.degraded) for d in decisions]
        if mode == "naive":
            return await asyncio.gather(*(naive_admit(client) for _ in range(CALLS)))
        return await asyncio.gather(
            *(spend(admission, rng, i, settle=mode == "settle") for i in ids)
        )
    finally:
        await client.aclose()


async def spend(
    admission: Admission, rng: random.Random, hold_id: str, settle: bool
) -> tuple[Any, ...]:
    """Admit one call reserving a random worst case; settle it at a cost up to that."""
    reserve = rng.choice([90, 130, 170, 230])
    plan = make_plan("shared", budget=BUDGET_MICROS, reserve=reserve, hold_id=hold_id)
    decision = await admission.admit(plan)
    cost = None
    if decision.admitted and settle:
        await asyncio.sleep(rng.random() / 100)  # the upstream call
        cost = rng.randint(0, plan.reserve)
        assert await admission.settle(plan, Usage(1, 1), cost, release_weekly=False) == 1
    refused_by_budget = not decision.admitted and decision.refused_by == BUDGET
    # spend + held as the script saw it right after this call: the budget's high-water marks.
    return (
        decision.admitted,
        plan.reserve,
        cost,
        decision.spend + decision.held,
        refused_by_budget,
    )


async def naive_admit(client: Any) -> tuple[bool, bool]:
    key = f"{tag('shared')}:naive"
    if int(await client.get(key) or 0) >= LIMIT:
        return (False, False)
    await client.incr(key)
    return (True, False)


def run_replicas(url: str, mode: str) -> list[tuple[Any, ...]]:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES)
    results = context.Queue()
    seconds, micros = redis.Redis.from_url(url).time()
    now_ms = seconds * 1000 + micros // 1000
    procs = [
        context.Process(target=replica, args=(url, mode, seed, now_ms, barrier, results))
        for seed in range(PROCESSES)
    ]
    for proc in procs:
        proc.start()
    try:
        reports = [results.get(timeout=60) for _ in procs]
    finally:
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
    failures = [r for r in reports if isinstance(r, str)]
    assert not failures, failures[0]
    assert all(proc.exitcode == 0 for proc in procs)
    return [call for report in reports for call in report]


@pytest.fixture
def server(redis_server_module: str) -> Iterator[str]:
    yield redis_server_module
    redis.Redis.from_url(redis_server_module).flushall()


def test_four_processes_admit_exactly_the_limit_together(server: str) -> None:
    calls = run_replicas(server, "rpm")
    assert len(calls) == PROCESSES * CALLS
    assert not any(degraded for _, degraded in calls)
    assert sum(admitted for admitted, _ in calls) == LIMIT


def test_four_processes_never_reserve_more_than_the_budget(server: str) -> None:
    calls = run_replicas(server, "reserve")
    reserved = sum(reserve for admitted, reserve, *_ in calls if admitted)
    assert reserved <= BUDGET_MICROS
    assert all(high_water <= BUDGET_MICROS for *_, high_water, _ in calls)
    assert any(refused for *_, refused in calls)  # the budget ran out: the limit was tested
    month = redis.Redis.from_url(server).get(f"{tag('shared')}:held:{current_month(server)}")
    assert int(month or 0) == reserved  # held is exactly the sum of the admitted reserves


def test_four_processes_spend_exactly_what_they_settle(server: str) -> None:
    calls = run_replicas(server, "settle")
    settled = [cost for admitted, _, cost, *_ in calls if admitted]
    assert all(high_water <= BUDGET_MICROS for *_, high_water, _ in calls)
    client = redis.Redis.from_url(server)
    month = current_month(server)
    spend, held = client.mget(f"{tag('shared')}:spend:{month}", f"{tag('shared')}:held:{month}")
    assert int(spend or 0) == sum(settled) <= BUDGET_MICROS
    assert int(held or 0) == 0


def test_a_naive_limiter_in_four_processes_over_admits(server: str) -> None:
    calls = run_replicas(server, "naive")
    # The load the script admits exactly 57 of: the count above would have failed.
    assert sum(admitted for admitted, _ in calls) > LIMIT


def current_month(url: str) -> str:
    # The script's clock is Redis's TIME: name the month from it, not from this process's clock.
    seconds, _ = redis.Redis.from_url(url).time()
    return month_of(seconds * 1000)
