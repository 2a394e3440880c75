"""Stored responses on fakeredis: per team, with a TTL, and nothing of one team for another."""

from __future__ import annotations

from collections.abc import AsyncIterator

import fakeredis
import pytest
import redis.asyncio as redis

from gateway.objects.responses import ResponseStore, StoredResponse

pytestmark = pytest.mark.anyio
ANSWER = {
    "id": "resp_1",
    "object": "response",
    "output": [{"id": "msg_2", "type": "message", "role": "assistant", "content": []}],
}
ASKED = [{"id": "msg_1", "type": "message", "role": "user", "content": []}]


@pytest.fixture
async def client() -> AsyncIterator[redis.Redis]:
    client = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
    yield client
    await client.aclose()


async def test_a_translated_response_is_kept_whole_for_its_team_only(client: redis.Redis) -> None:
    store = ResponseStore(client, ttl_s=60)
    await store.put("a", StoredResponse(native=False, response=ANSWER, input_items=ASKED))
    kept = await store.get("a", "resp_1")
    assert kept is not None and not kept.native
    assert kept.response == ANSWER
    # The conversation so far: what was asked, then what was answered.
    assert [item["id"] for item in kept.history()] == ["msg_1", "msg_2"]
    assert await store.get("b", "resp_1") is None
    assert 0 < await client.pttl("o1gw:response:a:resp_1") <= 60_000


async def test_an_upstream_response_records_its_owner_and_context(client: redis.Redis) -> None:
    store = ResponseStore(client, ttl_s=60)
    store.own("a", "resp_9", context_tokens=321)
    kept = await store.get("a", "resp_9")
    assert kept == StoredResponse(native=True, context_tokens=321)
    assert kept.history() == []  # upstream holds its items
    assert await store.get("b", "resp_9") is None
    assert not await store.delete("b", "resp_9")
    assert await store.delete("a", "resp_9")
    assert await store.get("a", "resp_9") is None


class Counting(fakeredis.FakeAsyncRedis):
    """Counts the commands sent one by one (a pipeline's go in one round trip)."""

    sent = 0

    async def execute_command(self, *args, **options):  # type: ignore[no-untyped-def]
        Counting.sent += 1
        return await super().execute_command(*args, **options)


async def test_unknown_items_are_found_in_two_round_trips_however_many_are_named() -> None:
    # A Responses input of 2,048 items naming an id and an approval each made 4,097 Redis
    # round trips one after the other (1.2 s) before its 404, refused before any limit.
    client = Counting(server=fakeredis.FakeServer())
    store = ResponseStore(client, ttl_s=60)
    store.own_items("a", ["msg_1", "msg_3"])
    await store.drain(1)
    named = [f"msg_{i}" for i in range(1_000)]
    Counting.sent = 0
    assert await store.unknown_items("a", named) == [
        n for n in named if n not in ("msg_1", "msg_3")
    ]
    assert Counting.sent <= 2
    assert await store.unknown_items("b", ["msg_1"]) == ["msg_1"]
    assert await store.unknown_items("a", ["msg_3", "msg_1", "msg_3"]) == []
    await client.aclose()
