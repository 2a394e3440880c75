"""Admission under faults, on a real redis-server: replies that time out (DEBUG SLEEP stalls the
server past the client's socket timeout), a gateway killed between admit and settle, retried
calls. Afterwards the ledger must count every request exactly once and leave no key immortal.
"""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import pytest
import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from gateway.admission.plan import tag
from gateway.admission.redis_side import Admission
from gateway.admission.script_pipeline import ScriptClient
from gateway.config import AdmissionConfig, RedisConfig
from gateway.observability.metrics import Metrics
from gateway.runtime.redis_connection import open_redis
from gateway.wire.errors import GatewayError
from gateway.wire.usage import Usage
from tests.admission_model import DAY_MS, month_of
from tests.conftest import ROOT
from tests.redis.admission.test_redis_side import LUA, make_plan

pytestmark = pytest.mark.anyio
TIMEOUT_S = 0.2  # the gateway client's socket timeout here
STALL_S = 0.5  # how long DEBUG SLEEP freezes the server: longer than the timeout


@pytest.fixture
async def server(redis_debug_server: str) -> AsyncIterator[str]:
    yield redis_debug_server
    r = redis.Redis.from_url(redis_debug_server)
    await r.flushall()
    await r.aclose()


@pytest.fixture
async def client(server: str) -> AsyncIterator[redis.Redis]:
    """The gateway's own client (blocking pool, no automatic retries) with a short timeout."""
    r = open_redis(RedisConfig(url=server, timeout_s=TIMEOUT_S))
    yield r
    await r.aclose()


@pytest.fixture
async def observer(server: str) -> AsyncIterator[redis.Redis]:
    """A second connection: stalls the server and reads the ledger, with no short timeout."""
    r = redis.Redis.from_url(server)
    yield r
    await r.aclose()


async def stall(observer: redis.Redis) -> asyncio.Task[object]:
    """Freeze the server for STALL_S; returns once it has stopped answering."""
    # A probe with a tiny timeout and no retries: the first PING it gets no answer to shows the
    # freeze has begun, however slowly this machine scheduled the DEBUG SLEEP.
    kwargs = observer.connection_pool.connection_kwargs
    probe = redis.Redis(
        host=kwargs["host"], port=kwargs["port"], socket_timeout=0.05, retry=Retry(NoBackoff(), 0)
    )
    await probe.ping()
    task = asyncio.create_task(observer.execute_command("DEBUG", "SLEEP", STALL_S))
    try:
        while True:
            try:
                await probe.ping()
            except redis.TimeoutError:
                return task
            await asyncio.sleep(0.005)
    finally:
        await probe.aclose()


async def ledger(observer: redis.Redis, team: str = "t1") -> tuple[int, int]:
    """(spend, held) of this month, in micro-dollars."""
    month = await redis_month(observer)
    spend, held = await observer.mget(f"{tag(team)}:spend:{month}", f"{tag(team)}:held:{month}")
    return int(spend or 0), int(held or 0)


async def redis_month(observer: redis.Redis) -> str:
    # The script names months by Redis's clock (TIME), so the test reads the same clock.
    seconds, _ = await observer.time()
    return month_of(seconds * 1000)


async def test_a_settle_whose_reply_timed_out_counts_once_when_retried(
    client: redis.Redis, observer: redis.Redis
) -> None:
    admission = Admission(client, AdmissionConfig())
    plan = make_plan(budget=10_000, reserve=1_000)
    assert (await admission.admit(plan)).admitted
    frozen = await stall(observer)
    with pytest.raises(redis.TimeoutError):
        await admission.settle(plan, Usage(3, 4), 300, release_weekly=False)
    await frozen
    # The timed-out call did reach the server and ran once it woke: the retry is a replay.
    assert await admission.settle(plan, Usage(3, 4), 300, release_weekly=False) == 2
    assert await ledger(observer) == (300, 0)


async def test_a_plain_increment_retried_after_a_timeout_counts_twice(
    client: redis.Redis, observer: redis.Redis
) -> None:
    # The same fault against a counter with no operation id: why settle needs its hold id.
    await client.ping()  # connected before the stall, as the gateway's pool is
    frozen = await stall(observer)
    with pytest.raises(redis.TimeoutError):
        await client.incrby("naive-spend", 300)
    await frozen
    await client.incrby("naive-spend", 300)
    assert await observer.get("naive-spend") == b"600"


