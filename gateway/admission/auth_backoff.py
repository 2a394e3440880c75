"""Failed guesses of an operator secret (the admin key, the metrics key), slowed per client
address: each attempt from an address that failed before waits its turn, and the turns grow.

Every attempt is counted as a failure when it is let in, before its key is compared, and a
success forgets the address. So concurrent guesses from one address are checked one after the
other, each `delay(n)` after the one before: a burst gains nothing over a sequence. An attempt
that would wait longer than `max_wait_s` is refused at once instead of waiting, so one address
holds at most a handful of waiting requests, and the table holds at most `max_addresses`.

Pure: the caller passes the time (a monotonic clock) and does the waiting.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

# The delay doubles per failure up to `base * 2**MAX_DOUBLINGS`; an attempt waits at most
# `base * MAX_WAIT_FACTOR` (the eighth queued attempt would wait 127 bases: refused).
MAX_DOUBLINGS = 6
MAX_WAIT_FACTOR = 100
# An address quiet this long (in units of the base delay) past its last turn starts afresh.
FORGET_FACTOR = 1200
MAX_ADDRESSES = 4096


@dataclass(slots=True)
class Turn:
    """What an attempt was given: `wait_s` before its key is compared (None: refused, come
    back after `retry_after_s`), and the count of attempts from its address so far."""

    wait_s: float | None
    attempt: int
    retry_after_s: float = 0.0


@dataclass(slots=True)
class _Address:
    attempts: int = 0
    next_at: float = 0.0  # when the next attempt may be checked


class AuthBackoff:
    def __init__(self, base_s: float = 0.5, max_addresses: int = MAX_ADDRESSES) -> None:
        self.base_s = base_s
        self.max_wait_s = base_s * MAX_WAIT_FACTOR
        self.forget_s = base_s * FORGET_FACTOR
        self.max_addresses = max_addresses
        self._table: OrderedDict[str, _Address] = OrderedDict()

    def delay(self, attempt: int) -> float:
        """How long attempt number `attempt` holds back the next one, should it fail."""
        return self.base_s * (1 << min(max(attempt - 1, 0), MAX_DOUBLINGS))

    def take_turn(self, address: str, now: float) -> Turn:
        entry = self._table.get(address)
        if entry is None or now > entry.next_at + self.forget_s:
            entry = _Address(next_at=now)
            self._table[address] = entry
            if len(self._table) > self.max_addresses:
                self._table.popitem(last=False)
        self._table.move_to_end(address)
        start = max(now, entry.next_at)
        if start - now > self.max_wait_s:
            return Turn(None, entry.attempts, start - now)
        entry.attempts += 1
        entry.next_at = start + self.delay(entry.attempts)
        return Turn(start - now, entry.attempts)

    def succeeded(self, address: str) -> None:
        self._table.pop(address, None)

    def __len__(self) -> int:
        return len(self._table)
