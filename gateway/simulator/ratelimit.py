"""Per-key request and token windows behind the six `x-ratelimit-*` headers.

No I/O and no clock reads: callers pass `now` (seconds, any monotonic origin). OpenAI replenishes
its limits continuously over a one-minute window, so usage here decays linearly: a key that used
N of its L requests is back to full after N / L minutes, which is what `x-ratelimit-reset-*` says.
The simulator reports limits but never enforces them: it is the baseline of load tests, and a
429 from the baseline would measure the simulator instead of the gateway (use `x-sim-fault: 429`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gateway.wire.headers import go_duration

WINDOW_S = 60.0


@dataclass(frozen=True, slots=True)
class RateHeaders:
    limit_requests: int
    limit_tokens: int
    remaining_requests: int
    remaining_tokens: int
    reset_requests: str
    reset_tokens: str

    def items(self) -> list[tuple[str, str]]:
        return [
            ("x-ratelimit-limit-requests", str(self.limit_requests)),
            ("x-ratelimit-limit-tokens", str(self.limit_tokens)),
            ("x-ratelimit-remaining-requests", str(self.remaining_requests)),
            ("x-ratelimit-remaining-tokens", str(self.remaining_tokens)),
            ("x-ratelimit-reset-requests", self.reset_requests),
            ("x-ratelimit-reset-tokens", self.reset_tokens),
        ]


class RateWindow:
    """Decaying request and token usage per key; state lives on the instance."""

    __slots__ = ("_rpm", "_tpm", "_usage")

    def __init__(self, rpm: int, tpm: int) -> None:
        self._rpm = max(1, rpm)
        self._tpm = max(1, tpm)
        # key -> [requests used, tokens used, time of last update]
        self._usage: dict[str, list[float]] = {}

    def idle(self) -> RateHeaders:
        """Headers for a caller that used nothing (unauthenticated answers)."""
        return RateHeaders(self._rpm, self._tpm, self._rpm, self._tpm, "0s", "0s")

    def admit(self, key: str, tokens: int, now: float) -> RateHeaders:
        """Record one request of `tokens` estimated tokens for `key` and report the headers."""
        usage = self._usage.get(key)
        if usage is None:
            requests_used, tokens_used = 0.0, 0.0
        else:
            elapsed = max(0.0, now - usage[2])
            requests_used = max(0.0, usage[0] - elapsed * self._rpm / WINDOW_S)
            tokens_used = max(0.0, usage[1] - elapsed * self._tpm / WINDOW_S)
        requests_used += 1
        tokens_used += max(0, tokens)
        self._usage[key] = [requests_used, tokens_used, now]
        return RateHeaders(
            limit_requests=self._rpm,
            limit_tokens=self._tpm,
            remaining_requests=max(0, self._rpm - math.ceil(requests_used)),
            remaining_tokens=max(0, self._tpm - math.ceil(tokens_used)),
            reset_requests=go_duration(requests_used / self._rpm * WINDOW_S),
            reset_tokens=go_duration(tokens_used / self._tpm * WINDOW_S),
        )
