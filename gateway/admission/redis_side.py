"""Admission: one Redis round trip checks every limit of a request and holds its worst-case
cost; settling moves the hold to the real cost. The logic lives in `admission.lua`.

When Redis cannot be reached, rate limits fall back to an in-process copy of the same buckets
(fail open) and budgets refuse (fail closed), each configurable.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from importlib import resources
from typing import Any, Protocol

import redis.asyncio as redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway.admission.decision import (
    Decision,
    OutputCap,
    Window,
    decode_admit,
    month_key,
    next_month,
    ratelimit_headers,
    refusal,
    refusal_kind,
)
from gateway.admission.local_buckets import LocalBuckets
from gateway.admission.plan import Plan, tag
from gateway.admission.pricing import cost_micros
from gateway.admission.script_pipeline import NotSent, OnSent, ScriptClient
from gateway.admission.tool_fees import with_fees
from gateway.admission.usage_breakdown import breakdown
from gateway.config import AdmissionConfig, Price, RedisConfig
from gateway.eventloop import KeptLoop
from gateway.observability.metrics import Metrics
from gateway.wire import errors
from gateway.wire.errors import GatewayError
from gateway.wire.usage import Usage

log = logging.getLogger("gateway.admission.redis_side")
# How long after its hold expired a settle waiting for Redis keeps trying (the script keeps an
# expired hold's record as long as the spend it was charged to, so a late settle corrects it).
SETTLE_RETRY_AFTER_EXPIRY_S = 12 * 3600
# A settle may wait this long to share a socket write with the next admission.
SETTLE_DEFER_S = 0.002
# Settles waiting for Redis; beyond this, new ones rely on hold expiry (memory stays bounded).
MAX_PENDING_SETTLES = 100_000
# How long a refused admission waits for its team's settles before it is asked again; they
# take a round trip when Redis is up, and beyond this the refusal stands.
SETTLES_WAIT_S = 1.0
# What begins every refusal of its arguments by the admission script (`error(...)` there).
SCRIPT_REFUSAL = "admission.lua: "
# `Admission.settle`'s answer for a hold an earlier settle charged.
SETTLED_ALREADY = 2


class EarlyStart(Protocol):
    """Work a caller overlaps with an admission's round trip, on the pipelined client only:
    begun once the admission has left, finished from the admitting reply's callback, before
    the waiting task resumes. Refusals, replays and errors never reach `admitted`."""

    def sent(self) -> bool:
        """The admission is on its way: get ready; True to be told if the reply admits."""
        ...

    def admitted(self) -> None:
        """The reply admits (called from the event loop's callback, not the request's task)."""
        ...


def _admits(reply: asyncio.Future[Any]) -> bool:
    """Whether a raw reply admits, readable before the decision is decoded."""
    return not reply.cancelled() and reply.exception() is None and reply.result()[0] == 1


def _on_sent(early: EarlyStart) -> OnSent:
    def replied(reply: asyncio.Future[Any]) -> None:
        if _admits(reply):
            early.admitted()

    def sent(reply: asyncio.Future[Any]) -> None:
        if early.sent():
            reply.add_done_callback(replied)

    return sent


class Admission:
    _loop = KeptLoop()

    def __init__(
        self,
        client: redis.Redis,
        config: AdmissionConfig,
        max_calls: int = 256,
        metrics: Metrics | None = None,
        fast: ScriptClient | None = None,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        self._config = config
        # The script's clock: None is Redis's own TIME. Tests pin it, because the buckets refill
        # continuously (one request every 60 / limit seconds): a burst that a loaded machine
        # takes longer than that to send is rightly admitted one request more.
        self._clock_ms = clock_ms
        self._metrics = metrics
        self._redis = client
        # At most as many calls in flight as the pool has connections. A full pool must mean
        # "wait", never "Redis is down": the cluster client's pools raise at once when full, and
        # taking that for an outage would fail open and over-admit.
        self._slots = asyncio.Semaphore(max_calls)
        self._source = resources.files("gateway.admission").joinpath("admission.lua").read_text()
        self._script = client.register_script(self._source)
        self._fast = fast
        self._local = LocalBuckets()
        # Settles on their way to Redis, each with its team's name (see `settles_landed`).
        self._pending: dict[asyncio.Future[Any], str] = {}
        # team -> (settled spend this month in micro-dollars, monotonic time it was learned).
        # Every admission refreshes it for free; routing's budget step-down reads it.
        self._spent: dict[str, tuple[int, float]] = {}

    def ticket(
        self,
        plan: Plan,
        decision: Decision,
        price: Price | None,
        prompt_estimate: int,
        cap: OutputCap | None = None,
    ) -> Ticket:
        """What `admit` decided for `plan`: the ticket that settles its hold, or the refusal the
        client gets, raised (`cap`: what the request's completion cap is, for its message)."""
        if not decision.admitted:
            if self._metrics is not None:
                self._metrics.refusals.labels(plan.team, refusal_kind(decision.refused_by)).inc()
            raise refusal(decision, plan, next_month(datetime.now(UTC)), cap)
        return Ticket(
            self, plan, price, prompt_estimate, decision.windows, written=not decision.degraded
        )

    async def admit(self, plan: Plan, early: EarlyStart | None = None) -> Decision:
        """Admit or refuse `plan`; `early` overlaps work with the round trip (see `EarlyStart`)."""
        keys = [plan.tag, *(b.key for b in plan.buckets), *(w.prefix for w in plan.weekly)]
        args: list[Any] = [
            "admit",
            plan.hold_id,
            self._now_arg(),
            int((plan.hold_ttl_s or self._config.hold_ttl_s) * 1000),
            len(plan.buckets),
            len(plan.weekly),
            plan.budget if plan.budget is not None else -1,
            plan.reserve,
            plan.est_tokens,
            plan.label or plan.model,
        ]
        for bucket in plan.buckets:
            args += [bucket.limit, bucket.cost]
        args += [cap.cap for cap in plan.weekly]
        began = time.perf_counter()
        try:
            try:
                reply = await self._run(keys, args, None if early is None else _on_sent(early))
            finally:
                self._timed("admit", began)
        except (RedisError, OSError) as exc:
            self._count_error("admit")
            # The script may have run even though its reply was lost. If this request is not
            # served, release the hold id (a release that arrives first leaves a marker that
            # turns the late admit into a no-op); if it is served, its settle charges it.
            try:
                decision = self._degraded(plan, exc)
            except GatewayError:
                self._count_degraded("fail_closed")
                self.settle_later(plan, Usage(), 0, release_weekly=True)
                raise
            self._count_degraded("fail_open")
            if not decision.admitted:
                self.settle_later(plan, Usage(), 0, release_weekly=True)
            return decision
        decision = decode_admit(plan, [int(v) for v in reply])
        self._spent[plan.team] = (decision.spend, time.monotonic())
        return decision

    def _now_arg(self) -> int | str:
        """The script's `now_ms` argument: empty for Redis's TIME."""
        return "" if self._clock_ms is None else self._clock_ms()

    def _wall_ms(self) -> int:
        """Now, as the script tells time (Unix ms; Redis's TIME, or the pinned clock)."""
        return int(time.time() * 1000) if self._clock_ms is None else self._clock_ms()

    async def _run(self, keys: list[str], args: list[Any], sent: OnSent | None = None) -> Any:
        if self._fast is not None:
            # One pipelined connection: no pool to run out of, so no slot to wait for.
            return await self._fast.evalsha(self._script.sha, self._source, keys, args, sent)
        async with self._slots:
            return await self._script(keys=keys, args=args)

    async def settles_landed(self, team: str) -> bool:
        """Wait for the settles of `team` this process has sent or is sending; False when there
        are none. An admission refused while its team's answered calls were still held is asked
        again after this: Redis runs one connection's commands in order, but a settle may be
        deferred, or be made after the next admission of its team was written."""
        waiting = [future for future, whose in self._pending.items() if whose == team]
        if not waiting:
            return False
        if self._fast is not None:
            self._fast.flush()  # a deferred settle leaves now
        await asyncio.wait(waiting, timeout=SETTLES_WAIT_S)
        return True

    async def close(self) -> None:
        if self._fast is not None:
            await self._fast.close()

    async def spent(self, team: str, max_age_s: float) -> int:
        """A team's settled spend this month, at most `max_age_s` old (0 if Redis is away)."""
        now = time.monotonic()
        known = self._spent.get(team)
        if known is not None and now - known[1] <= max_age_s:
            return known[0]
        try:
            async with self._slots:
                raw = await self._redis.get(f"{tag(team)}:spend:{month_key(datetime.now(UTC))}")
        except (RedisError, OSError):
            return known[0] if known is not None else 0
        value = int(raw or 0)
        self._spent[team] = (value, now)
        return value

    async def settle(
        self,
        plan: Plan,
        usage: Usage,
        cost: int,
        release_weekly: bool,
        first_ms: int | None = None,
    ) -> int:
        """Charge `cost` against the hold; safe to retry: the hold id makes it count once.
        `first_ms`: when (Unix ms) an earlier try of this settle that may have run was sent
        (its reply was lost), for a hold the script wrote: one it no longer finds long enough
        after was settled by that try, its record forgotten since, and is not charged again.

        Returns 1 when settled, `SETTLED_ALREADY` when it had been settled already, -1 for an
        unknown hold.
        """
        keys, args = _settle_call(plan, usage, cost, release_weekly, self._now_arg(), first_ms)
        began = time.perf_counter()
        try:
            reply = await self._run(keys, args)
        except (RedisError, OSError):
            self._count_error("settle")
            raise
        finally:
            self._timed("settle", began)
        return int(reply[0])

    def count_usage(self, plan: Plan, usage: Usage, cost: int) -> None:
        if self._metrics is not None:
            self._metrics.count_usage(
                plan.team, plan.model or "unknown", plan.endpoint, usage, cost
            )

    def settle_later(
        self, plan: Plan, usage: Usage, cost: int, release_weekly: bool, written: bool = False
    ) -> None:
        """Settle off the response's critical path; `drain` waits for these at shutdown.
        `written`: the script wrote the hold (its admitting reply came back), so a try sent
        again after one whose reply was lost says when that one left (`settle(first_ms=)`)."""
        if self._fast is not None:
            # The common case costs no task: the command goes out with this tick's others and
            # a callback reads the reply. Anything unusual takes the retrying path below.
            keys, args = _settle_call(plan, usage, cost, release_weekly, self._now_arg(), None)
            waiter = self._fast.submit(self._script.sha, keys, args, defer_s=SETTLE_DEFER_S)
            if waiter is not None:
                self._pending[waiter] = plan.team
                waiter.add_done_callback(
                    partial(
                        self._settled, plan, usage, cost, release_weekly, written,
                        time.perf_counter(),
                    )
                )  # fmt: skip
                return
        self._settle_task(plan, usage, cost, release_weekly, written, None)

    def _settle_task(
        self,
        plan: Plan,
        usage: Usage,
        cost: int,
        release_weekly: bool,
        written: bool,
        first_ms: int | None,
    ) -> None:
        task = self._loop.create_task(
            self._settle_logged(plan, usage, cost, release_weekly, written, first_ms)
        )
        self._pending[task] = plan.team
        task.add_done_callback(self._settle_done)

    def _settle_done(self, future: asyncio.Future[Any]) -> None:
        self._pending.pop(future, None)

    def _settled(
        self,
        plan: Plan,
        usage: Usage,
        cost: int,
        release_weekly: bool,
        written: bool,
        began: float,
        waiter: asyncio.Future[Any],
    ) -> None:
        self._pending.pop(waiter, None)
        self._timed("settle", began)
        error = None if waiter.cancelled() else waiter.exception()
        if error is not None and refused(error):
            self.refused_settle(plan, cost, error)
            return
        if waiter.cancelled() or error is not None:
            if error is not None and not isinstance(error, NoScriptError):
                self._count_error("settle")
            # Idempotent by hold id: the retrying path may safely send it again.
            ran = error is None or may_have_run(error)  # cancelled: it may have left
            sent = self._wall_ms() - int((time.perf_counter() - began) * 1000)
            first_ms = sent if written and ran else None
            self._settle_task(plan, usage, cost, release_weekly, written, first_ms)
            return
        if int(waiter.result()[0]) == -1 and cost:
            log.warning(
                "settled unknown hold %s for team %s: charged to this month",
                plan.hold_id,
                plan.team,
            )

    async def _settle_logged(
        self,
        plan: Plan,
        usage: Usage,
        cost: int,
        release_weekly: bool,
        written: bool,
        first_ms: int | None,
    ) -> None:
        # Settling is idempotent by hold id, so retrying one whose reply was lost is safe. While
        # Redis is away the settle waits here and lands when it is back: the real cost, not the
        # reserve. The script corrects an expired hold to the real cost however late the
        # settle lands; a request's settle stops retrying half a day after its hold expired.
        # A try that failed may have run all the same, and Redis forgets a settled hold long
        # before that: the tries after it say when it left (`first_ms`) when the script wrote
        # the hold.
        give_up = time.monotonic() + self._config.hold_ttl_s + SETTLE_RETRY_AFTER_EXPIRY_S
        delay = 0.2
        failures = 0
        while True:
            sent = self._wall_ms()
            try:
                result = await self.settle(plan, usage, cost, release_weekly, first_ms)
                break
            except (RedisError, OSError) as exc:
                if refused(exc):
                    self.refused_settle(plan, cost, exc)
                    return
                failures += 1
                if first_ms is None and written and may_have_run(exc):
                    first_ms = sent
                if failures == 1 or failures % 100 == 0:
                    log.warning(
                        "settle of hold %s for team %s failed (%s): retrying until Redis is back",
                        plan.hold_id, plan.team, type(exc).__name__,
                    )  # fmt: skip
                if time.monotonic() + delay > give_up or len(self._pending) > MAX_PENDING_SETTLES:
                    # The hold was charged at its reserve on expiry: never under-counted.
                    log.error(
                        "gave up settling hold %s for team %s: it stays charged at its reserve",
                        plan.hold_id, plan.team,
                    )  # fmt: skip
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        if result == -1 and cost:
            log.warning(
                "settled unknown hold %s for team %s: charged to this month",
                plan.hold_id,
                plan.team,
            )

    def refused_settle(
        self, plan: Plan, cost: int, error: BaseException, instead: str = "the hold expires"
    ) -> None:
        """Log and count a settle the admission script refused (`refused`): the same arguments
        are refused however often they are sent, so it is not retried; `instead` says what
        charges the hold."""
        log.error(
            "settle of hold %s for team %s (cost %d) refused by the admission script: not "
            "retried, %s charged at its reserve (%s)",
            plan.hold_id, plan.team, cost, instead, error,
        )  # fmt: skip
        if self._metrics is not None:
            self._metrics.settles_refused.inc()

    @property
    def pending_settles(self) -> int:
        return len(self._pending)

    async def drain(self, timeout_s: float | None = None) -> int:
        """Wait for outstanding settles; returns how many are still unsettled at the timeout
        (their holds expire charged at their reserve, and late settles correct them)."""
        # A settle whose quick attempt failed hands over to a retrying task: wait for those too.
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while self._pending:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            await asyncio.wait(set(self._pending), timeout=remaining)
        left = len(self._pending)
        if left:
            log.error("%d settles still waiting for Redis at shutdown", left)
        return left

    async def usage(self, team: str, budget: int | None, now: datetime) -> dict[str, Any]:
        """A month's spend and holds of one team, and its counts by model, endpoint and key
        (the admin usage view)."""
        base, month = tag(team), month_key(now)
        spend = await self._redis.mget(f"{base}:spend:{month}", f"{base}:held:{month}")
        spend_micros = int(spend[0] or 0)
        held_micros = int(spend[1] or 0)
        fields = await self._redis.hgetall(f"{base}:usage:{month}")
        counts = {
            (name.decode() if isinstance(name, bytes) else str(name)): int(value)
            for name, value in fields.items()
        }
        remaining = None if budget is None else max(budget - spend_micros - held_micros, 0)
        return {
            "team": team,
            "period": month,
            "resets_at": next_month(now).isoformat(),
            "budget_usd": None if budget is None else budget / 1_000_000,
            "spent_usd": spend_micros / 1_000_000,
            "held_usd": held_micros / 1_000_000,
            "remaining_usd": None if remaining is None else remaining / 1_000_000,
            "spent_micros": spend_micros,
            "held_micros": held_micros,
            **breakdown(counts),
        }

    async def month_spend(self, teams: Sequence[str], now: datetime) -> list[int]:
        """Each team's settled spend this month (one pipelined round trip; cluster-safe)."""
        month = month_key(now)
        async with self._slots:
            began = time.perf_counter()
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for team in teams:
                        pipe.get(f"{tag(team)}:spend:{month}")
                    values = await pipe.execute()
            except (RedisError, OSError):
                self._count_error("scrape")
                raise
            finally:
                self._timed("scrape", began)
        return [int(v or 0) for v in values]

    def _timed(self, op: str, began: float) -> None:
        if self._metrics is not None:
            self._metrics.time_redis(op, time.perf_counter() - began)

    def _count_error(self, op: str) -> None:
        if self._metrics is not None:
            self._metrics.redis_errors.labels(op).inc()

    def _count_degraded(self, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.admission_degraded.labels(outcome).inc()

    def _degraded(self, plan: Plan, exc: BaseException) -> Decision:
        log.warning(
            "redis unavailable for admission (%s): rate limits %s, budgets %s",
            type(exc).__name__,
            self._config.rate_limits_on_redis_error,
            self._config.budgets_on_redis_error,
        )
        if plan.budget is not None and self._config.budgets_on_redis_error == "closed":
            raise errors.budget_store_unavailable() from exc
        if self._config.rate_limits_on_redis_error == "closed":
            raise errors.rate_limits_unchecked() from exc
        return self._local.admit(plan, time.monotonic() * 1000)


class SettleObserver(Protocol):
    def settling(self, outcome: str, cost: int) -> None:
        """A settle begins: the hold is `settled`, `charged` or `released`, at `cost`."""
        ...


@dataclass(slots=True)
class Ticket:
    """One admitted request: what to charge it when it ends, however it ends."""

    admission: Admission
    plan: Plan
    price: Price | None
    prompt_estimate: int
    windows: tuple[Window, ...]  # what the admission reported, for `x-ratelimit-*`
    # The script wrote the hold (False: admitted without Redis, which may never have seen it).
    written: bool = True
    done: bool = False
    # What was charged, for the access log; None until settled.
    usage: Usage | None = None
    cost: int = 0
    # Told of the settle (tracing: the request's span), when someone watches.
    observer: SettleObserver | None = None
    # The price of the service tier the answer says served the call, when other than the one
    # held (`pricing.served_price`); None: the held price.
    served_price: Price | None = None
    _headers: list[tuple[str, str]] | None = field(default=None, init=False, repr=False)

    @property
    def headers(self) -> list[tuple[str, str]]:
        """`x-ratelimit-*` for this admission."""
        return self.prepare_headers()

    def prepare_headers(self) -> list[tuple[str, str]]:
        """Make `headers` once: a caller can have that done while the upstream works rather
        than between the admission and the upstream call."""
        if self._headers is None:
            self._headers = ratelimit_headers(self.windows)
        return self._headers

    def settle(
        self,
        usage: Usage | None,
        price: Price | None = None,
        model: str | None = None,
        *,
        fees: int = 0,
    ) -> None:
        """Charge the real usage (the upstream answered), and the `fees` it bills beside the
        tokens (hosted tools); `model` names it when the plan does not (pass-through calls are
        priced, and filed, by the model that answered)."""
        if self.done:
            return
        self.done = True
        usage = usage if usage is not None else Usage()
        price = price or self.served_price or self.price
        cost = cost_micros(price, usage) if price is not None else 0
        cost = with_fees(cost, fees, self.plan.reserve)
        self.usage, self.cost = usage, cost
        if model and model != self.plan.model:
            self.plan = self.plan.refiled(model)
        self._settle_later("settled", usage, cost, release_weekly=False)
        self.admission.count_usage(self.plan, usage, cost)

    def release(self) -> None:
        """Nothing was generated (refused upstream, unreachable): free the hold and the message."""
        if self.done:
            return
        self.done = True
        self._settle_later("released", Usage(), 0, release_weekly=True)

    def charge(self, cost: int, usage: Usage | None = None) -> None:
        """Charge a cost the answer does not state in tokens (images, speech, audio minutes),
        worked out from the request and the answer by the endpoint's price rule."""
        if self.done:
            return
        self.done = True
        usage = usage if usage is not None else Usage()
        self.usage, self.cost = usage, cost
        self._settle_later("charged", usage, cost, release_weekly=False)
        self.admission.count_usage(self.plan, usage, cost)

    def _settle_later(self, outcome: str, usage: Usage, cost: int, release_weekly: bool) -> None:
        if self.observer is not None:
            self.observer.settling(outcome, cost)
        self.admission.settle_later(self.plan, usage, cost, release_weekly, self.written)

    def settle_at_reserve(self) -> None:
        """Charge the whole worst case: the call goes on where the gateway cannot see its end
        (a background response), or it ended without saying what it cost (an answer cut off
        or without usage), and it may have used all of it."""
        self.charge(self.plan.reserve, Usage(prompt_tokens=self.prompt_estimate))

    def hand_over(self) -> None:
        """Another settles the hold (the job follower, once the call it made ends upstream):
        nothing here charges or frees it."""
        self.done = True

    def taken_back(self) -> None:
        """The one the hold was handed over to could not take it (the follower could not
        record the job, Redis away): charged its whole worst case here, as an unfollowed job's
        is, once Redis is back."""
        self.done = False
        self.settle_at_reserve()

    def settle_within_hold(self, usage: Usage, fees: int = 0) -> None:
        """Charge `usage`, an estimate of what upstream generated, and `fees`, but never more
        than was held: the hold is the most the call could cost."""
        price = self.served_price or self.price
        if price is not None and cost_micros(price, usage) > self.plan.reserve:
            self.charge(self.plan.reserve, usage)
        else:
            self.settle(usage, fees=fees)


def refused(error: BaseException) -> bool:
    """Whether Redis answered a call with the admission script's own refusal of its arguments
    (a count it cannot add, say), which no retry changes: not a transient failure (a lost
    connection, a busy or loading server, a missing script)."""
    return isinstance(error, ResponseError) and SCRIPT_REFUSAL in str(error)


def may_have_run(error: BaseException) -> bool:
    """Whether a call that failed may have run in Redis all the same, its reply lost: not one
    that never left (no connection: `NotSent`, redis-py's failures to connect or to get a
    pooled connection) nor one Redis answered with an error (no script, loading, read-only)."""
    if isinstance(error, NotSent | ResponseError):
        return False
    if isinstance(error, RedisConnectionError | RedisTimeoutError):
        # redis-py says so only in its words (`redis.utils.format_error_message`).
        said = str(error)
        return not ("connecting to" in said or said == "No connection available.")
    return True


def _settle_call(
    plan: Plan,
    usage: Usage,
    cost: int,
    release_weekly: bool,
    now: int | str,
    first_ms: int | None,
) -> tuple[list[str], list[Any]]:
    buckets = plan.token_buckets
    args: list[Any] = [
        "settle",
        plan.hold_id,
        now,
        cost,
        usage.total_tokens,
        "1" if release_weekly else "0",
        len(buckets),
        plan.label or plan.model,
        usage.prompt_tokens,
        usage.completion_tokens,
        usage.cached_tokens,
        usage.reasoning_tokens,
        *(b.limit for b in buckets),
    ]
    if first_ms is not None:
        args.append(first_ms)
    return [plan.tag, *(b.key for b in buckets)], args


def pipelined_client(config: RedisConfig) -> ScriptClient | None:
    """The pipelined client for the admission script, where it applies (see its module)."""
    url = config.url
    if not url or config.cluster or not ScriptClient.supports(url):
        return None
    return ScriptClient(url, config.timeout_s)
