"""What every endpoint test on a real redis-server reads its counters with."""

from __future__ import annotations

import pytest
import redis


@pytest.fixture
def store(redis_server: str) -> redis.Redis:
    return redis.Redis.from_url(redis_server)
