"""Stored responses (`store: true`, the default), per API key, in memory.

A background response is answered at once (`status: "queued"`) but its answer is decided then
too (it is deterministic); what moves is only what a poll sees. Each retrieval advances it one
step, queued -> in_progress -> completed (or failed, as one the `x-sim-background` knob fails
ends), so a client's poll loop ends after two polls and a
test can cancel it while it is still queued or in progress. A cancelled response stays
cancelled, with no output.

Each stored item (a response's input items and output) can be named again by its id in a later
request of the same key: as an `item_reference`, or as an item given back with its `id`.

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
    # The finished response object (completed, incomplete, or failed).
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
            if self.stage == DONE and self.response["status"] != "failed":
                self.response = {**self.response, "completed_at": now}
        return self.view()

    def finish(self, now: int) -> dict[str, Any]:
        """A stream read: a background response not cancelled runs to its end."""
        while self.stage in (QUEUED, IN_PROGRESS):
            self.poll(now)
        return self.view()

    def cancel(self) -> dict[str, Any]:
        """Cancel a background response that has not finished; a finished one stays as it is."""
        if self.stage in (QUEUED, IN_PROGRESS):
            self.stage = CANCELLED
        return self.view()


class ResponseStore:
    __slots__ = ("_capacity", "_entries", "_items")

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._entries: OrderedDict[tuple[str, str], Stored] = OrderedDict()
        # Each stored item by (key, item id): the response that holds it, by its id.
        self._items: dict[tuple[str, str], str] = {}

    def put(self, key: str, stored: Stored) -> None:
        response_id = stored.response["id"]
        self._entries[(key, response_id)] = stored
        for item in _items_of(stored):
            self._items[(key, item["id"])] = response_id
        if len(self._entries) > self._capacity:
            (old_key, _), old = self._entries.popitem(last=False)
            self._forget_items(old_key, old)

    def item(self, key: str, item_id: str) -> dict[str, Any] | None:
        """A stored item of the key's, by its id (None: none, or not this key's)."""
        response_id = self._items.get((key, item_id))
        stored = self._entries.get((key, response_id)) if response_id is not None else None
        found = (i for i in _items_of(stored) if i["id"] == item_id) if stored else iter(())
        return next(found, None)

    def reasoning_tokens(self, key: str, item_id: str) -> int:
        """The reasoning tokens of the key's stored response whose output has the reasoning
        item `item_id` (0: none of the key's has), however many later inputs gave it back."""
        for (owner, _), stored in reversed(self._entries.items()):
            output = stored.response.get("output") or []
            if owner == key and any(item.get("id") == item_id for item in output):
                usage = stored.response.get("usage") or {}
                details = usage.get("output_tokens_details") or {}
                return int(details.get("reasoning_tokens") or 0)
        return 0

    def _forget_items(self, key: str, stored: Stored) -> None:
        response_id = stored.response["id"]
        for item in _items_of(stored):
            if self._items.get((key, item["id"])) == response_id:
                del self._items[(key, item["id"])]

    def get(self, key: str, response_id: str) -> Stored | None:
        """Only the key that created a response can see it."""
        stored = self._entries.get((key, response_id))
        if stored is not None:
            self._entries.move_to_end((key, response_id))
        return stored

    def delete(self, key: str, response_id: str) -> bool:
        stored = self._entries.pop((key, response_id), None)
        if stored is not None:
            self._forget_items(key, stored)
        return stored is not None


def _items_of(stored: Stored) -> list[dict[str, Any]]:
    output = stored.response.get("output") or []
    items = (*stored.input_items, *output)
    return [i for i in items if isinstance(i, dict) and isinstance(i.get("id"), str)]
