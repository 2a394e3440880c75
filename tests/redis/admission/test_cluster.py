"""Admission on a real 3-node Redis Cluster: each team's script runs on the node owning its hash
tag, and limits and budgets stay exact under hundreds of concurrent calls per team.

A naive limiter (read, compare, write from Python) run the same way over-admits, which shows
these tests would catch a non-atomic implementation.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import cast

import pytest
import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster

from gateway.admission.decision import BUDGET
from gateway.admission.plan import tag
from gateway.admission.redis_side import Admission
from gateway.config import AdmissionConfig, RedisConfig
from gateway.runtime.redis_connection import open_redis
from gateway.wire.usage import Usage
from tests.redis.admission.test_redis_side import LUA, make_plan, pinned_clock
from tests.redis.conftest import NODES

pytestmark = pytest.mark.anyio


@pytest.fixture
async def client(cluster: list[int]) -> AsyncIterator[RedisCluster]:
    """The gateway's own cluster client, as `open_redis` builds it from the config."""
    r = open_redis(RedisConfig(url=f"redis://127.0.0.1:{cluster[0]}", cluster=True))
    assert isinstance(r, RedisCluster)
    await r.initialize()  # learn the slot map now: the tests ask it which node owns a team
    yield r
    await r.aclose()


async def teams_on_every_node(client: RedisCluster, prefix: str) -> dict[str, int]:
    """One team per node (team -> the port of the node owning its hash tag)."""
    found: dict[int, str] = {}
    for i in range(1000):
        team = f"{prefix}{i}"
        # The server's own CLUSTER KEYSLOT agrees with the slot the client routes by.
        assert int(await client.cluster_keyslot(tag(team))) == client.keyslot(tag(team))
        port = client.get_node_from_key(tag(team)).port
        found.setdefault(port, team)
        if len(found) == NODES:
            break
    assert len(found) == NODES
    return {team: port for port, team in found.items()}


async def assert_keys_live_on_their_node(cluster: list[int], teams: dict[str, int]) -> None:
    """Every key a team's calls wrote is on the node that owns its tag: one slot per team."""
    for port in cluster:
        node = redis.Redis(port=port)
        try:
            keys = [k.decode() async for k in node.scan_iter()]
        finally:
            await node.aclose()
        for team, owner in teams.items():
            mine = [k for k in keys if k.startswith(tag(team))]
            assert bool(mine) == (port == owner), (team, port, mine)
            slots = {await client_slot(port, k) for k in mine}
            assert len(slots) <= 1


async def client_slot(port: int, key: str) -> int:
    node = redis.Redis(port=port)
    try:
        return int(await node.cluster("KEYSLOT", key))
    finally:
        await node.aclose()


async def test_teams_on_different_nodes_each_admit_exactly_their_limit(
    client: RedisCluster, cluster: list[int]
) -> None:
    teams = await teams_on_every_node(client, "rpm")
    limits = dict(zip(teams, (50, 37, 61), strict=True))
    admission = Admission(client, AdmissionConfig(), clock_ms=await pinned_clock(client))
    order = [team for team in limits for _ in range(250)]
    decisions = await asyncio.gather(
        *(admission.admit(make_plan(team, rpm=limits[team])) for team in order)
    )
    for team, limit in limits.items():
        mine = [d for t, d in zip(order, decisions, strict=True) if t == team]
        assert not any(d.degraded for d in mine)
        assert sum(d.admitted for d in mine) == limit, team
    assert sorted(teams.values()) == sorted(cluster)
    await assert_keys_live_on_their_node(cluster, teams)


