"""Stored responses (`store: true`, the default), per API key, in memory.

A background response is answered at once (`status: "queued"`) but its answer is decided then
too (it is deterministic); what moves is only what a poll sees. Each retrieval advances it one
step, queued -> in_progress -> completed, so a client's poll loop ends after two polls and a
test can cancel it while it is still queued or in progress. A cancelled response stays
cancelled, with no output.

No I/O: a bounded LRU owned by one simulator instance (the oldest entries go first, so a long
benchmark cannot grow it without end); the caller passes the clock in.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from gateway.simulator.response_shapes import unfinished

QUEUED, IN_PROGRESS, DONE, CANCELLED = range(4)
_SEEN = {QUEUED: "queued", IN_PROGRESS: "in_progress", CANCELLED: "cancelled"}


@dataclass(slots=True)
class Stored:
    # The finished response object (completed or incomplete).
    response: dict[str, Any]
    # This request's own input items, as `/input_items` lists them.
    input_items: list[dict[str, Any]]
    # The whole conversation up to and including the output, for `previous_response_id`
    # (instructions excluded: they are not carried over).
    conversation: list[dict[str, Any]]
    background: bool = False
    stage: int = field(default=DONE)

    def view(self) -> dict[str, Any]:
        """The response as a client sees it now."""
        if self.stage == DONE:
            return self.response
        return unfinished(self.response, _SEEN[self.stage])

    def poll(self, now: int) -> dict[str, Any]:
        """A retrieval: a background response moves one step on, then shows itself."""
        if self.stage in (QUEUED, IN_PROGRESS):
            self.stage += 1
            if self.stage == DONE:
                self.response = {**self.response, "completed_at": now}
        return self.view()

    def cancel(self) -> dict[str, Any]:
        """Cancel a background response that has not finished; a finished one stays as it is."""
        if self.stage in (QUEUED, IN_PROGRESS):
            self.stage = CANCELLED
        return self.view()


class ResponseStore:
    __slots__ = ("_capacity", "_entries")

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._entries: OrderedDict[tuple[str, str], Stored] = OrderedDict()

    def put(self, key: str, stored: Stored) -> None:
        self._entries[(key, stored.response["id"])] = stored
        if len(self._entries) > self._capacity:
            self._entries.popitem(last=False)

    def get(self, key: str, response_id: str) -> Stored | None:
        """Only the key that created a response can see it."""
        stored = self._entries.get((key, response_id))
        if stored is not None:
            self._entries.move_to_end((key, response_id))
        return stored

    def delete(self, key: str, response_id: str) -> bool:
        return self._entries.pop((key, response_id), None) is not None
