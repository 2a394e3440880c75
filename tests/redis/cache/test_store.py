"""The cache's Redis side on a real redis-server: the marks of requests polling for a call."""

from __future__ import annotations

import asyncio
import secrets

import redis.asyncio as aioredis

from gateway.cache.store import CacheStore, Found, awaited_key

TEAM = "alpha"


def test_only_other_replicas_marks_not_lapsed_say_a_call_is_awaited(redis_server: str) -> None:
    async def scenario() -> None:
        client = aioredis.Redis.from_url(redis_server)
        try:
            store, key = CacheStore(client), secrets.token_hex(8)
            found, _ = await store.lookup(key, "leader", 10_000, 2000, (), "here")
            assert found is Found.LEADS
            marks = awaited_key(key, TEAM)
            # Another replica's mark that lapsed a minute ago (Redis's clock) counts for nothing.
            seconds, _ = await client.time()
            await client.zadd(marks, {"there": (seconds - 60) * 1000})
            assert not await store.awaited(key, TEAM, "here")
            # A poll here marks the key for this replica: still nobody else waits.
            found, _ = await store.lookup(key, "poller", 10_000, 2000, (TEAM,), "here")
            assert found is Found.WAITS
            assert not await store.awaited(key, TEAM, "here")
            assert await client.zrange(marks, 0, -1) == [b"here"]  # the lapsed one pruned
            # Seen from another replica, that poll is a request waiting.
            assert await store.awaited(key, TEAM, "elsewhere")
        finally:
            await client.aclose()

    asyncio.run(scenario())
