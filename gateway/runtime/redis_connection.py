"""The Redis connection: a real server from REDIS_URL, or an embedded fakeredis when unset."""

from __future__ import annotations

from typing import Any, cast

import redis.asyncio as redis

from gateway.config import RedisConfig


def open_redis(config: RedisConfig) -> redis.Redis:
    if not config.url:
        import fakeredis  # only needed when no server is configured

        return fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
    if config.cluster:
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        from gateway.runtime.redis_cluster import Cluster

        # Every key of one team carries the hash tag {t:<team>}, so each admission script runs on
        # one node. The cluster client's interface is Redis's; the annotation says so.
        cluster: Any = Cluster.from_url(
            config.url,
            max_connections=config.pool_size,
            socket_timeout=config.timeout_s,
            socket_connect_timeout=config.timeout_s,
            # Two retries without waiting: enough to follow a redirect (MOVED, then ASK) after
            # a failover or a resharding. redis-py's default, ten with backoff, held each command
            # for a node that is down 3.5 s before it failed, where one server down fails at once.
            retry=Retry(NoBackoff(), 2),
        )
        return cast(redis.Redis, cluster)
    # A blocking pool waits for a free connection instead of failing at once when all are busy.
    pool = redis.BlockingConnectionPool.from_url(
        config.url,
        max_connections=config.pool_size,
        timeout=config.timeout_s,
        socket_timeout=config.timeout_s,
        socket_connect_timeout=config.timeout_s,
    )
    return redis.Redis(connection_pool=pool)


async def is_ready(client: redis.Redis) -> bool:
    try:
        return bool(await client.ping())
    except (redis.RedisError, OSError):
        return False