# Regression: the cluster client's per-node pools raise MaxConnectionsError at once when full,
# and Admission used to take that for Redis being down and admit from its in-process fallback,
# admitting up to twice the limit. Admission now bounds its calls in flight to the pool size.
@pytest.mark.parametrize(
    ("teams", "per_team", "cold"),
    [
        # 600 at once on one node: above pool_size (256) connections to that node.
        (1, 600, False),
        # 250 per node, but the nodes do not know the script (a restart or failover) and the
        # client has no connection open yet: every call's NOSCRIPT retry sends SCRIPT LOAD to all
        # three nodes, tripling the connections each call needs.
        (3, 250, True),
    ],
    ids=["above-pool-size", "cold-script-cache"],
)
async def test_a_burst_still_admits_exactly_the_limit(
    client: RedisCluster, cluster: list[int], teams: int, per_team: int, cold: bool
) -> None:
    admission = Admission(client, AdmissionConfig(), clock_ms=await pinned_clock(client))
    names = list(await teams_on_every_node(client, f"burst{per_team}"))[:teams]
    if cold:
        # As a node restart leaves it; flushed behind the client's back, as a restart would be.
        for port in cluster:
            node = redis.Redis(port=port)
            await node.script_flush()
            await node.aclose()
    else:
        await client.script_load(LUA)
    order = [team for team in names for _ in range(per_team)]
    decisions = await asyncio.gather(*(admission.admit(make_plan(t, rpm=50)) for t in order))
    for team in names:
        mine = [d for t, d in zip(order, decisions, strict=True) if t == team]
        assert not any(d.degraded for d in mine)
        assert sum(d.admitted for d in mine) == 50


async def test_spend_never_exceeds_the_budget_under_concurrency(
    client: RedisCluster, cluster: list[int]
) -> None:
    teams = await teams_on_every_node(client, "budget")
    budget, reserve = 20_000, 300
    admission = Admission(client, AdmissionConfig())
    rng = random.Random(7)
    settled: dict[str, list[int]] = {team: [] for team in teams}
    refusals: dict[str, int] = dict.fromkeys(teams, 0)

    async def worker(team: str) -> None:
        for _ in range(4):
            plan = make_plan(team, budget=budget, reserve=reserve)
            decision = await admission.admit(plan)
            assert not decision.degraded
            # What the script reports at admission already includes this call's hold.
            assert decision.spend + decision.held <= budget
            if not decision.admitted:
                assert decision.refused_by == BUDGET
                refusals[team] += 1
                continue
            await asyncio.sleep(rng.random() / 100)  # the upstream call
            cost = rng.randint(0, reserve)
            assert await admission.settle(plan, Usage(1, 1), cost, release_weekly=False) == 1
            settled[team].append(cost)

    await asyncio.gather(*(worker(team) for team in teams for _ in range(80)))
    for team in teams:
        usage = await admission.usage(team, budget, datetime.now(UTC))
        assert usage["held_micros"] == 0
        assert usage["spent_micros"] == sum(settled[team]) <= budget
        assert refusals[team] > 0  # the budget ran out: the limit was really tested
    await assert_keys_live_on_their_node(cluster, teams)


async def test_settle_is_idempotent_on_the_cluster(client: RedisCluster) -> None:
    admission = Admission(client, AdmissionConfig())
    for team in await teams_on_every_node(client, "settle"):
        plan = make_plan(team, budget=10_000, reserve=1_000)
        assert (await admission.admit(plan)).admitted
        # The same settle sent ten times at once (retries racing each other) counts once.
        results = await asyncio.gather(
            *(admission.settle(plan, Usage(5, 5), 400, release_weekly=False) for _ in range(10))
        )
        assert sorted(results) == [1] + [2] * 9
        # A settle for a hold whose admit never landed charges what ran, once.
        unknown = make_plan(team, hold_id="never-admitted")
        assert await admission.settle(unknown, Usage(), 1, release_weekly=False) == -1
        assert await admission.settle(unknown, Usage(), 1, release_weekly=False) == 2
        usage = await admission.usage(team, 10_000, datetime.now(UTC))
        assert (usage["spent_micros"], usage["held_micros"]) == (401, 0)


