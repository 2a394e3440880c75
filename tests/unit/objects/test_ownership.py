"""Object owners on fakeredis: one team's objects are never another's, and a team's objects
page in the order they were made, either way, with a cursor."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import fakeredis
import pytest
import redis.asyncio as redis

from gateway.objects.ownership import Owners, owned_key, owner_key

pytestmark = pytest.mark.anyio


@pytest.fixture
async def client() -> AsyncIterator[redis.Redis]:
    client = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
    yield client
    await client.aclose()


async def test_an_object_is_its_teams_only(client: redis.Redis) -> None:
    owners = Owners(client)
    await owners.record("file", "a", "file-1", 100)
    assert await owners.owner("file", "file-1") == "a"
    assert await owners.owns("file", "a", "file-1")
    assert not await owners.owns("file", "b", "file-1")
    assert not await owners.owns("file", "a", "file-2")
    # Kinds are apart: the same id of another kind is not the team's.
    assert not await owners.owns("vector_store", "a", "file-1")
    assert await client.get(owner_key("file", "file-1")) == b"a"
    assert await client.ttl(owner_key("file", "file-1")) == -1  # lives until deleted
    # The team's list carries the team's hash tag (one cluster slot per team).
    assert owned_key("a", "file") == "o1gw:owned:{t:a}:file"


async def test_forget_drops_the_owner_and_the_list_entry(client: redis.Redis) -> None:
    owners = Owners(client)
    await owners.record("file", "a", "file-1", 100)
    await owners.forget("file", "b", "file-1")  # not b's: nothing changes
    assert await owners.owns("file", "a", "file-1")
    await owners.forget("file", "a", "file-1")
    assert await owners.owner("file", "file-1") is None
    assert await owners.page("file", "a", None, 10, "asc") == ([], False)


async def test_pages_in_creation_order_with_a_cursor(client: redis.Redis) -> None:
    owners = Owners(client)
    # Made in this order; two in the same second are ordered by id.
    for object_id, created in (("c", 1), ("a", 2), ("b", 2), ("d", 3), ("e", 4)):
        await owners.record("chat", "t", object_id, created)
    await owners.record("chat", "other", "z", 0)
    assert await owners.page("chat", "t", None, 2, "asc") == (["c", "a"], True)
    assert await owners.page("chat", "t", "a", 2, "asc") == (["b", "d"], True)
    assert await owners.page("chat", "t", "d", 2, "asc") == (["e"], False)
    assert await owners.page("chat", "t", None, 5, "asc") == (["c", "a", "b", "d", "e"], False)
    assert await owners.page("chat", "t", None, 2, "desc") == (["e", "d"], True)
    assert await owners.page("chat", "t", "d", 10, "desc") == (["b", "a", "c"], False)
    # A cursor that is not the team's is an empty page.
    assert await owners.page("chat", "t", "z", 2, "asc") == ([], False)
    assert await owners.page("chat", "nobody", None, 2, "asc") == ([], False)


async def test_a_lookup_waits_for_a_record_being_written(client: redis.Redis) -> None:
    owners = Owners(client)
    owners.record_soon("chat", "a", "chatcmpl-1", 5)
    assert await owners.owns("chat", "a", "chatcmpl-1")
    owners.record_soon("chat", "a", "chatcmpl-2", 6)
    await owners.drain(1.0)
    assert await owners.page("chat", "a", None, 10, "asc") == (["chatcmpl-1", "chatcmpl-2"], False)
    await asyncio.sleep(0)


async def test_not_owned_finds_the_first_object_another_team_has_in_the_order_named(
    client: redis.Redis,
) -> None:
    owners = Owners(client)
    for i in range(600):
        await owners.record("file", "a", f"file-{i}", i)
    await owners.record("file", "b", "file-b", 1)
    mine = [("file", f"file-{i}") for i in range(600)]
    assert await owners.not_owned("a", mine * 3) is None
    assert await owners.not_owned("a", []) is None
    # Past the first round trip's lookups too, and an unknown id or another kind alike.
    assert await owners.not_owned("a", [*mine, ("file", "file-b"), ("file", "nope")]) == (
        "file", "file-b",
    )  # fmt: skip
    assert await owners.not_owned("a", [*mine[:300], ("vector_store", "file-1")]) == (
        "vector_store", "file-1",
    )  # fmt: skip
    assert await owners.not_owned("b", [("file", "file-b"), ("file", "file-3")]) == (
        "file", "file-3",
    )  # fmt: skip
    # A write still landing is waited for.
    owners.record_soon("file", "b", "file-new", 2)
    assert await owners.not_owned("b", [("file", "file-new")]) is None
