"""Decisions for surviving a failing upstream: when to retry and how long to wait, a circuit
breaker per deployment, and which deployment takes the next call. Pure: the caller passes the
time and the randomness, so every rule is tested without servers or sleeps.
"""

from __future__ import annotations

import email.utils
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

#: Upstream answers worth another try (the same set the OpenAI SDKs retry, minus 408/409 which
#: the API does not send for chat).
RETRY_STATUSES: Final = frozenset({429, 500, 502, 503, 504})
#: Answers that say the upstream itself is unwell (429 is the caller's rate, not ill health).
FAILURE_STATUSES: Final = frozenset({500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 3  # tries in all, the first included
    backoff_s: float = 0.5  # first wait; doubles per retry
    backoff_max_s: float = 8.0
    #: An upstream `retry-after` longer than this is not waited for: the answer goes back.
    retry_after_max_s: float = 20.0


def retry_after_s(headers: Iterable[tuple[bytes, bytes]], now_epoch: float) -> float | None:
    """What the upstream asked us to wait: `retry-after-ms`, else `retry-after` (seconds or an
    HTTP date), as the OpenAI SDKs read them; None when absent or unreadable (NaN, which no
    clock can wait, is unreadable). A date past the calendar's end is an infinite wait. Header
    names are lower-case, values raw."""
    seconds: float | None = None
    for name, value in headers:
        if name == b"retry-after-ms":
            try:
                ms = float(value)
            except ValueError:
                continue
            if not math.isnan(ms):
                return max(ms / 1000, 0.0)
        if name == b"retry-after" and seconds is None:
            try:
                number = float(value)
            except ValueError:
                seconds = _http_date_s(value, now_epoch)
            else:
                seconds = None if math.isnan(number) else max(number, 0.0)
    return seconds


def _http_date_s(value: bytes, now_epoch: float) -> float | None:
    """Seconds until the HTTP date `value`; None when it is no date."""
    parsed = email.utils.parsedate_tz(value.decode("latin-1"))
    if parsed is None:
        return None
    try:
        return max(email.utils.mktime_tz(parsed) - now_epoch, 0.0)
    except (ValueError, OverflowError):  # a year past 9999: later than any wait
        return math.inf


def retry_delay(policy: RetryPolicy, retry: int, asked_s: float | None, jitter: float) -> float:
    """Seconds to wait before retry number `retry` (1 = the first retry).

    The upstream's own `retry-after` wins. Otherwise exponential backoff with "equal jitter"
    (half fixed, half random, `jitter` in [0, 1)): replicas that failed together do not all
    come back at the same instant, and no wait collapses to zero.
    """
    if asked_s is not None:
        return asked_s
    ceiling = min(policy.backoff_max_s, policy.backoff_s * float(2 ** (retry - 1)))
    return ceiling / 2 + ceiling / 2 * jitter


def may_retry(
    policy: RetryPolicy,
    tries_done: int,
    delay_s: float,
    asked_s: float | None,
    now: float,
    deadline: float | None,
) -> bool:
    """Whether another try fits: tries left, a sane `retry-after`, and the client's deadline
    not passed by the time the retry would start."""
    if tries_done >= policy.attempts:
        return False
    if asked_s is not None and asked_s > policy.retry_after_max_s:
        return False
    return deadline is None or now + delay_s < deadline


CLOSED: Final = "closed"
OPEN: Final = "open"
HALF_OPEN: Final = "half_open"


class Breaker:
    """A circuit breaker for one upstream deployment.

    Closed: calls flow; `failures` failures in a row open it. Open: no calls for `cooldown_s`,
    so requests go to a fallback at once instead of waiting on a dead upstream. Then half-open:
    exactly one probe call goes through; its success closes the breaker, its failure opens it
    for another cooldown.

    A call's verdict comes when it ends (a stream's at its end), so calls begun before the
    breaker opened may end while it is open or probing: they are not the probe (`begin` said
    which call is) and tell nothing then, neither closing it nor freeing the probe's slot.

    One team's failures alone open it only while no other team called the deployment in the
    last `cooldown_s`: upstream may fail on what a request asks (a prompt it answers 500
    for), and a team sending such requests must not shut the deployment for every other team.
    A failure of a second team's in the same streak opens it, as an outage makes them.
    """

    __slots__ = (
        "_callers", "_cooldown_s", "_failing", "_failures", "_opened_at", "_probing", "_streak",
        "state",
    )  # fmt: skip

    def __init__(self, failures: int = 5, cooldown_s: float = 30.0) -> None:
        self._failures = failures
        self._cooldown_s = cooldown_s
        self._streak = 0
        self._failing: set[str] = set()  # the teams whose calls failed in the streak
        self._callers: dict[str, float] = {}  # when each team last began a call
        self._opened_at = 0.0
        self._probing = False
        self.state = CLOSED

    def allows(self, now: float) -> bool:
        """Whether a call may go now (without taking the half-open probe slot)."""
        if self.state == CLOSED:
            return True
        if self.state == OPEN:
            return now - self._opened_at >= self._cooldown_s
        return not self._probing

    def reopens_in(self, now: float) -> float:
        """Seconds until a call may go again: 0 when one may now, or while a half-open probe
        decides (it may close the breaker any moment)."""
        if self.state == OPEN:
            return max(self._opened_at + self._cooldown_s - now, 0.0)
        return 0.0

    def begin(self, now: float, team: str = "") -> bool:
        """Take the right to call (`allows`) for `team`; in half-open only one caller gets it.
        Whether the call is that probe is `state == HALF_OPEN` right after: its caller passes
        it on to the call's verdict (`probe`)."""
        if not self.allows(now):
            return False
        self._callers[team] = now
        if self.state == OPEN:
            self.state = HALF_OPEN
        if self.state == HALF_OPEN:
            self._probing = True
        return True

    def success(self, probe: bool = False) -> None:
        if probe or self.state == CLOSED:
            self.state = CLOSED
            self._streak = 0
            self._failing.clear()
            self._probing = False

    def failure(self, now: float, probe: bool = False, team: str = "") -> None:
        if probe:
            self._probing = False
            if self.state == HALF_OPEN:
                self._open(now)
                return
        if self.state != CLOSED:
            return  # a call begun before the breaker opened: open already
        self._streak += 1
        self._failing.add(team)
        if self._streak >= self._failures and (len(self._failing) > 1 or self._alone(now)):
            self._open(now)

    def _alone(self, now: float) -> bool:
        """Whether the teams failing are the only ones that called in the last cooldown (the
        callers of longer ago forgotten, so that the record stays as small as the active
        teams)."""
        since = now - self._cooldown_s
        self._callers = {team: at for team, at in self._callers.items() if at >= since}
        return self._callers.keys() <= self._failing

    def release(self, probe: bool = False) -> None:
        """The call ended without telling anything about health (e.g. the client left)."""
        if probe:
            self._probing = False

    def _open(self, now: float) -> None:
        self.state = OPEN
        self._opened_at = now
        self._streak = 0
        self._failing.clear()


def pick(in_flight: Sequence[int], allowed: Sequence[bool], start: int = 0) -> int | None:
    """The allowed deployment with the fewest calls in flight; ties go round-robin from
    `start` so equal deployments share the load. None when no deployment is allowed."""
    best: int | None = None
    count = len(in_flight)
    for offset in range(count):
        i = (start + offset) % count
        if allowed[i] and (best is None or in_flight[i] < in_flight[best]):
            best = i
    return best
