"""Coalescing across replicas on a real redis-server and on a real 3-node Redis Cluster: two
`Cache`s (two replicas) on one Redis, the upstream call left out (a leader `finish`es its flight
by hand). On the cluster, every script of a key runs on the node of its slot.

A request polling for another replica's call marks the key awaited by its team; once it takes
the lock, those marks of its own are no reason to call upstream after its client left."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable

import pytest
import redis.asyncio as aioredis

from gateway.cache.entry import Entry
from gateway.cache.flights import Cache, Flight
from gateway.cache.store import CacheStore, awaited_key
from gateway.config import CacheConfig, RedisConfig
from gateway.runtime.redis_connection import open_redis

TEAM = "alpha"


@pytest.fixture(params=["server", "cluster"])
def redis_config(request: pytest.FixtureRequest) -> RedisConfig:
    """One redis-server, or a 3-node Redis Cluster, as the gateway's config names it."""
    if request.param == "server":
        return RedisConfig(url=request.getfixturevalue("redis_server"))
    ports: list[int] = request.getfixturevalue("cluster")
    return RedisConfig(url=f"redis://127.0.0.1:{ports[0]}", cluster=True)


def run(config: RedisConfig, scenario: Callable[[aioredis.Redis, str], Awaitable[None]]) -> None:
    """`scenario` on the gateway's own client of that Redis, with a key no other test uses."""

    async def main() -> None:
        client = open_redis(config)
        try:
            await scenario(client, secrets.token_hex(8))
        finally:
            await client.aclose()

    asyncio.run(main())


def replica(client: aioredis.Redis) -> Cache:
    return Cache(CacheStore(client), CacheConfig(), on_error=lambda: None)


async def until(condition: Callable[[], Awaitable[object]], what: str) -> None:
    """Until `condition` holds (a guard against hanging, not a bound on time)."""
    deadline = asyncio.get_running_loop().time() + 10
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.01)


async def polled(client: aioredis.Redis, key: str) -> None:
    """Until a poll has marked `key` awaited by `TEAM` in Redis."""
    await until(lambda: client.exists(awaited_key(key, TEAM)), "a poll's mark")


async def elected(leader: Cache, poller: Cache, client: aioredis.Redis, key: str) -> Flight:
    """`leader` leads the key's call, `poller` (another replica) polls for it, marking the key
    awaited; the leader's call fails, and the lock comes to the poller."""
    first = await leader.join(key, TEAM)
    assert isinstance(first, Flight)
    polling = asyncio.create_task(poller.join(key, TEAM))
    await polled(client, key)
    leader.finish(first, None, failed=True)
    turn = await polling
    assert isinstance(turn, Flight)
    return turn


def test_an_elected_pollers_own_marks_are_no_waiters_for_its_call(
    redis_config: RedisConfig,
) -> None:
    """Its client leaving now, nobody waits: the call is stopped, not made for its own mark."""
    run(redis_config, own_marks)


async def own_marks(redis_client: aioredis.Redis, key: str) -> None:
    leader, poller = replica(redis_client), replica(redis_client)
    flight = await elected(leader, poller, redis_client, key)
    # Its own polls marked the key awaited by its team moments ago (for 2 s): no reason.
    assert not await poller.awaited(flight)
    poller.finish(flight, None, failed=True)


def test_an_elected_poller_reads_on_for_another_replicas_waiters(redis_config: RedisConfig) -> None:
    """A request of its team polling on a third replica is one to call for."""
    run(redis_config, third_replicas_waiter)


async def third_replicas_waiter(redis_client: aioredis.Redis, key: str) -> None:
    leader, poller, third = (replica(redis_client) for _ in range(3))
    flight = await elected(leader, poller, redis_client, key)
    waiting = asyncio.create_task(third.join(key, TEAM))
    await until(lambda: poller.awaited(flight), "the third replica's mark")
    poller.finish(flight, None)  # no answer to keep: the third goes its own way
    assert await waiting is None


def test_a_poller_whose_client_left_with_nobody_waiting_stops(redis_config: RedisConfig) -> None:
    """It neither polls on nor takes the lock the leader's failed call frees: no call for
    nobody."""
    run(redis_config, left_alone)


async def left_alone(redis_client: aioredis.Redis, key: str) -> None:
    leader, poller = replica(redis_client), replica(redis_client)
    first = await leader.join(key, TEAM)
    assert isinstance(first, Flight)
    polling = asyncio.create_task(poller.join(key, TEAM))
    await polled(redis_client, key)
    assert poller.opener_left(key, polling)
    leader.finish(first, None, failed=True)
    assert await polling is None
    # The lock is free for whoever asks next.
    after = await leader.join(key, TEAM)
    assert isinstance(after, Flight)
    leader.finish(after, None, failed=True)


def test_a_kept_answer_reaches_pollers_of_two_teams(redis_config: RedisConfig) -> None:
    """A shared cache: requests of two teams poll on one replica for another's call (one lookup
    marks the key awaited by both), and the answer its leader keeps is their hit, its lock
    given up, in one script each."""
    run(redis_config, two_teams)


async def two_teams(redis_client: aioredis.Redis, key: str) -> None:
    leader, poller = replica(redis_client), replica(redis_client)
    first = await leader.join(key, TEAM)
    assert isinstance(first, Flight)
    polling = asyncio.create_task(poller.join(key, "beta"))
    joining = asyncio.create_task(poller.join(key, TEAM))
    await until(lambda: redis_client.exists(awaited_key(key, "beta")), "beta's mark")
    await polled(redis_client, key)
    answer = leader.entry({"id": "chatcmpl-1"}, 10, "gpt-4o", ())
    leader.finish(first, answer)
    for waiting in (polling, joining):
        hit = await waiting
        assert isinstance(hit, Entry) and hit.answer == {"id": "chatcmpl-1"}
    # The lock is gone with the call: the next request, on a third replica, is a hit at once.
    later = await replica(redis_client).join(key, "beta")
    assert isinstance(later, Entry) and later.answer == {"id": "chatcmpl-1"}
