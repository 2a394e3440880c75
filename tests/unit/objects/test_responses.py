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
