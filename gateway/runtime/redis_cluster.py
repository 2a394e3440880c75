"""The Redis Cluster client, reporting an outage as every other Redis failure is reported.

redis-py's cluster client raises `RedisClusterUnreachableError` when no node answers and
`SlotNotCoveredError` when no node serves a key's slot: neither is a `RedisError`, so the
gateway's handling of a Redis that is away (admission's fallback, a settle kept for later, a
503, `/readyz` saying so) would miss them and answer 500. They are raised as the
`ConnectionError` a single server's outage raises. Other cluster errors (keys of one call in
different slots) are the gateway's own mistakes and stay as they are.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.exceptions import ConnectionError, RedisClusterUnreachableError, SlotNotCoveredError

OUTAGES = (RedisClusterUnreachableError, SlotNotCoveredError)


class Cluster(RedisCluster):
    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().execute_command(*args, **kwargs)
        except OUTAGES as exc:
            raise ConnectionError(str(exc)) from exc

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> ClusterPipeline:
        if shard_hint:
            return super().pipeline(transaction, shard_hint)  # raises as redis-py does
        # redis-py's stub leaves an attribute abstract that its own ClusterPipeline sets.
        return _Pipeline(self, transaction)  # type: ignore[abstract]


class _Pipeline(ClusterPipeline):
    async def execute(self, *args: Any, **kwargs: Any) -> list[Any]:
        try:
            return await super().execute(*args, **kwargs)
        except OUTAGES as exc:
            raise ConnectionError(str(exc)) from exc
