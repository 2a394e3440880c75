"""Finished spans waiting to leave for the collector (`span_export` sends them): a bounded
queue of requests' spans, encoded. Pure, and compiled with the tracer (`setup.py`): adding a
request's spans is the one step of the export each request takes.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from itertools import accumulate


class SpanQueue:
    def __init__(self, max_queue: int, max_batch: int, on_full: Callable[[], None]) -> None:
        self.max_queue = max_queue
        self.max_batch = max_batch
        self.on_full = on_full  # told when the spans waiting first make a whole batch
        # Requests' spans encoded, and how many spans each holds.
        self.pending: list[bytes] = []
        self.counts: list[int] = []
        self.queued = 0  # spans in `pending`
        self.dropped = 0  # spans dropped since `dropped` was last reset

    def add(self, spans: bytes, count: int) -> None:
        """A request's finished spans, `count` `Span` messages encoded and joined by commas, to
        leave with the next export (or dropped, the queue being full)."""
        queued = self.queued + count
        if queued > self.max_queue:
            self.dropped += count
            return
        self.pending.append(spans)
        self.counts.append(count)
        self.queued = queued
        if queued >= self.max_batch > queued - count:
            self.on_full()

    def batch(self) -> tuple[list[bytes], int]:
        """The oldest spans waiting, as many requests' as fit in a batch and at least one
        request's, taken off the queue; and how many spans they are."""
        # Found in C: a loop over the requests in Python cost more than the rest of the export.
        totals = list(accumulate(self.counts))
        taken = max(bisect_right(totals, self.max_batch), 1)
        spans = totals[taken - 1]
        batch, self.pending = self.pending[:taken], self.pending[taken:]
        del self.counts[:taken]
        self.queued -= spans
        return batch, spans
