"""Who owns each object the gateway made at its upstream (files, batches, fine-tuning jobs and
their models, stored chat completions, vector stores), in Redis, and each team's objects in
the order they were made.

Two records per object, each one key, so both work on a Redis Cluster (no command spans
two keys), and a third for one upstream deletes at a time it said:

    o1gw:owner:{kind}:{id}            string: the owning team's name
    o1gw:owned:{t:<team>}:{kind}      sorted set: the team's ids, scored by when they were made
    o1gw:expiring:{t:<team>}:{kind}   sorted set: those of its ids whose owner keys expire,
                                      scored by when (Unix seconds)

The owner key answers "whose is it?"; the team's set pages the team's own objects without
asking upstream for everybody's. An object lives until it is deleted through the gateway, and
an id upstream says is gone (expired, or deleted around the gateway) is forgotten when a
listing or a read meets it; the owner key of one upstream said would expire (a file's
`expires_at`) expires itself `EXPIRED_GRACE_S` after it, so that objects nobody reads again
leave no record behind (their ids leave the team's set at its next record, a few at a time,
or its next listing). A kind upstream keeps a fixed time (`kept_s`: stored chat completions)
is recorded for that time and the grace: its owner keys expire, and its team's set drops the
ids older than that at each record (and expires with its newest), so a team that never lists
them keeps no more than that time's.
The score is a Unix time (the gateway's clock, finer than upstream's whole-second
`created_at`); ties are ordered by id, as a sorted set orders them, so pages never skip or
repeat one.

Recording an object the gateway has just answered with can run beside the answer
(`record_soon`): a lookup of that id on this replica waits for the write, so a client
that reads its object back at once is never told it does not exist.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import redis.asyncio as redis

# The kinds an admin may assign to a team (objects the gateway did not make belong to none).
ASSIGNABLE_KINDS = (
    "file", "batch", "fine_tuning_job", "model", "vector_store", "chat_completion", "response",
)  # fmt: skip
OWNER_PREFIX = "o1gw:owner:"
OWNED_PREFIX = "o1gw:owned:"
EXPIRING_PREFIX = "o1gw:expiring:"
# The most ids whose owner keys have expired one record takes off its team's set: more than
# the one it adds, so none pile up, in bounded work.
FORGOTTEN_A_RECORD = 100
# Owner records `not_owned` asks for in one round trip.
LOOKUPS_A_TRIP = 256
# How long an owner record outlives its object's `expires_at`: upstream deletes an expired
# object some time after that, and its owner must never go first.
EXPIRED_GRACE_S = 86400
log = logging.getLogger("gateway")


def owner_key(kind: str, object_id: str) -> str:
    return f"{OWNER_PREFIX}{kind}:{object_id}"


def owned_key(team: str, kind: str) -> str:
    # The team's hash tag, as its admission keys carry: a team's keys share a cluster slot.
    return f"{OWNED_PREFIX}{{t:{team}}}:{kind}"


def expiring_key(team: str, kind: str) -> str:
    return f"{EXPIRING_PREFIX}{{t:{team}}}:{kind}"


class Owners:
    def __init__(self, client: redis.Redis, kept_s: Mapping[str, float] | None = None) -> None:
        self._redis = client
        # The kinds upstream deletes a fixed time after they are made: that time, and the
        # grace (whole seconds), by kind.
        self._lifetime_s = {
            kind: int(seconds) + EXPIRED_GRACE_S for kind, seconds in (kept_s or {}).items()
        }
        # Owner records being written, by (kind, id): a lookup of one waits for it.
        self._writing: dict[tuple[str, str], asyncio.Future[Any]] = {}

    async def record(
        self, kind: str, team: str, object_id: str, created_at: float, expires_at: Any = None
    ) -> None:
        """`team` owns `object_id`: the owner first, then the team's list (a list entry
        without its owner is never served; an owner without its list entry only lacks a row).
        `expires_at`: when upstream said it expires (Unix seconds), if it did."""
        until = None
        if isinstance(expires_at, int | float) and not isinstance(expires_at, bool):
            until = int(expires_at) + EXPIRED_GRACE_S
        lifetime = self._lifetime_s.get(kind) if until is None else None
        await self._redis.set(owner_key(kind, object_id), team, ex=lifetime, exat=until)
        owned = owned_key(team, kind)
        if lifetime is not None:
            # One key, one round trip: the ids whose owner keys have expired go, and the set
            # itself once its newest has.
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.zadd(owned, {object_id: created_at})
                pipe.zremrangebyscore(owned, "-inf", f"({created_at - lifetime}")
                pipe.expire(owned, lifetime)
                await pipe.execute()
            return
        # The team's keys share a slot: one round trip, and a second only when some of its ids'
        # owner keys have expired since (they leave its set).
        expiring = expiring_key(team, kind)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zadd(owned, {object_id: created_at})
            if until is None:
                pipe.zrem(expiring, object_id)  # kept for good now (an admin's assignment)
            else:
                pipe.zadd(expiring, {object_id: until})
                pipe.zrangebyscore(expiring, "-inf", created_at, 0, FORGOTTEN_A_RECORD)
            done = await pipe.execute()
        gone = done[2] if until is not None else []
        if gone:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.zrem(owned, *gone)
                pipe.zrem(expiring, *gone)
                await pipe.execute()

    async def assign(self, kind: str, team: str, object_id: str, created_at: float) -> None:
        """`team` owns `object_id` from now on, and no other team does (an admin's word): until
        its owner record was to expire, if it was (upstream deletes the object then), else as
        `record` keeps one."""
        previous = await self.owner(kind, object_id)
        left_ms: int = await self._redis.pttl(owner_key(kind, object_id))
        if previous is not None and previous != team:
            await self.forget(kind, previous, object_id)
        expires_at = None  # a kind kept a fixed time is kept that time from now
        if kind not in self._lifetime_s and previous is not None and left_ms > 0:
            # `record` adds the grace again; rounded up, never a second before it was to go.
            expires_at = math.ceil(created_at + left_ms / 1000) - EXPIRED_GRACE_S
        await self.record(kind, team, object_id, created_at, expires_at)

    def record_soon(
        self,
        kind: str,
        team: str,
        object_id: str,
        created_at: float,
        then: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """`record`, without making the answer wait (a client that leaves does not cancel it);
        `then`: what else the gateway keeps of the object, written after it (a lookup of the
        id waits for that too, so a read finds it)."""
        key = (kind, object_id)
        write = asyncio.get_running_loop().create_task(
            self._record_then(kind, team, object_id, created_at, then)
        )
        self._writing[key] = write
        write.add_done_callback(lambda done: self._written(key, done))

    async def _record_then(
        self,
        kind: str,
        team: str,
        object_id: str,
        created_at: float,
        then: Callable[[], Awaitable[None]] | None,
    ) -> None:
        await self.record(kind, team, object_id, created_at)
        if then is not None:
            await then()

    def _written(self, key: tuple[str, str], write: asyncio.Future[Any]) -> None:
        if self._writing.get(key) is write:
            del self._writing[key]
        if not write.cancelled() and write.exception() is not None:
            log.error("cannot record the owner of %s %s: %r", *key, write.exception())

    async def owner(self, kind: str, object_id: str) -> str | None:
        writing = self._writing.get((kind, object_id))
        if writing is not None:
            await asyncio.wait({writing})
        raw = await self._redis.get(owner_key(kind, object_id))
        if raw is None:
            return None
        return raw.decode() if isinstance(raw, bytes) else str(raw)

    async def owns(self, kind: str, team: str, object_id: str) -> bool:
        return await self.owner(kind, object_id) == team

    async def not_owned(
        self, team: str, named: Iterable[tuple[str, str]]
    ) -> tuple[str, str] | None:
        """The first of the (kind, id) pairs `named` that `team` does not own; None when it owns
        them all. Each pair is asked once, many a round trip: a request body may name thousands
        (the same one over and over), and each asked alone took a round trip."""
        pairs = list(dict.fromkeys(named))
        writing = {self._writing[pair] for pair in pairs if pair in self._writing}
        if writing:
            await asyncio.wait(writing)
        for start in range(0, len(pairs), LOOKUPS_A_TRIP):
            some = pairs[start : start + LOOKUPS_A_TRIP]
            async with self._redis.pipeline(transaction=False) as pipe:
                for kind, object_id in some:
                    pipe.get(owner_key(kind, object_id))
                owners = await pipe.execute()
            for pair, raw in zip(some, owners, strict=True):
                if (raw.decode() if isinstance(raw, bytes) else raw) != team:
                    return pair
        return None

    async def forget(self, kind: str, team: str, object_id: str) -> None:
        """The object is gone: out of the team's list, and its owner record (if still the
        team's) dropped."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zrem(owned_key(team, kind), object_id)
            pipe.zrem(expiring_key(team, kind), object_id)
            await pipe.execute()
        if await self.owner(kind, object_id) == team:
            await self._redis.delete(owner_key(kind, object_id))

    async def page(
        self, kind: str, team: str, after: str | None, limit: int, order: str
    ) -> tuple[list[str], bool]:
        """Up to `limit` of the team's ids after the id `after` (oldest first for `asc`,
        newest first for `desc`), and whether more follow. An `after` that is not the team's
        gives an empty page, as an unknown cursor does upstream."""
        key = owned_key(team, kind)
        descending = order == "desc"
        start = 0
        if after is not None:
            rank: Any = await (self._redis.zrevrank if descending else self._redis.zrank)(
                key, after
            )
            if not isinstance(rank, int):
                return [], False
            start = rank + 1
        stop = start + limit  # one more than asked: whether more follow
        raw = await (self._redis.zrevrange if descending else self._redis.zrange)(key, start, stop)
        ids = [r.decode() if isinstance(r, bytes) else str(r) for r in raw]
        return ids[:limit], len(ids) > limit

    async def made(self, kind: str, team: str, limit: int) -> list[tuple[str, float]]:
        """The team's first `limit` ids, oldest first, each with when it was made."""
        raw: Any = await self._redis.zrange(owned_key(team, kind), 0, limit - 1, withscores=True)
        return [(r.decode() if isinstance(r, bytes) else str(r), float(at)) for r, at in raw]

    async def drain(self, timeout_s: float) -> None:
        """Let the owner records still being written land (at shutdown)."""
        if self._writing:
            await asyncio.wait(set(self._writing.values()), timeout=timeout_s)
