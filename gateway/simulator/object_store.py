"""A bounded in-memory store of one kind of object, per API key. No I/O.

Objects are kept in creation order, which is what every list endpoint pages over; each key has
its own capacity, and the oldest object goes first when it is exceeded, so a long benchmark
cannot grow the simulator without end. Only the key that created an object can see it
(OpenAI's projects do the same), but the `/_sim` knobs find an object by id alone.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class ObjectStore(Generic[T]):
    """`capacity` objects per key; with `weigh`, also at most `max_weight` (bytes) per key."""

    __slots__ = ("_by_key", "_capacity", "_max_weight", "_weigh")

    def __init__(
        self, capacity: int, weigh: Callable[[T], int] | None = None, max_weight: int = 0
    ) -> None:
        self._capacity = capacity
        self._weigh = weigh
        self._max_weight = max_weight
        self._by_key: dict[str, OrderedDict[str, T]] = {}

    def put(self, key: str, object_id: str, value: T) -> None:
        entries = self._by_key.setdefault(key, OrderedDict())
        entries[object_id] = value
        while len(entries) > self._capacity:
            entries.popitem(last=False)
        if self._weigh is not None:
            weigh = self._weigh
            total = sum(weigh(entry) for entry in entries.values())
            while total > self._max_weight and len(entries) > 1:
                total -= weigh(entries.popitem(last=False)[1])

    def get(self, key: str, object_id: str) -> T | None:
        entries = self._by_key.get(key)
        return entries.get(object_id) if entries is not None else None

    def delete(self, key: str, object_id: str) -> T | None:
        entries = self._by_key.get(key)
        return entries.pop(object_id, None) if entries is not None else None

    def values(self, key: str) -> list[T]:
        """The key's objects, oldest first."""
        return list(self._by_key.get(key, {}).values())

    def find(self, object_id: str) -> tuple[str, T] | None:
        """The owner and object with this id, whichever key made it."""
        for key, entries in self._by_key.items():
            if object_id in entries:
                return key, entries[object_id]
        return None

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_key)
