"""Stored responses, per team, in Redis.

Two kinds of record share one key per (team, response id):

- a response the gateway served itself, by translation to chat completions: the Response object
  and its input items, so `GET`, `input_items` and `previous_response_id` work without upstream;
- a response upstream served and stores: only its owner and the tokens of its context (input
  plus output), which the next response chained to it will carry upstream and the reserve must
  count.

The key holds the team's name, so a lookup by another team misses: its answer is the same 404
as for an id that never existed.

The items of a team's responses (input items and output, whose ids a later request may give
back: an `item_reference`, an output item with its `id`) are recorded the same way, one key
per (team, item id), for as long as the responses are; a team's item keys share a cluster slot,
so the items one request names are looked up at once. A reasoning item's key beside them holds
the reasoning tokens it carries (its response's, once the gateway read that usage), which a
request giving the item back is held for.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio as redis

PREFIX = "o1gw:response:"
ITEM_PREFIX = "o1gw:response-item:"
REASONING_PREFIX = "o1gw:response-reasoning:"
log = logging.getLogger("gateway")
# Sends one command on a pipelined connection without waiting, its reply in the future it
# returns; None when it has no open connection (see `admission.script_pipeline`).
Submit = Callable[..., "asyncio.Future[Any] | None"]


@dataclass(frozen=True, slots=True)
class StoredResponse:
    native: bool
    # Translated responses: the Response object, the input items it was given, and the items
    # of the conversation before them (of its `previous_response_id` chain).
    response: dict[str, Any] | None = None
    input_items: list[dict[str, Any]] = field(default_factory=list)
    earlier: list[dict[str, Any]] = field(default_factory=list)
    # Native responses: input plus output tokens, what a chained call sends upstream again.
    context_tokens: int = 0
    # A native response whose conversation the gateway spelled out for upstream (its previous
    # response was one upstream does not have): the `previous_response_id` the client gave,
    # and how many items of that conversation came before the client's own input upstream.
    previous_response_id: str | None = None
    spelled_items: int = 0

    def history(self) -> list[dict[str, Any]]:
        """The conversation so far as input items: what it was given, then what it answered."""
        output = self.response.get("output") if self.response is not None else None
        return [*self.earlier, *self.input_items, *(output if isinstance(output, list) else ())]


def _key(team: str, response_id: str) -> str:
    return f"{PREFIX}{team}:{response_id}"


def _item_key(team: str, item_id: str) -> str:
    return f"{ITEM_PREFIX}{{t:{team}}}:{item_id}"


def _reasoning_key(team: str, item_id: str) -> str:
    return f"{REASONING_PREFIX}{{t:{team}}}:{item_id}"


class ResponseStore:
    def __init__(self, client: redis.Redis, ttl_s: float, submit: Submit | None = None) -> None:
        self._redis = client
        self._ttl_ms = max(1, int(ttl_s * 1000))
        # An owner record is written on every stored response: on admission's pipelined
        # connection when there is one, it shares the admission's write and costs a fraction
        # of redis-py's call (and no pooled connection per concurrent write).
        self._submit = submit
        # Owner records written while their answer goes out, by key: a lookup of one waits
        # for it, so this replica never answers 404 for a response it has just served.
        self._writing: dict[str, asyncio.Future[Any]] = {}

    async def put(self, team: str, record: StoredResponse) -> None:
        """Store a response the gateway served itself (its Response object names its id)."""
        assert record.response is not None
        key = _key(team, str(record.response["id"]))
        await self._redis.set(key, _dump(record), px=self._ttl_ms)

    def own(
        self, team: str, response_id: str, context_tokens: int = 0,
        previous_response_id: str | None = None, spelled_items: int = 0,
    ) -> None:  # fmt: skip
        """Record that `team` owns the upstream-stored response `response_id`, without making
        the answer wait: the write starts now and runs on its own (a client that leaves does
        not cancel it)."""
        record = StoredResponse(
            native=True,
            context_tokens=context_tokens,
            previous_response_id=previous_response_id,
            spelled_items=spelled_items,
        )
        self._write_soon(_key(team, response_id), _dump(record))

    def own_items(self, team: str, item_ids: Iterable[str]) -> None:
        """Record that the items `item_ids` (of a response of `team`'s) are the team's to give
        back, as `own` records a response: without making the answer wait."""
        for item_id in item_ids:
            self._write_soon(_item_key(team, item_id), b"1")

    def note_reasoning(self, team: str, carried: Mapping[str, int]) -> None:
        """Record the reasoning tokens each of a response's reasoning items carries (by id), for
        as long as the items are the team's: what a request giving one back is held for."""
        for item_id, tokens in carried.items():
            self._write_soon(_reasoning_key(team, item_id), str(tokens).encode())

    async def carried_reasoning(self, team: str, item_ids: list[str]) -> int | None:
        """The reasoning tokens the reasoning items `item_ids` carry, all told; None when one
        of them has no record (a response whose usage the gateway never read)."""
        if not item_ids:
            return 0
        keys = [_reasoning_key(team, item_id) for item_id in dict.fromkeys(item_ids)]
        writing = {self._writing[key] for key in keys if key in self._writing}
        if writing:
            await asyncio.wait(writing)
        found: list[bytes | str | None] = await self._redis.mget(keys)
        tokens: dict[str, int] = {}
        for key, value in zip(keys, found, strict=True):
            if value is None:
                return None
            tokens[key] = int(value)
        return sum(tokens[_reasoning_key(team, item_id)] for item_id in item_ids)

    async def unknown_items(self, team: str, item_ids: list[str]) -> list[str]:
        """Of `item_ids`, those that are no items of `team`'s responses."""
        named = list(dict.fromkeys(item_ids))
        keys = [_item_key(team, item_id) for item_id in named]
        writing = {self._writing[key] for key in keys if key in self._writing}
        if writing:
            await asyncio.wait(writing)
        if not keys or await self._redis.exists(*keys) == len(keys):
            return []
        # Which ones, in one round trip: an input names up to thousands (one trip each took
        # a second of Redis's time for a request refused before any limit).
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.exists(key)
            found = await pipe.execute()
        return [i for i, there in zip(named, found, strict=True) if not there]

    def _write_soon(self, key: str, record: bytes) -> None:
        write = self._submit("SET", key, record, "PX", self._ttl_ms) if self._submit else None
        if write is None:
            write = asyncio.get_running_loop().create_task(self._set(key, record))
        self._writing[key] = write
        write.add_done_callback(lambda done: self._written(key, done))

    async def _set(self, key: str, record: bytes) -> None:
        await self._redis.set(key, record, px=self._ttl_ms)

    def _written(self, key: str, write: asyncio.Future[Any]) -> None:
        if self._writing.get(key) is write:
            del self._writing[key]
        if not write.cancelled() and write.exception() is not None:
            log.error("cannot record the owner of %s: %r", key, write.exception())

    async def own_now(self, team: str, response_id: str) -> None:
        """`own`, waited for (an admin's assignment answers once it is written)."""
        await self._set(_key(team, response_id), _dump(StoredResponse(native=True)))

    async def get(self, team: str, response_id: str) -> StoredResponse | None:
        key = _key(team, response_id)
        writing = self._writing.get(key)
        if writing is not None:
            await asyncio.wait({writing})
        raw = await self._redis.get(key)
        return None if raw is None else _load(raw)

    async def drain(self, timeout_s: float) -> None:
        """Let the owner records still being written land (at shutdown)."""
        if self._writing:
            await asyncio.wait(set(self._writing.values()), timeout=timeout_s)

    async def delete(self, team: str, response_id: str) -> bool:
        return bool(await self._redis.delete(_key(team, response_id)))


def _dump(record: StoredResponse) -> bytes:
    if record.native:
        native: dict[str, Any] = {"native": True, "context_tokens": record.context_tokens}
        if record.previous_response_id is not None:
            native["previous_response_id"] = record.previous_response_id
            native["spelled_items"] = record.spelled_items
        return orjson.dumps(native)
    return orjson.dumps(
        {
            "native": False,
            "response": record.response,
            "input_items": record.input_items,
            "earlier": record.earlier,
        }
    )


def _load(raw: bytes | str) -> StoredResponse:
    data = orjson.loads(raw)
    if data.get("native"):
        return StoredResponse(
            native=True,
            context_tokens=int(data.get("context_tokens") or 0),
            previous_response_id=data.get("previous_response_id"),
            spelled_items=int(data.get("spelled_items") or 0),
        )
    return StoredResponse(
        native=False,
        response=data.get("response"),
        input_items=data.get("input_items") or [],
        earlier=data.get("earlier") or [],
    )