async def test_an_admit_retried_after_a_timeout_reserves_once(
    client: redis.Redis, observer: redis.Redis
) -> None:
    admission = Admission(client, AdmissionConfig())
    plan = make_plan(rpm=10, budget=10_000, reserve=1_000, hold_id="retried")
    await client.ping()
    frozen = await stall(observer)
    # Budgets fail closed when Redis does not answer: the caller sees a 503 and may retry.
    with pytest.raises(GatewayError) as refused:
        await admission.admit(plan)
    assert refused.value.status == 503
    await frozen
    retry = await admission.admit(plan)
    assert retry.admitted and retry.held == 1_000
    assert retry.windows[0].remaining == 9  # one request taken from the bucket, not two
    assert await ledger(observer) == (0, 1_000)
    holds = await observer.zrange(f"{tag('t1')}:holds", 0, -1)
    assert holds == [b"retried"]


GATEWAY = textwrap.dedent(
    """
    import asyncio, json, sys, time
    from gateway.admission.redis_side import Admission
    from gateway.config import AdmissionConfig, RedisConfig
    from gateway.runtime.redis_connection import open_redis
    from tests.redis.admission.test_redis_side import make_plan

    async def admit():
        client = open_redis(RedisConfig(url=sys.argv[1]))
        admission = Admission(client, AdmissionConfig(hold_ttl_s=0.3))
        decision = await admission.admit(make_plan(budget=10_000, reserve=700, hold_id="lost"))
        print(json.dumps([decision.admitted, decision.held]), flush=True)

    asyncio.run(admit())
    time.sleep(60)  # the upstream call, during which this gateway is killed
    """
)


