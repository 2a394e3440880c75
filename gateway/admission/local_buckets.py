"""The admission script's token buckets, kept in this process: the fail-open fallback while
Redis is away. Pure: the time is passed in.
"""

from __future__ import annotations

from gateway.admission.decision import PERIOD_MS, Decision, Window
from gateway.admission.plan import Bucket, Plan


class LocalBuckets:
    """The same integer token buckets as the script, in this process: the fail-open fallback.

    Each replica counts only its own traffic here, so a fleet admits up to the limit times the
    number of replicas while Redis is away: availability over exactness, as Envoy and Stripe do.
    """

    def __init__(self) -> None:
        self._state: dict[str, tuple[int, float]] = {}

    def admit(self, plan: Plan, now_ms: float) -> Decision:
        levels = [self._level(b, now_ms) for b in plan.buckets]
        for bucket, level in zip(plan.buckets, levels, strict=True):
            if level < bucket.cost * PERIOD_MS:
                wait = (
                    -1
                    if bucket.cost > bucket.limit
                    else -(-(bucket.cost * PERIOD_MS - level) // bucket.limit)
                )
                windows = tuple(_window(b, lv) for b, lv in zip(plan.buckets, levels, strict=True))
                return Decision(False, bucket, int(wait), windows, 0, 0, degraded=True)
        after = [lv - b.cost * PERIOD_MS for b, lv in zip(plan.buckets, levels, strict=True)]
        for bucket, level in zip(plan.buckets, after, strict=True):
            self._state[bucket.key] = (level, now_ms)
        windows = tuple(_window(b, lv) for b, lv in zip(plan.buckets, after, strict=True))
        return Decision(True, None, 0, windows, 0, 0, degraded=True)

    def _level(self, bucket: Bucket, now_ms: float) -> int:
        capacity = bucket.limit * PERIOD_MS
        state = self._state.get(bucket.key)
        if state is None:
            return capacity
        level, then = state
        return int(min(capacity, level + (now_ms - then) * bucket.limit))


def _window(bucket: Bucket, level: int) -> Window:
    capacity = bucket.limit * PERIOD_MS
    return Window(
        bucket.kind,
        bucket.limit,
        max(level // PERIOD_MS, 0),
        -(-(capacity - level) // bucket.limit),
    )