async def test_an_expired_hold_is_charged_its_reserve_on_the_cluster(client: RedisCluster) -> None:
    admission = Admission(client, AdmissionConfig(hold_ttl_s=0.1))
    teams = list(await teams_on_every_node(client, "expiry"))
    for team in teams:
        assert (await admission.admit(make_plan(team, budget=10_000, reserve=700))).admitted
    await asyncio.sleep(0.2)
    for team in teams:
        swept = await admission.admit(make_plan(team, budget=10_000, reserve=0))
        assert (swept.spend, swept.held) == (700, 0)
        assert await client.zcard(f"{tag(team)}:holds") == 1  # only the sweeping call's hold


async def naive_admit(client: RedisCluster, key: str, limit: int) -> bool:
    """Read, compare, write: three round trips that other callers interleave with."""
    count = int(await client.get(key) or 0)
    if count >= limit:
        return False
    await client.incr(key)
    return True


async def test_a_non_atomic_limiter_run_the_same_way_over_admits(client: RedisCluster) -> None:
    teams = await teams_on_every_node(client, "naive")
    order = [team for team in teams for _ in range(250)]
    admitted = await asyncio.gather(
        *(naive_admit(client, f"{tag(team)}:naive", 50) for team in order)
    )
    for team in teams:
        count = sum(a for t, a in zip(order, admitted, strict=True) if t == team)
        # The same load the script admits exactly 50 of: the check above would have failed.
        assert count > 50, team


async def test_without_the_bound_on_calls_in_flight_a_burst_over_admits(
    client: RedisCluster,
) -> None:
    # The regression test above can fail: let Admission send more calls than the pool holds and
    # the burst spills into the in-process fallback, which admits its own 50 again.
    admission = Admission(client, AdmissionConfig(), max_calls=10_000)
    team = next(iter(await teams_on_every_node(client, "unbounded")))
    await client.script_load(LUA)
    decisions = await asyncio.gather(
        *(admission.admit(make_plan(team, rpm=50)) for _ in range(600))
    )
    assert any(d.degraded for d in decisions)
    assert sum(d.admitted for d in decisions) > 50


async def test_owner_and_item_lookups_of_many_ids_run_on_the_cluster(client: RedisCluster) -> None:
    # Owner records lie on every node; a team's response items share its slot: both are looked
    # up many in one round trip (a pipeline), which the cluster client splits by node.
    from gateway.objects.ownership import Owners
    from gateway.objects.responses import ResponseStore

    owners = Owners(cast(redis.Redis, client))
    ids = [f"file-cluster-{i}" for i in range(300)]
    for i, object_id in enumerate(ids):
        await owners.record("file", "a", object_id, i)
    await owners.record("file", "b", "file-cluster-b", 1)
    assert await owners.not_owned("a", [("file", i) for i in ids]) is None
    named = [*(("file", i) for i in ids), ("file", "file-cluster-b")]
    assert await owners.not_owned("a", named) == ("file", "file-cluster-b")
    # A team's sets of a kind share its slot: the pipelines of a record that expires (and
    # takes expired ids off) and of a forget run on the cluster.
    kept = Owners(cast(redis.Redis, client), {"chat_completion": 60})
    await kept.record("file", "a", "file-cluster-x", 2, expires_at=10**10)
    await kept.record("chat_completion", "a", "chatcmpl-cluster", 3)
    await kept.forget("file", "a", "file-cluster-x")
    assert await kept.owner("file", "file-cluster-x") is None
    assert await kept.owner("chat_completion", "chatcmpl-cluster") == "a"
    items = ResponseStore(cast(redis.Redis, client), ttl_s=60)
    items.own_items("a", ["msg_c1", "msg_c2"])
    await items.drain(5)
    assert await items.unknown_items("a", ["msg_c1", "msg_c9", "msg_c2", "msg_c8"]) == [
        "msg_c9", "msg_c8",
    ]  # fmt: skip