async def test_a_hold_left_by_a_killed_gateway_is_charged_its_reserve(
    server: str, client: redis.Redis, observer: redis.Redis
) -> None:
    gateway = await asyncio.create_subprocess_exec(
        sys.executable, "-c", GATEWAY, server, cwd=ROOT, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert gateway.stdout is not None
        line = await asyncio.wait_for(gateway.stdout.readline(), timeout=30)
        assert json.loads(line) == [True, 700]
    finally:
        gateway.kill()  # SIGKILL: no settle, no cleanup
        await gateway.wait()
    assert await ledger(observer) == (0, 700)
    await asyncio.sleep(0.4)  # past the hold's expiry
    # Any call for the team sweeps; a settle of an unknown hold leaves no hold of its own.
    other = Admission(client, AdmissionConfig())
    assert await other.settle(make_plan(hold_id="none"), Usage(), 0, release_weekly=False) == -1
    assert await ledger(observer) == (700, 0)
    assert await observer.zcard(f"{tag('t1')}:holds") == 0
    assert await observer.hget(f"{tag('t1')}:hold:lost", "s") == b"expired"
    usage = await other.usage("t1", 10_000, datetime.now(UTC))
    assert usage["by_model"]["o1-preview"]["expired_holds"] == 1


async def test_no_key_is_left_without_an_expiry_after_a_mixed_workload(
    client: redis.Redis, observer: redis.Redis
) -> None:
    admission = Admission(client, AdmissionConfig(hold_ttl_s=0.2))

    def full(**extra: object) -> object:
        return make_plan(
            rpm=20, tpm=2_000, est=50, weekly=20, budget=50_000, reserve=400, key_rpm=10, **extra
        )

    plans = [full() for _ in range(12)]  # the key's 10 per minute refuses the last two
    decisions = await asyncio.gather(*(admission.admit(p) for p in plans))
    assert sum(d.admitted for d in decisions) == 10
    admitted = [p for p, d in zip(plans, decisions, strict=True) if d.admitted]
    await admission.settle(admitted[0], Usage(30, 10, 5, 4), 250, release_weekly=False)
    await admission.settle(admitted[1], Usage(), 0, release_weekly=True)  # upstream failed
    await admission.admit(admitted[2])  # a replay
    frozen = await stall(observer)
    with pytest.raises(redis.TimeoutError):  # a settle whose reply is lost
        await admission.settle(admitted[3], Usage(1, 1), 100, release_weekly=False)
    await frozen
    await asyncio.sleep(0.25)  # the rest of the holds expire unsettled
    await admission.admit(make_plan("t2", rpm=5, budget=1_000, reserve=0))  # another team
    await admission.settle(admitted[4], Usage(2, 2), 120, release_weekly=False)  # sweeps, late
    await admission.settle(admitted[4], Usage(2, 2), 120, release_weekly=False)  # a replay
    # The ledger holds each request once: its settled cost, or its reserve when it expired
    # unsettled, whichever order the sweep and the (late, lost or replayed) settles came in.
    assert await ledger(observer) == (250 + 0 + 400 + 100 + 120 + 5 * 400, 0)
    keys = [k async for k in observer.scan_iter()]
    kinds = {k.decode().split(":")[2] for k in keys}
    assert {"b", "w", "spend", "held", "usage", "hold"} <= kinds  # every kind of key was written
    immortal = [k for k in keys if await observer.pttl(k) == -1]
    assert not immortal


async def age(observer: redis.Redis, ms: int) -> None:
    """Move every key's expiry `ms` closer, as that much idle time would: what expires, goes."""
    async for key in observer.scan_iter():
        ttl = await observer.pttl(key)
        if ttl > ms:
            await observer.pexpire(key, ttl - ms)
        elif ttl >= 0:
            await observer.delete(key)


# Regression: holds and their index used to expire a day after admission while the held counter
# lives 100 days, so a team idle for a day kept a phantom reservation and was never charged.
async def test_a_hold_stranded_over_quiet_weeks_is_still_charged_its_reserve(
    client: redis.Redis, observer: redis.Redis
) -> None:
    admission = Admission(client, AdmissionConfig())  # holds live 30 minutes, as deployed
    plan = make_plan(budget=10_000, reserve=700)
    assert (await admission.admit(plan)).admitted  # then the gateway dies: no settle
    seconds, micros = await observer.time()
    admitted_at = seconds * 1000 + micros // 1000
    quiet = 20 * DAY_MS  # the team makes no call for nearly three weeks
    await age(observer, quiet)
    # The team's next call sweeps, at the time it runs (the script takes now_ms from ARGV[3]).
    script = observer.register_script(LUA)
    sweep_args = ["settle", "none", admitted_at + quiet, 0, 0, "0", 0, "m", 0, 0, 0, 0]
    assert await script(keys=[tag("t1")], args=sweep_args) == [-1, 0]
    month = month_of(admitted_at)
    spend, held = await observer.mget(f"{tag('t1')}:spend:{month}", f"{tag('t1')}:held:{month}")
    assert (int(spend or 0), int(held or 0)) == (700, 0)


async def test_a_request_refused_because_the_admit_timed_out_costs_nothing(
    client: redis.Redis, observer: redis.Redis
) -> None:
    admission = Admission(client, AdmissionConfig(hold_ttl_s=0.3))
    plan = make_plan(budget=10_000, reserve=1_000)
    await client.ping()
    frozen = await stall(observer)
    with pytest.raises(GatewayError) as refused:
        await admission.admit(plan)
    assert refused.value.status == 503  # the caller was told it was not served
    await frozen
    await asyncio.sleep(0.4)  # past the hold's expiry
    await admission.drain()  # any release the gateway scheduled has run
    swept = await admission.admit(make_plan(budget=10_000, reserve=0))  # any call sweeps
    assert (swept.spend, swept.held) == (0, 0)


AWAY_MS = 11 * 60 * 1000  # longer than the script remembers a settled hold


@pytest.mark.parametrize("pipelined", [False, True], ids=["redis-py", "pipelined"])
@pytest.mark.parametrize("lost", ["reply", "hold"])
async def test_a_settle_tried_again_after_a_try_that_may_have_run_counts_once(
    server: str,
    client: redis.Redis,
    observer: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    pipelined: bool,
    lost: str,
) -> None:
    """A settle's try fails with no reply, and the next finds no hold:

    - `reply`: the try ran, and Redis stayed away 11 minutes (a partition, a paused server),
      longer than it remembers a settled hold: the next try is the same settle again, not
      charged a second time as a hold never admitted;
    - `hold`: a failover lost the hold, and the try with the old primary; the next try, at
      once, finds no hold where a settled one would still be remembered: the hold is gone,
      and the request is charged as an unknown hold is."""
    seconds, micros = await observer.time()
    now = [seconds * 1000 + micros // 1000]
    fast = ScriptClient(server, TIMEOUT_S) if pipelined else None
    admission = Admission(client, AdmissionConfig(), fast=fast, clock_ms=lambda: now[0])
    plan = make_plan(budget=10_000, reserve=1_000)
    decision = await admission.admit(plan)
    ticket = admission.ticket(plan, decision, None, 0)
    reset = redis.ConnectionError("Connection reset by peer")
    refused = redis.ConnectionError(f"Error 111 connecting to {server}. Connection refused.")
    tries: list[str] = []

    async def first(run: Callable[[], Awaitable[object]]) -> None:
        """The first try: it runs and its reply is lost, or the hold is lost before it runs."""
        tries.append("first")
        if lost == "reply":
            await run()
        else:
            month = await redis_month(observer)
            await observer.delete(f"{tag('t1')}:hold:{plan.hold_id}", f"{tag('t1')}:held:{month}")
            await observer.zrem(f"{tag('t1')}:holds", plan.hold_id)
        raise reset

    real_run = admission._run

    async def then(keys: list[str], args: list[object]) -> object:
        """The tries after it: Redis stays away 11 minutes after a lost reply (the next try
        never leaves), then answers."""
        if not tries:
            await first(lambda: real_run(keys, args))
        if lost == "reply" and "away" not in tries:
            tries.append("away")
            await age(observer, AWAY_MS)
            now[0] += AWAY_MS
            raise refused
        tries.append("landed")
        return await real_run(keys, args)

    monkeypatch.setattr(admission, "_run", then)
    if fast is not None:
        real_submit = fast.submit
        failed: asyncio.Future[object] = asyncio.get_running_loop().create_future()

        async def first_later(run: Callable[[], Awaitable[object]]) -> None:
            try:
                await first(run)
            except redis.ConnectionError as exc:
                failed.set_exception(exc)

        def submit_first(
            sha: str, keys: list[str], args: list[object], defer_s: float = 0.0
        ) -> asyncio.Future[object]:
            monkeypatch.setattr(fast, "submit", real_submit)

            async def run() -> object:
                reply = real_submit(sha, keys, args, defer_s=defer_s)
                assert reply is not None
                return await reply

            tasks.append(asyncio.ensure_future(first_later(run)))
            return failed

        tasks: list[asyncio.Future[None]] = []
        monkeypatch.setattr(fast, "submit", submit_first)
    try:
        ticket.charge(300, Usage(3, 4))
        assert await admission.drain(timeout_s=10) == 0
    finally:
        await admission.close()
    assert tries[0] == "first" and tries[-1] == "landed"
    assert await ledger(observer) == (300, 0)


@pytest.mark.parametrize("pipelined", [False, True], ids=["redis-py", "pipelined"])
async def test_a_settle_that_never_reached_redis_charges_a_hold_redis_lost(
    server: str,
    client: redis.Redis,
    observer: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    pipelined: bool,
) -> None:
    """Redis crashed and came back without its last second of writes (appendfsync everysec),
    a hold admitted then among them; the request's settle found it down (connection refused)
    and lands once it is back. That try never ran, so nothing was settled: the hold is unknown
    and the request is charged, as a hold whose admission never landed is."""
    fast = ScriptClient(server, TIMEOUT_S) if pipelined else None
    admission = Admission(client, AdmissionConfig(), fast=fast)
    plan = make_plan(budget=10_000, reserve=1_000)
    decision = await admission.admit(plan)
    ticket = admission.ticket(plan, decision, None, 0)
    month = await redis_month(observer)
    await observer.delete(f"{tag('t1')}:hold:{plan.hold_id}", f"{tag('t1')}:held:{month}")
    await observer.zrem(f"{tag('t1')}:holds", plan.hold_id)
    refused = ConnectionRefusedError(111, "Connection refused")
    tries: list[int] = []
    if fast is None:
        real_run = admission._run

        async def run_refused_once(keys: list[str], args: list[object]) -> object:
            tries.append(len(tries))
            if len(tries) == 1:
                raise redis.ConnectionError(
                    f"Error 111 connecting to {server}. Connection refused."
                )
            return await real_run(keys, args)

        monkeypatch.setattr(admission, "_run", run_refused_once)
    else:
        await fast.close()  # Redis went away: the connection is gone
        real_connect = fast._connect

        async def connect_refused_once() -> object:
            tries.append(len(tries))
            if len(tries) == 1:
                raise refused
            return await real_connect()

        monkeypatch.setattr(fast, "_connect", connect_refused_once)
    try:
        ticket.charge(300, Usage(3, 4))
        assert await admission.drain(timeout_s=10) == 0
    finally:
        await admission.close()
    assert len(tries) == 2
    assert await ledger(observer) == (300, 0)


@pytest.mark.parametrize("pipelined", [False, True], ids=["redis-py", "pipelined"])
async def test_a_settle_the_script_refuses_is_not_retried(
    server: str, client: redis.Redis, observer: redis.Redis, caplog: pytest.LogCaptureFixture,
    pipelined: bool,
) -> None:  # fmt: skip
    """A settle the script refuses as invalid (a cost Redis cannot add) is refused again
    however often it is sent: it stops at once, logged and counted, and its hold stays, to
    expire charged at its reserve. (It had been retried for half a day, writing nothing.)"""
    fast = ScriptClient(server, TIMEOUT_S) if pipelined else None
    metrics = Metrics()
    admission = Admission(client, AdmissionConfig(), metrics=metrics, fast=fast)
    plan = make_plan(budget=10_000, reserve=1_000)
    decision = await admission.admit(plan)
    ticket = admission.ticket(plan, decision, None, 0)
    try:
        ticket.charge(10**17, Usage(3, 4))
        assert await admission.drain(timeout_s=10) == 0
    finally:
        await admission.close()
    assert metrics.settles_refused._value.get() == 1
    assert await ledger(observer) == (0, 1_000)  # held until it expires at its reserve
    (line,) = [r for r in caplog.records if "refused by the admission script" in r.message]
    assert plan.hold_id in line.message and "no count Redis can add" in line.message
