"""The jobs the gateway follows (batches, fine-tuning jobs, background responses) are read
upstream once a poll interval, on a real redis-server, however many replicas and workers
follow them: each runs a follower over every open job."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import orjson
import pytest
import redis

from gateway.runtime.batch_jobs import BatchJobs
from gateway.runtime.build import open_gateway
from gateway.runtime.follower import LOOKED_PREFIX, Follower, look_interval_s
from tests.conftest import GatewayFactory, ServerThread
from tests.redis.endpoints.teams import replica_config, sdk, serve_teams
from tests.redis.endpoints.test_batches import input_file

# Long enough that three replicas' passes all fall in one look's claim on a busy host.
POLL_S = 4.0


@pytest.fixture
def gateway(start_gateway: GatewayFactory, redis_server: str, tmp_path: Path) -> ServerThread:
    # Its own follower waits an hour: the test's replicas do the looking.
    teams = {"payer": {"tier": "tier-5"}}
    return serve_teams(start_gateway, redis_server, tmp_path, teams, batches={"poll_s": 3600})


def batch_reads(simulator: ServerThread, batch_id: str) -> int:
    log = httpx.get(f"{simulator.url}/_sim/requests").json()["data"]
    return sum(1 for e in log if e["method"] == "GET" and e["path"] == f"/v1/batches/{batch_id}")


def open_batch(gateway: ServerThread) -> str:
    client = sdk(gateway, "payer")
    return client.batches.create(
        input_file_id=input_file(client), endpoint="/v1/chat/completions",
        completion_window="24h",
    ).id  # fmt: skip


def test_each_open_job_is_read_once_a_poll_interval_whatever_the_replicas(
    gateway: ServerThread, redis_server: str, simulator: ServerThread
) -> None:
    # Every replica's every worker read every open job each poll interval: the shipped three
    # replicas of two workers read each batch six times a minute for up to a day (8,640 reads
    # for one counted creation), and each background response 72 times a minute.
    batch = open_batch(gateway)
    config = replica_config(simulator, redis_server)

    async def replicas() -> None:
        gateways = [open_gateway(config) for _ in range(3)]
        try:
            followers = [
                (
                    Follower(
                        gw.redis, gw.upstream, gw.admission, gw.owners, gw.key_headers, [kind]
                    ),
                    kind,
                )
                for gw in gateways
                for kind in [BatchJobs(POLL_S, gw.model_of)]
            ]
            for follower, kind in followers:
                await follower.check_all(kind)
            assert batch_reads(simulator, batch) == 1
            await asyncio.sleep(POLL_S)
            for follower, kind in followers:
                await follower.check_all(kind)
            assert batch_reads(simulator, batch) == 2
        finally:
            for gw in gateways:
                await gw.close()

    httpx.delete(f"{simulator.url}/_sim/requests")
    asyncio.run(replicas())


def test_an_older_job_is_read_less_often(
    gateway: ServerThread, redis_server: str, simulator: ServerThread
) -> None:
    # Read every poll interval for as long as it may run, a day-long batch cost 1,440 reads
    # upstream for one counted creation.
    batch = open_batch(gateway)
    config = replica_config(simulator, redis_server)
    store = redis.Redis.from_url(redis_server)
    kind_key, looked = "o1gw:batches:open", f"{LOOKED_PREFIX}batch:{batch}"

    async def look(age_s: float) -> int:
        record = orjson.loads(store.hget(kind_key, batch) or b"{}")
        store.hset(kind_key, batch, orjson.dumps({**record, "since": time.time() - age_s}))
        store.delete(looked)
        gw = open_gateway(config)
        try:
            kind = BatchJobs(60, gw.model_of)
            follower = Follower(gw.redis, gw.upstream, gw.admission, gw.owners, gw.key_headers,
                                [kind])  # fmt: skip
            await follower.check_all(kind)
        finally:
            await gw.close()
        return int(store.pttl(looked))

    young, hour, day = asyncio.run(look(30)), asyncio.run(look(3600)), asyncio.run(look(86400))
    assert 50_000 < young <= 54_000  # 90% of a minute
    assert 320_000 < hour <= 324_000  # of six
    assert 530_000 < day <= 540_000  # of ten, the slowest


def test_the_interval_between_looks_grows_with_age_to_a_bound() -> None:
    assert look_interval_s(60, 0) == 60
    assert look_interval_s(60, 600) == 60
    assert look_interval_s(60, 3600) == 360
    assert look_interval_s(60, 86_400) == 600
    assert look_interval_s(5, 30) == 5
    assert look_interval_s(5, 300) == 30
