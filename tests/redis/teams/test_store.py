"""The team and key store's tests from tests/unit/teams/test_store.py again, on a real
redis-server instead of fakeredis: replicas share the real thing."""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import pytest
import redis.asyncio as redis

from tests.unit.teams import test_store as on_fakeredis

pytestmark = on_fakeredis.pytestmark
store = on_fakeredis.store


@pytest.fixture
def client(redis_server: str) -> Iterator[redis.Redis]:
    yield redis.Redis.from_url(redis_server)


# Every test that reaches Redis through `client` or `store`, so that one added there runs here
# too; the others never touch a server.
globals().update(
    (name, test)
    for name, test in vars(on_fakeredis).items()
    if name.startswith("test_") and {"client", "store"} & set(inspect.signature(test).parameters)
)
