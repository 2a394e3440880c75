"""A pure-Python model of gateway/admission.lua, for comparing the script against.

Written from the script's header and the rules its comments state, not by translating its code:
the calendar comes from `datetime`, not from the script's day arithmetic, and the state is plain
Python objects (a hold is a record, the open holds are a dict) that `dump` renders as the Redis
keyspace the script is expected to leave behind. Time is always an explicit `now_ms`.

What the model does not track: key expiry. Redis expires keys in real time while the tests drive
the script's clock through `now_ms`, so the two clocks are unrelated; the comparison tests keep
each example well inside the shortest expiry the script sets (1 s after a bucket refills).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

PERIOD_MS = 60_000
DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS
SWEEP_BATCH = 32  # expired holds charged per call: the rest wait for the next call
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# A dumped keyspace: key -> ("string", value) | ("hash", {field: value}) | ("zset", [(member, score)])
Dump = dict[str, tuple[str, object]]


def at(now_ms: int) -> datetime:
    # timedelta keeps milliseconds exact where a float timestamp would round.
    return EPOCH + timedelta(milliseconds=now_ms)


def ms(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(milliseconds=1)


def month_of(now_ms: int) -> str:
    """The UTC calendar month, as the spend and usage keys name it."""
    moment = at(now_ms)
    return f"{moment.year:04d}-{moment.month:02d}"


def week_start(now_ms: int) -> int:
    """Monday 00:00 UTC of the week holding `now_ms`."""
    moment = at(now_ms)
    monday = datetime(moment.year, moment.month, moment.day, tzinfo=UTC) - timedelta(
        days=moment.weekday()
    )
    return ms(monday)


def week_of(now_ms: int) -> int:
    """Weeks counted from the Monday before the epoch (1969-12-29), as the weekly keys name them."""
    return (week_start(now_ms) - ms(datetime(1969, 12, 29, tzinfo=UTC))) // WEEK_MS


def week_end(now_ms: int) -> int:
    return week_start(now_ms) + WEEK_MS


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass
class Hold:
    status: str  # "open", "expired" (charged at its reserve) or "settled"
    reserve: int
    month: str
    label: str  # what its usage is filed under: "<model>\t<endpoint>\t<key id>"
    est_tokens: int
    weekly_keys: tuple[str, ...]
    expires: int
    cost: int | None = None
    marker: bool = False  # left by a settle of an unknown hold: only status and cost


@dataclass(frozen=True)
class BucketArg:
    key: str
    limit: int  # per minute
    cost: int  # taken by one admission


@dataclass(frozen=True)
class WeeklyArg:
    prefix: str
    cap: int


class AdmissionModel:
    """The admission rules over one Redis keyspace (several teams live in it side by side)."""

    def __init__(self) -> None:
        self.counters: dict[str, int] = {}  # spend, held and weekly counts
        self.buckets: dict[str, tuple[int, int]] = {}  # key -> (level in units, written at)
        self.holds: dict[str, Hold] = {}  # hold key -> its record, for as long as it exists
        self.open_holds: dict[str, dict[str, int]] = {}  # team base -> hold id -> expiry
        self.usage: dict[str, dict[str, int]] = {}  # usage key -> field -> count

    # -- rules ------------------------------------------------------------------------------

    def admit(
        self,
        base: str,
        hold_id: str,
        now_ms: int,
        hold_ttl_ms: int,
        buckets: Sequence[BucketArg],
        weekly: Sequence[WeeklyArg],
        budget: int | None,
        reserve: int,
        est_tokens: int,
        label: str,
    ) -> list[int]:
        self.sweep(base, now_ms)
        month = month_of(now_ms)
        spend = self.counters.get(f"{base}:spend:{month}", 0)
        held = self.counters.get(f"{base}:held:{month}", 0)
        # A hold id seen before (admitted, expired or settled) is a retry: answer, change nothing.
        replay = f"{base}:hold:{hold_id}" in self.holds
        levels = [self.level(b.key, b.limit, now_ms) for b in buckets]
        week = week_of(now_ms)
        end = week_end(now_ms)
        counts = [self.counters.get(f"{w.prefix}:{week}", 0) for w in weekly]

        refused, wait = self.first_refusal(
            buckets, levels, weekly, counts, budget, spend, held, reserve, end - now_ms
        )
        admitted = refused == 0 and not replay
        if replay:
            refused, wait = 0, 0
        if admitted:
            for i, bucket in enumerate(buckets):
                levels[i] -= bucket.cost * PERIOD_MS
                self.buckets[bucket.key] = (levels[i], now_ms)
            weekly_keys = []
            for j, cap in enumerate(weekly):
                key = f"{cap.prefix}:{week}"
                self.counters[key] = counts[j] = counts[j] + 1
                weekly_keys.append(key)
            self.add(f"{base}:held:{month}", reserve)
            held += reserve
            expires = now_ms + hold_ttl_ms
            self.holds[f"{base}:hold:{hold_id}"] = Hold(
                "open", reserve, month, label, est_tokens, tuple(weekly_keys), expires
            )
            self.open_holds.setdefault(base, {})[hold_id] = expires

        status = 2 if replay else 1 if admitted else 0
        reply = [status, refused, wait, spend, held]
        for bucket, level in zip(buckets, levels, strict=True):
            capacity = bucket.limit * PERIOD_MS
            reply += [max(level // PERIOD_MS, 0), ceil_div(capacity - level, bucket.limit)]
        for cap, count in zip(weekly, counts, strict=True):
            reply += [max(cap.cap - count, 0), end - now_ms]
        return reply

    def first_refusal(
        self,
        buckets: Sequence[BucketArg],
        levels: Sequence[int],
        weekly: Sequence[WeeklyArg],
        counts: Sequence[int],
        budget: int | None,
        spend: int,
        held: int,
        reserve: int,
        to_week_end: int,
    ) -> tuple[int, int]:
        """(1-based index of the first limit that refuses, wait ms); (0, 0) when all fit.

        Limits are numbered buckets first, then weekly caps, then the budget.
        """
        for i, (bucket, level) in enumerate(zip(buckets, levels, strict=True)):
            need = bucket.cost * PERIOD_MS
            if level < need:
                # A cost above the whole bucket never fits, however long the caller waits.
                wait = -1 if bucket.cost > bucket.limit else ceil_div(need - level, bucket.limit)
                return i + 1, wait
        for j, (cap, count) in enumerate(zip(weekly, counts, strict=True)):
            if count >= cap.cap:
                return len(buckets) + j + 1, to_week_end
        if budget is not None and not self.budget_fits(budget, spend, held, reserve):
            return len(buckets) + len(weekly) + 1, -1
        return 0, 0

    def budget_fits(self, budget: int, spend: int, held: int, reserve: int) -> bool:
        # The worst case must fit, and something must be left even for a free call.
        return spend + held + reserve <= budget and spend + held < budget

    def settle(
        self,
        base: str,
        hold_id: str,
        now_ms: int,
        cost: int,
        actual_tokens: int,
        release_weekly: bool,
        label: str,
        usage: tuple[int, int, int, int],  # prompt, completion, cached, reasoning
        token_buckets: Sequence[BucketArg],  # cost unused: a settle names keys and limits
    ) -> list[int]:
        self.sweep(base, now_ms)
        hold = self.holds.get(f"{base}:hold:{hold_id}")
        if hold is None:
            # An admit that never landed: charge what ran to this month, and mark the id
            # settled so that admit, if it still arrives, is a replay that writes nothing.
            month = month_of(now_ms)
            self.add(f"{base}:spend:{month}", cost)
            usage_key = f"{base}:usage:{month}"
            self.count(usage_key, f"cost:{label}", cost)
            if cost > 0:
                self.count_request(usage_key, label, usage)
            self.holds[f"{base}:hold:{hold_id}"] = Hold(
                "settled", 0, month, label, 0, (), 0, cost, marker=True
            )
            return [-1, cost]
        if hold.status == "settled":
            assert hold.cost is not None
            return [2, hold.cost]
        month = hold.month
        if hold.status == "open":
            self.add(f"{base}:held:{month}", -hold.reserve)
            del self.open_holds[base][hold_id]
            # Token buckets were charged the estimate: give back (or take) the difference.
            correction = (actual_tokens - hold.est_tokens) * PERIOD_MS
            for bucket in token_buckets:
                level = self.level(bucket.key, bucket.limit, now_ms) - correction
                self.buckets[bucket.key] = (min(level, bucket.limit * PERIOD_MS), now_ms)
            if release_weekly:
                for key in hold.weekly_keys:
                    if self.counters.get(key, 0) > 0:
                        self.counters[key] -= 1
            charge = cost
        else:
            # The sweep charged the reserve already, filed as the hold was: move it to the real
            # cost on the same row, whatever this settle names.
            charge, label = cost - hold.reserve, hold.label
        self.add(f"{base}:spend:{month}", charge)
        usage_key = f"{base}:usage:{month}"
        self.count(usage_key, f"cost:{label}", charge)
        self.count_request(usage_key, label, usage)
        hold.status, hold.cost = "settled", cost
        return [1, cost]

    def sweep(self, base: str, now_ms: int) -> None:
        """Charge holds past their expiry at their reserve: a crashed gateway never under-counts."""
        pending = self.open_holds.get(base, {})
        due = sorted(
            (expires, hold_id) for hold_id, expires in pending.items() if expires <= now_ms
        )
        for _, hold_id in due[:SWEEP_BATCH]:
            hold = self.holds.get(f"{base}:hold:{hold_id}")
            if hold is not None and hold.status == "open":
                self.add(f"{base}:spend:{hold.month}", hold.reserve)
                self.add(f"{base}:held:{hold.month}", -hold.reserve)
                self.count(f"{base}:usage:{hold.month}", f"cost:{hold.label}", hold.reserve)
                self.count(f"{base}:usage:{hold.month}", f"expired:{hold.label}", 1)
                hold.status = "expired"
            del pending[hold_id]

    def level(self, key: str, limit: int, now_ms: int) -> int:
        """Units in a bucket now: full when never written, refilled `limit` units per ms."""
        capacity = limit * PERIOD_MS
        if key not in self.buckets:
            return capacity
        level, then = self.buckets[key]
        return min(level + (now_ms - then) * limit, capacity)

    # -- storage ----------------------------------------------------------------------------

    def add(self, key: str, amount: int) -> None:
        # Adding zero creates nothing: an untouched counter stays absent.
        if amount:
            self.counters[key] = self.counters.get(key, 0) + amount

    def count_request(self, key: str, label: str, usage: tuple[int, int, int, int]) -> None:
        self.count(key, f"requests:{label}", 1)
        for name, amount in zip(
            ("prompt", "completion", "cached", "reasoning"), usage, strict=True
        ):
            self.count(key, f"{name}:{label}", amount)

    def count(self, key: str, field: str, amount: int) -> None:
        if amount:
            fields = self.usage.setdefault(key, {})
            fields[field] = fields.get(field, 0) + amount

    def dump(self) -> Dump:
        """The keyspace the script should have left, in the shape `dump_redis` reads it."""
        out: Dump = {key: ("string", str(value)) for key, value in self.counters.items()}
        for key, (level, then) in self.buckets.items():
            out[key] = ("hash", {"l": str(level), "t": str(then)})
        for key, hold in self.holds.items():
            if hold.marker:
                out[key] = ("hash", {"s": hold.status, "c": str(hold.cost)})
                continue
            fields = {
                "s": hold.status,
                "r": str(hold.reserve),
                "m": hold.month,
                "md": hold.label,
                "e": str(hold.est_tokens),
                "w": " ".join(hold.weekly_keys),
                "x": str(hold.expires),
            }
            if hold.cost is not None:
                fields["c"] = str(hold.cost)
            out[key] = ("hash", fields)
        for base, pending in self.open_holds.items():
            if pending:
                members = sorted((float(e), hold_id) for hold_id, e in pending.items())
                out[f"{base}:holds"] = ("zset", [(hold_id, e) for e, hold_id in members])
        for key, fields in self.usage.items():
            out[key] = ("hash", {f: str(v) for f, v in fields.items()})
        return out
