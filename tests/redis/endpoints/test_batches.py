"""Batches governed end to end on a real redis-server: held at creation, followed by the
gateway and charged from their output file when they end, exactly what upstream bills (half
price, per line); each team's own; refused when a line's model is not the team's or the budget
cannot hold every line's worst case."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
import redis

from gateway.admission.redis_side import Admission
from gateway.config import SimulatorConfig
from gateway.objects.ownership import Owners
from gateway.runtime.batch_jobs import BatchJobs
from gateway.runtime.build import open_gateway
from gateway.runtime.follower import Follower
from gateway.simulator import create_simulator
from tests.conftest import SIM_KEY, GatewayFactory, ServerThread, base_config
from tests.redis.admission.test_end_to_end import spend
from tests.redis.endpoints.teams import (
    billed,
    follower_pass,
    key_of,
    refused_batch,
    sdk,
    serve_own_key_team,
    serve_teams,
)

KEYS = {name: key_of(name) for name in ("payer", "other", "poor", "small", "plus", "metered")}


TEAMS: dict[str, dict[str, str]] = {
    "payer": {"tier": "tier-5"},
    "other": {"tier": "tier-5"},
    "poor": {"tier": "tier-5", "budget_usd": "0.01"},
    "small": {"tier": "free"},
    "plus": {"tier": "tier-5", "limits": "{profile: chatgpt-plus}"},
    "metered": {
        "tier": "tier-5",
        "limits": "{models: {o1-preview: {requests_per_minute: 3, tokens_per_minute: 2000}}}",
    },
}


@pytest.fixture
def gateway(start_gateway: GatewayFactory, redis_server: str, tmp_path: Path) -> ServerThread:
    return serve_teams(start_gateway, redis_server, tmp_path, TEAMS, batches={"poll_s": 0.2})


def input_file(client: openai.OpenAI, model: str = "gpt-4o-mini", lines: int = 3) -> str:
    rows = [
        {
            "custom_id": f"r{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": model,
                "messages": [{"role": "user", "content": f"Question {i}?"}],
                "max_tokens": 200,
            },
        }
        for i in range(lines)
    ]
    data = b"\n".join(orjson.dumps(row) for row in rows)
    return client.files.create(file=("in.jsonl", io.BytesIO(data)), purpose="batch").id


def create(client: openai.OpenAI, file_id: str, **extra: Any) -> Any:
    return client.batches.create(
        input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h",
        extra_headers={"x-sim-batch": "complete"}, **extra,
    )  # fmt: skip


def test_a_batch_is_charged_what_upstream_bills_once_it_ends(
    gateway: ServerThread, simulator: ServerThread, store: redis.Redis
) -> None:
    client = sdk(gateway, "payer")
    file_id = input_file(client)
    httpx.delete(f"{simulator.url}/_sim/bill")
    batch = create(client, file_id)
    deadline = time.monotonic() + 10
    while spend(store, "payer") != (billed(simulator), 0) or billed(simulator) == 0:
        assert time.monotonic() < deadline, (spend(store, "payer"), billed(simulator))
        time.sleep(0.1)
    done = client.batches.retrieve(batch.id)
    assert done.status == "completed" and done.output_file_id
    # Its output file is the team's now.
    lines = client.files.content(done.output_file_id).read().splitlines()
    assert len(lines) == 3
    assert [b.id for b in client.batches.list().data] == [batch.id]


def test_another_team_reaches_neither_the_batch_nor_its_files(gateway: ServerThread) -> None:
    mine = sdk(gateway, "payer")
    file_id = input_file(mine)
    batch = create(mine, file_id)
    theirs = sdk(gateway, "other")
    with pytest.raises(openai.NotFoundError):
        theirs.batches.retrieve(batch.id)
    with pytest.raises(openai.NotFoundError):
        theirs.batches.cancel(batch.id)
    assert theirs.batches.list().data == []
    with pytest.raises(openai.NotFoundError):
        create(theirs, file_id)  # someone else's input file


def queue_full_batch(client: openai.OpenAI) -> Any:
    """A batch upstream failed on the organization's enqueued-token limit, read as failed."""
    batch = client.batches.create(
        input_file_id=input_file(client), endpoint="/v1/chat/completions",
        completion_window="24h", extra_headers={"x-sim-batch": "queue-full"},
    )  # fmt: skip
    deadline = time.monotonic() + 30  # a guard: each read moves the batch one step
    while (batch := client.batches.retrieve(batch.id)).status != "failed":
        assert time.monotonic() < deadline, batch.status
    return batch


def test_a_batch_failed_on_the_organizations_queue_names_neither_it_nor_its_limit(
    gateway: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    client = sdk(gateway, "payer")
    batch = queue_full_batch(client)
    listed = client.batches.list().data
    assert [b.id for b in listed] == [batch.id]
    for seen in (batch, listed[0]):
        assert seen.errors is not None and seen.errors.data is not None
        (error,) = seen.errors.data
        assert error.code == "token_limit_exceeded"
        assert error.message is not None and "every team of this gateway shares" in error.message
        assert "org-" not in error.message and "90,000" not in error.message
    # The operator has upstream's own words, from each read that told them otherwise.
    heard = [r.getMessage() for r in caplog.records if r.name == "gateway"]
    heard = [line for line in heard if line.startswith("upstream default answered team payer")]
    assert heard and all(" with an error token_limit_exceeded: " in line for line in heard)
    assert all("Enqueued token limit reached" in line for line in heard)
    assert "in organization org-" in heard[-1]


def test_a_batch_of_a_team_on_its_own_key_failed_on_its_queue_is_told_of_that_key(
    start_gateway: GatewayFactory, redis_server: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    # Upstream words the failure for the account of the key it ran on: the team's own.
    gateway = serve_own_key_team(
        start_gateway, redis_server, tmp_path, monkeypatch, batches={"poll_s": 0.2}
    )
    client = sdk(gateway, "own")
    batch = queue_full_batch(client)
    for seen in (batch, *client.batches.list().data):
        assert seen.errors is not None and seen.errors.data is not None
        (error,) = seen.errors.data
        assert error.code == "token_limit_exceeded" and error.message == (
            "The upstream API's rate limit for your team's own upstream key was reached."
        )


def test_a_batch_stays_its_teams_past_its_completion_window(
    gateway: ServerThread, store: redis.Redis
) -> None:
    """A batch's `expires_at` is when its window closes, not when upstream deletes it: its
    owner record does not expire (its input file's, which upstream deletes, does)."""
    client = sdk(gateway, "payer")
    file_id = input_file(client)
    batch = create(client, file_id)
    assert batch.expires_at is not None
    assert store.ttl(f"o1gw:owner:batch:{batch.id}") == -1
    assert store.ttl(f"o1gw:owner:file:{file_id}") > 0


def test_a_batch_is_refused_when_its_lines_cannot_be_held(
    gateway: ServerThread, simulator: ServerThread, store: redis.Redis
) -> None:
    poor = sdk(gateway, "poor")
    # 50 lines of up to 200 tokens of o1-preview ($60/1M, half price): about $0.30 > $0.01.
    file_id = input_file(poor, model="o1-preview", lines=50)
    httpx.delete(f"{simulator.url}/_sim/bill")
    with pytest.raises(openai.RateLimitError) as info:
        create(poor, file_id)
    assert info.value.code == "request_over_budget"
    small = sdk(gateway, "small")
    with pytest.raises(openai.NotFoundError) as missing:
        create(small, input_file(small, model="o1-preview"))
    assert missing.value.code == "model_not_found"
    assert billed(simulator) == 0
    assert spend(store, "poor") == (0, 0)


def test_concurrent_batches_never_pass_a_budget_smaller_than_one_worst_case(
    gateway: ServerThread, simulator: ServerThread, store: redis.Redis
) -> None:
    file_id = input_file(sdk(gateway, "poor"), model="gpt-4o", lines=20)
    httpx.delete(f"{simulator.url}/_sim/bill")

    async def fire() -> list[httpx.Response]:
        body = {
            "input_file_id": file_id, "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
        }  # fmt: skip
        auth = {"Authorization": f"Bearer {KEYS['poor']}", "x-sim-batch": "complete"}
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=100)) as c:
            calls = [
                c.post(f"{gateway.url}/v1/batches", json=body, headers=auth) for _ in range(100)
            ]
            return list(await asyncio.gather(*calls))

    # 20 lines of up to 200 gpt-4o tokens at half price hold about $0.02: more than is left.
    answers = asyncio.run(fire())
    assert {a.status_code for a in answers} == {429}
    assert billed(simulator) == 0
    assert spend(store, "poor") == (0, 0)


def test_a_batch_naming_a_shut_down_model_is_refused_before_upstream(
    start_gateway: GatewayFactory, redis_server: str, tmp_path: Path, simulator: ServerThread
) -> None:
    # The input file goes upstream as it is: each line naming o1-preview would fail there.
    later = serve_teams(
        start_gateway, redis_server, tmp_path, TEAMS, retirement={"today": "2026-12-05"}
    )
    payer = sdk(later, "payer")
    file_id = input_file(payer, model="o1-preview", lines=2)
    with pytest.raises(openai.BadRequestError) as info:
        create(payer, file_id)
    assert "Line 1 of the batch" in info.value.message
    assert "its model o1-preview was shut down on 2025-07-28; name gpt-6.2-astra instead" in (
        info.value.message
    )
    seen = httpx.get(f"{simulator.url}/_sim/requests").json()["data"]
    assert seen[-1]["method"] == "GET", "the gateway read the file; it created no batch"
    # gpt-4o, which does not reason, is served by gpt-6-luna asked not to reason: so advised.
    after = sdk(
        serve_teams(
            start_gateway, redis_server, tmp_path, TEAMS, retirement={"today": "2027-02-01"}
        ),
        "payer",
    )
    with pytest.raises(openai.BadRequestError) as info:
        create(after, input_file(after, model="gpt-4o", lines=1))
    assert info.value.message.endswith(
        "its model gpt-4o was shut down on 2027-01-14; name gpt-6-luna at reasoning_effort none"
        " instead."
    )


def test_a_batch_of_a_model_capped_by_the_week_is_refused_before_upstream(
    gateway: ServerThread, simulator: ServerThread, store: redis.Redis
) -> None:
    """A batch is admitted as one request, and its lines are each a message upstream: 60
    o1-mini lines would pass a cap of 50 o1-mini messages a week, counted once, or not at all
    behind a first line of another model. The models the team has no cap on are batched."""
    plus = sdk(gateway, "plus")
    log = f"{simulator.url}/_sim/requests"
    for lines in (
        [{"model": "o1-mini"}] * 60,
        [{"model": "gpt-4o-mini"}, {"model": "o1-mini"}],
    ):
        rows = [
            {"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions",
             "body": {**line, "messages": [{"role": "user", "content": "Hi"}]}}
            for i, line in enumerate(lines)
        ]  # fmt: skip
        data = b"\n".join(orjson.dumps(row) for row in rows)
        file_id = plus.files.create(file=("in.jsonl", io.BytesIO(data)), purpose="batch").id
        with pytest.raises(openai.BadRequestError) as info:
            create(plus, file_id)
        number = next(i for i, line in enumerate(lines, start=1) if line["model"] == "o1-mini")
        assert f"Line {number} of the batch" in info.value.message
        assert "its model o1-mini is capped at 50 messages a week" in info.value.message
        assert httpx.get(log).json()["data"][-1]["method"] == "GET", "no batch made upstream"
    assert spend(store, "plus") == (0, 0)
    assert create(plus, input_file(plus, model="gpt-4o-mini", lines=2)).id.startswith("batch_")


def mixed_file(client: openai.OpenAI, models: list[str], max_tokens: int = 200) -> str:
    rows = [
        {"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions",
         "body": {"model": model, "messages": [{"role": "user", "content": "Hi"}],
                  "max_tokens": max_tokens}}
        for i, model in enumerate(models)
    ]  # fmt: skip
    data = b"\n".join(orjson.dumps(row) for row in rows)
    return client.files.create(file=("in.jsonl", io.BytesIO(data)), purpose="batch").id


def test_a_batch_counts_a_request_of_every_model_it_names_not_one_per_line(
    gateway: ServerThread, simulator: ServerThread, store: redis.Redis
) -> None:
    """The team may send o1-preview 3 requests and 2,000 tokens a minute. A batch whose first
    line named gpt-4o-mini had been counted against gpt-4o-mini's limits alone, so o1-preview
    lines behind it reached a model whose limit was spent; now each model a batch names counts
    one request. Its lines are not each counted: a batch of more lines and tokens than a
    minute allows is what batches are for (upstream queues them apart)."""
    client = sdk(gateway, "metered")
    log = f"{simulator.url}/_sim/requests"
    mini, preview = "gpt-4o-mini", "o1-preview"
    assert create(client, mixed_file(client, [mini, *[preview] * 8], max_tokens=1500)).id
    assert create(client, mixed_file(client, [preview, mini])).id
    assert create(client, mixed_file(client, [mini, preview])).id
    with pytest.raises(openai.RateLimitError) as spent:
        create(client, mixed_file(client, [mini, mini, preview]))
    assert spent.value.code == "rate_limit_exceeded"
    assert "requests per min (RPM) of o1-preview: Limit 3" in spent.value.message
    assert httpx.get(log).json()["data"][-1]["method"] == "GET", "no batch made upstream"
    assert create(client, mixed_file(client, [mini, mini])).id.startswith("batch_")


def test_a_shut_down_batch_model_names_no_successor_the_team_cannot_use(
    start_gateway: GatewayFactory, redis_server: str, tmp_path: Path
) -> None:
    # Chat serves this team's o1-preview requests with gpt-6.2-astra (allowed as o1-preview);
    # a batch line naming gpt-6.2-astra itself would be refused: the advice would mislead.
    later = serve_teams(
        start_gateway, redis_server, tmp_path, {"narrow": {"tier": "tier-5", "models": "[o1-preview]"}},
        retirement={"today": "2026-12-05"},
    )  # fmt: skip
    narrow = sdk(later, "narrow")
    with pytest.raises(openai.BadRequestError) as info:
        create(narrow, input_file(narrow, model="o1-preview", lines=1))
    assert info.value.message.endswith("its model o1-preview was shut down on 2025-07-28.")
    with pytest.raises(openai.NotFoundError):
        create(narrow, input_file(narrow, model="gpt-6.2-astra", lines=1))


@pytest.fixture
def follow(redis_server: str, simulator: ServerThread) -> Callable[[], None]:
    """One pass of the gateway's follower over the open batches (the gateway's own waits an
    hour between looks: `unfollowed`)."""
    return follower_pass(redis_server, simulator, lambda gw: BatchJobs(3600, gw.model_of))


@pytest.fixture
def unfollowed(start_gateway: GatewayFactory, redis_server: str, tmp_path: Path) -> ServerThread:
    return serve_teams(start_gateway, redis_server, tmp_path, TEAMS, batches={"poll_s": 3600})


def test_a_batch_settled_before_redis_went_away_is_charged_once_when_it_is_back(
    unfollowed: ServerThread,
    simulator: ServerThread,
    store: redis.Redis,
    follow: Callable[[], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The follower settles an ended batch, and Redis goes away before the job is taken off
    the open list; it is back 11 minutes later (longer than a settled hold is remembered). The
    next look settles the batch again: it counts once."""
    client = sdk(unfollowed, "payer")
    file_id = input_file(client)
    httpx.delete(f"{simulator.url}/_sim/bill")
    create(client, file_id)

    async def away(*_: object) -> None:
        raise redis.exceptions.ConnectionError("Connection reset by peer")

    monkeypatch.setattr(Owners, "record", away)
    with pytest.raises(redis.exceptions.ConnectionError):
        follow()
    monkeypatch.undo()
    assert store.hlen("o1gw:batches:open") == 1, "still open"
    assert spend(store, "payer") == (billed(simulator), 0)
    away_ms = 11 * 60 * 1000
    minutes_pass(store, away_ms)
    # ...and the look that began settling it was 11 minutes ago.
    (job_id, raw), *_ = store.hgetall("o1gw:batches:open").items()
    record = orjson.loads(raw)
    record["settling"] -= away_ms
    store.hset("o1gw:batches:open", job_id, orjson.dumps(record))
    follow()
    assert store.hlen("o1gw:batches:open") == 0, "settled"
    assert spend(store, "payer") == (billed(simulator), 0)


def minutes_pass(store: redis.Redis, ms: int) -> None:
    """`ms` pass in Redis: what expires in them is gone, the rest lives that much less."""
    for key in store.scan_iter():
        ttl = store.pttl(key)
        if 0 <= ttl <= ms:
            store.delete(key)
        elif ttl > 0:
            store.pexpire(key, ttl - ms)


def test_a_batch_two_replicas_settle_minutes_apart_is_charged_once(
    unfollowed: ServerThread,
    simulator: ServerThread,
    store: redis.Redis,
    redis_server: str,
    follow: Callable[[], None],
) -> None:
    """Two replicas follow the same open batches. One's pass reads the open list, then waits
    on upstream (a look at another job stalls up to upstream.first_byte_timeout_s, 15 min; a
    large output file takes minutes to read); meanwhile the other settles the batch, which
    ended, and takes it off the list. 11 minutes later (longer than a settled hold is
    remembered) the first reaches the batch, as its pass read it: it counts nothing."""
    client = sdk(unfollowed, "payer")
    file_id = input_file(client)
    httpx.delete(f"{simulator.url}/_sim/bill")
    batch = create(client, file_id)
    read_before = store.hget("o1gw:batches:open", batch.id)
    assert read_before is not None
    follow()  # the other replica
    assert store.hlen("o1gw:batches:open") == 0, "settled"
    assert spend(store, "payer") == (billed(simulator), 0) and billed(simulator) > 0
    minutes_pass(store, 11 * 60 * 1000)
    config = base_config(OPENAI_BASE_URL=f"{simulator.url}/v1", OPENAI_API_KEY=SIM_KEY)
    config = dataclasses.replace(config, redis=dataclasses.replace(config.redis, url=redis_server))

    async def late_look() -> None:
        gw = open_gateway(config)
        kind = BatchJobs(3600, gw.model_of)
        follower = Follower(gw.redis, gw.upstream, gw.admission, gw.owners, gw.key_headers, [kind])
        try:
            await follower.check(kind, batch.id, orjson.loads(read_before))
        finally:
            await gw.close()

    asyncio.run(late_look())
    assert store.hlen("o1gw:batches:open") == 0, "not followed again"
    assert spend(store, "payer") == (billed(simulator), 0)


def test_a_batch_two_looks_settle_at_once_is_counted_once_in_the_metrics(
    unfollowed: ServerThread,
    simulator: ServerThread,
    store: redis.Redis,
    redis_server: str,
) -> None:
    """Two looks settle one ended batch at once (the follower's, and its client's read of it,
    on one worker): it is charged once, and gateway_spend_microdollars_total, which matches the
    team's spend, counts it once."""
    client = sdk(unfollowed, "payer")
    file_id = input_file(client)
    httpx.delete(f"{simulator.url}/_sim/bill")
    batch = create(client, file_id)
    config = base_config(OPENAI_BASE_URL=f"{simulator.url}/v1", OPENAI_API_KEY=SIM_KEY)
    config = dataclasses.replace(config, redis=dataclasses.replace(config.redis, url=redis_server))

    async def two_looks() -> float:
        gw = open_gateway(config)
        kind = BatchJobs(3600, gw.model_of)
        follower = Follower(gw.redis, gw.upstream, gw.admission, gw.owners, gw.key_headers, [kind])
        try:
            await asyncio.gather(*(follower.settle_ended("batch", batch.id) for _ in range(2)))
            counted = gw.metrics.registry.get_sample_value(
                "gateway_spend_microdollars_total",
                {"team": "payer", "model": "gpt-4o-mini", "endpoint": "batches"},
            )
            return counted or 0.0
        finally:
            await gw.close()

    counted = asyncio.run(two_looks())
    assert store.hlen("o1gw:batches:open") == 0, "settled"
    assert spend(store, "payer") == (billed(simulator), 0) and billed(simulator) > 0
    assert counted == billed(simulator)


def test_a_batch_made_while_redis_failed_is_answered_and_charged(
    unfollowed: ServerThread,
    simulator: ServerThread,
    store: redis.Redis,
    follow: Callable[[], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Upstream made the batch (it runs, and is billed), and Redis fails as the gateway records
    its owner: the client is told of the batch it made, not a 500 its SDK would send again
    (a second batch, billed again). The batch is followed and charged what it cost."""
    client = sdk(unfollowed, "payer")
    file_id = input_file(client)
    httpx.delete(f"{simulator.url}/_sim/bill")

    async def away(*_: object) -> None:
        raise redis.exceptions.ConnectionError("Connection reset by peer")

    monkeypatch.setattr(Owners, "record", away)
    batch = create(client, file_id)
    monkeypatch.undo()
    listed = httpx.get(
        f"{simulator.url}/v1/batches", headers={"authorization": f"Bearer {SIM_KEY}"}
    )
    assert [made["id"] for made in listed.json()["data"]].count(batch.id) == 1
    follow()
    assert store.hlen("o1gw:batches:open") == 0, "settled"
    assert spend(store, "payer") == (billed(simulator), 0)


def test_a_batch_made_while_redis_was_away_is_charged_when_it_is_back(
    start_gateway: GatewayFactory,
    redis_server: str,
    tmp_path: Path,
    simulator: ServerThread,
    store: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Redis goes away (a failover) after the batch's input file was checked: the creation is
    admitted without it (budgets_on_redis_error and rate_limits_on_redis_error: open), upstream
    makes the batch, and Redis is still away when the gateway would follow it. The hold the
    gateway never wrote cannot expire into a charge: the batch, billed upstream, is charged its
    hold once Redis is back."""
    config = base_config(OPENAI_BASE_URL=f"{simulator.url}/v1", OPENAI_API_KEY=SIM_KEY)
    admission = dataclasses.replace(config.admission, budgets_on_redis_error="open")
    config = dataclasses.replace(config, admission=admission)
    gateway = serve_teams(
        start_gateway, redis_server, tmp_path, TEAMS, config=config, batches={"poll_s": 3600}
    )
    client = sdk(gateway, "payer")
    file_id = input_file(client)
    httpx.delete(f"{simulator.url}/_sim/bill")
    run = Admission._run

    async def admit_away(self: Admission, keys: list[str], args: list[Any], *more: Any) -> Any:
        if args[0] == "admit":
            raise redis.exceptions.ConnectionError("Error connecting to redis: refused")
        return await run(self, keys, args, *more)

    async def away(*_: object, **__: object) -> None:
        raise redis.exceptions.ConnectionError("Error connecting to redis: refused")

    monkeypatch.setattr(Admission, "_run", admit_away)
    monkeypatch.setattr(Owners, "record", away)
    monkeypatch.setattr(Follower, "follow", away)
    batch = create(client, file_id)
    monkeypatch.undo()
    auth = {"authorization": f"Bearer {SIM_KEY}"}
    upstream = httpx.get(f"{simulator.url}/v1/batches/{batch.id}", headers=auth).json()
    assert upstream["status"] == "completed"
    assert billed(simulator) > 0
    deadline = time.monotonic() + 5
    while spend(store, "payer")[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    spent, held = spend(store, "payer")
    assert spent >= billed(simulator) and held == 0


def test_a_batch_whose_output_file_is_deleted_before_the_next_look_is_charged_what_it_cost(
    unfollowed: ServerThread,
    simulator: ServerThread,
    store: redis.Redis,
    follow: Callable[[], None],
) -> None:
    # The client reads its results and deletes the output file before the gateway's next look
    # (batches.poll_s, a minute): upstream billed the lines, which only the file says.
    client = sdk(unfollowed, "payer")
    file_id = input_file(client)
    httpx.delete(f"{simulator.url}/_sim/bill")
    batch = create(client, file_id)
    held_now = spend(store, "payer")[1]
    done = client.batches.retrieve(batch.id)
    assert done.status == "completed" and done.output_file_id
    assert len(client.files.content(done.output_file_id).read().splitlines()) == 3
    client.files.delete(done.output_file_id)
    assert held_now > billed(simulator) > 0
    follow()
    assert store.hlen("o1gw:batches:open") == 0, "settled"
    assert spend(store, "payer") == (billed(simulator), 0)


def test_a_batch_whose_output_file_is_gone_when_it_is_settled_is_charged_its_hold(
    unfollowed: ServerThread,
    simulator: ServerThread,
    store: redis.Redis,
    follow: Callable[[], None],
) -> None:
    # Deleted upstream before the gateway read it (by the team's key, straight to upstream):
    # what its lines cost can no longer be read.
    client = sdk(unfollowed, "payer")
    file_id = input_file(client)
    httpx.delete(f"{simulator.url}/_sim/bill")
    batch = create(client, file_id)
    held_now = spend(store, "payer")[1]
    auth = {"authorization": f"Bearer {SIM_KEY}"}
    done = httpx.get(f"{simulator.url}/v1/batches/{batch.id}", headers=auth).json()
    assert done["status"] == "completed" and done["output_file_id"]
    httpx.delete(f"{simulator.url}/v1/files/{done['output_file_id']}", headers=auth)
    assert held_now > billed(simulator) > 0
    follow()
    assert store.hlen("o1gw:batches:open") == 0, "settled"
    assert spend(store, "payer") == (held_now, 0)


class FilesFailing:
    """The simulator, answering the first read of a file's content after a batch was created
    (its output file's, by the gateway settling it) with a 500."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.armed = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and path == "/v1/batches" and scope["method"] == "POST":
            self.armed = True
        elif scope["type"] == "http" and path.endswith("/content") and self.armed:
            self.armed = False
            body = b'{"error": {"message": "server_error", "type": "server_error"}}'
            head = [(b"content-type", b"application/json")]
            await send({"type": "http.response.start", "status": 500, "headers": head})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


def test_a_batch_whose_output_file_fails_to_read_once_is_charged_what_upstream_bills(
    start_gateway: GatewayFactory, redis_server: str, tmp_path: Path, store: redis.Redis
) -> None:
    with ServerThread(FilesFailing(create_simulator(SimulatorConfig()))) as upstream:
        config = base_config(OPENAI_BASE_URL=f"{upstream.url}/v1", OPENAI_API_KEY=SIM_KEY)
        gateway = serve_teams(
            start_gateway, redis_server, tmp_path, TEAMS, config=config, batches={"poll_s": 0.2}
        )
        client = sdk(gateway, "payer")
        create(client, input_file(client))
        deadline = time.monotonic() + 10
        while store.hlen("o1gw:batches:open") or spend(store, "payer")[1]:
            assert time.monotonic() < deadline, spend(store, "payer")
            time.sleep(0.1)
        assert billed(upstream) > 0
        assert spend(store, "payer") == (billed(upstream), 0)


def test_a_line_nested_deeper_than_its_endpoint_takes_is_refused_before_upstream(
    gateway: ServerThread, simulator: ServerThread
) -> None:
    """A line's body goes upstream as it is in the file, unread by the gateway's writer: one
    nested deeper than its endpoint would take it inline (`server.max_json_depth`) is refused
    as a line that cannot be checked, a 400, never a 500 of the gateway's own."""
    client = sdk(gateway, "payer")
    deep = "[" * 300 + "]" * 300
    schema = f'{{"type": "object", "properties": {{"a": {deep}}}}}'
    bodies: dict[Any, str] = {
        "/v1/chat/completions": '{"model": "gpt-4o-mini", "messages": [{"role": "user", '
        f'"content": "Hi"}}], "tools": [{{"type": "function", "function": {{"name": "f", '
        f'"parameters": {schema}}}}}]}}',
        "/v1/embeddings": f'{{"model": "text-embedding-3-small", "input": {deep}}}',
    }
    log = f"{simulator.url}/_sim/requests"
    for endpoint, body in bodies.items():
        line = f'{{"custom_id": "r", "method": "POST", "url": "{endpoint}", "body": {body}}}'
        file_id = client.files.create(file=("in.jsonl", line.encode()), purpose="batch").id
        before = httpx.get(log).json()["data"]
        with pytest.raises(openai.BadRequestError) as info:
            client.batches.create(input_file_id=file_id, endpoint=endpoint, completion_window="24h")
        assert info.value.code == "invalid_batch_line", endpoint
        assert info.value.response.json()["error"]["message"] == (
            "Line 1 of the batch's input file cannot be accepted: its body nests deeper than "
            "64 levels."
        )
        since = [r for r in httpx.get(log).json()["data"] if r not in before]
        assert [(r["method"], r["path"]) for r in since] == [
            ("GET", f"/v1/files/{file_id}/content")
        ]


def test_a_batchs_lines_are_read_and_priced_off_the_event_loop(
    gateway: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Reading and pricing 50,000 lines took 2 s on the event loop, refused or not (a team
    # without budget could repeat it): another team's chat waited 2.2 s, 0.13 s now.
    from gateway.endpoints import batches

    ran_on_loop: dict[str, bool] = {}

    def watched(name: str) -> Callable[..., Any]:
        real = getattr(batches, name)

        def run(*args: Any) -> Any:
            try:
                asyncio.get_running_loop()
                ran_on_loop[name] = True
            except RuntimeError:
                ran_on_loop[name] = False
            return real(*args)

        return run

    for name in ("_input_lines", "_worst_case"):
        monkeypatch.setattr(batches, name, watched(name))
    poor = sdk(gateway, "poor")
    with pytest.raises(openai.RateLimitError):  # more than its budget can hold
        poor.batches.create(
            input_file_id=input_file(poor, lines=2_000), endpoint="/v1/chat/completions",
            completion_window="24h",
        )  # fmt: skip
    assert ran_on_loop == {"_input_lines": False, "_worst_case": False}


# Upstream deletes a batch's output and error files 30 days after it made them, unless the
# batch asked otherwise (`output_expires_after`); their owner records outlive them a day.
DAY_S = 86400
KEPT_S = 30 * DAY_S


def owner_ttl(store: redis.Redis, file_id: str) -> int:
    return int(store.ttl(f"o1gw:owner:file:{file_id}"))


def test_a_batchs_output_file_is_owned_as_long_as_upstream_keeps_it(
    unfollowed: ServerThread, store: redis.Redis, follow: Callable[[], None]
) -> None:
    """Read by its client before the gateway's follower settles it, then settled: each owner
    record expires a day after upstream deletes the file, never before, never not at all."""
    client = sdk(unfollowed, "payer")
    batch = create(client, input_file(client))
    done = client.batches.retrieve(batch.id)
    assert done.output_file_id is not None
    # Read first by its client: upstream's longest keeping (30 days), and a day more.
    assert KEPT_S + DAY_S - 60 <= owner_ttl(store, done.output_file_id) <= KEPT_S + DAY_S
    follow()
    assert store.hlen("o1gw:batches:open") == 0, "settled"
    assert KEPT_S + DAY_S - 60 <= owner_ttl(store, done.output_file_id) <= KEPT_S + DAY_S
    assert client.files.content(done.output_file_id).read()


def test_a_batch_asking_its_files_kept_an_hour_has_their_owner_records_kept_an_hour_and_a_day(
    unfollowed: ServerThread, store: redis.Redis, follow: Callable[[], None]
) -> None:
    client = sdk(unfollowed, "payer")
    rows = [
        {"custom_id": "ok", "method": "POST", "url": "/v1/chat/completions",
         "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi?"}],
                  "max_tokens": 20}},
        # Upstream refuses it (no messages): the batch's error file.
        {"custom_id": "bad", "method": "POST", "url": "/v1/chat/completions",
         "body": {"model": "gpt-4o-mini", "messages": [], "max_tokens": 20}},
    ]  # fmt: skip
    data = b"\n".join(orjson.dumps(row) for row in rows)
    file_id = client.files.create(file=("in.jsonl", io.BytesIO(data)), purpose="batch").id
    batch = create(
        client,
        file_id,
        extra_body={"output_expires_after": {"anchor": "created_at", "seconds": 3600}},
    )
    follow()
    assert store.hlen("o1gw:batches:open") == 0, "settled"
    done = client.batches.retrieve(batch.id)
    assert done.output_file_id is not None and done.error_file_id is not None
    for made in (done.output_file_id, done.error_file_id):
        assert 3600 + DAY_S - 60 <= owner_ttl(store, made) <= 3600 + DAY_S
        expires_at = client.files.retrieve(made).expires_at
        assert expires_at is not None  # upstream says when it deletes it
        assert expires_at + DAY_S - 60 <= time.time() + owner_ttl(store, made)


def test_a_batch_output_file_deleted_before_it_is_settled_leaves_no_owner_record(
    unfollowed: ServerThread, store: redis.Redis, follow: Callable[[], None]
) -> None:
    client = sdk(unfollowed, "payer")
    batch = create(client, input_file(client))
    done = client.batches.retrieve(batch.id)
    assert done.output_file_id is not None
    client.files.delete(done.output_file_id)
    assert not store.exists(f"o1gw:owner:file:{done.output_file_id}")
    follow()
    assert store.hlen("o1gw:batches:open") == 0, "settled"
    assert not store.exists(f"o1gw:owner:file:{done.output_file_id}")
    assert store.zscore("o1gw:owned:{t:payer}:file", done.output_file_id) is None


class Unnamed:
    """The simulator, answering the creation of a batch or a fine-tuning job with a 200 whose
    object has no `id` (the job made all the same); `created` counts those creations."""

    PATHS = (b"/v1/batches", b"/v1/fine_tuning/jobs")

    def __init__(self, app: Any) -> None:
        self.app = app
        self.created = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["raw_path"] not in (self.PATHS)
        ):
            await self.app(scope, receive, send)
            return
        self.created += 1

        async def unnamed(message: Any) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message["headers"] if k != b"content-length"]
                message = {**message, "headers": kept}
            elif message.get("body"):
                made = orjson.loads(message["body"])
                made.pop("id", None)
                message = {**message, "body": orjson.dumps(made)}
            await send(message)

        await self.app(scope, receive, unnamed)


@pytest.mark.parametrize("kind", ["batch", "fine-tuning job"])
def test_a_job_made_without_an_id_is_a_502_charged_its_hold(
    start_gateway: GatewayFactory, redis_server: str, tmp_path: Path, store: redis.Redis,
    kind: str,
) -> None:  # fmt: skip
    """Upstream answers a creation 200 without the job's id: the job may run, and be billed,
    where the gateway can neither follow nor settle it, nor the team reach it. It is charged its
    hold at once, and the client told in a 502 not to retry (another try, another job). It
    had been answered the 200, its hold kept until `hold_s` and charged on expiry only if
    Redis had written it."""
    from tests.redis.endpoints.test_fine_tuning import training_file

    app = Unnamed(create_simulator(SimulatorConfig()))
    with ServerThread(app) as upstream:
        config = base_config(OPENAI_BASE_URL=f"{upstream.url}/v1", OPENAI_API_KEY=SIM_KEY)
        gateway = serve_teams(start_gateway, redis_server, tmp_path, TEAMS, config=config)
        client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=KEYS["payer"])  # retries
        with pytest.raises(openai.InternalServerError) as info:
            if kind == "batch":
                create(client, input_file(client))
            else:
                client.fine_tuning.jobs.create(
                    model="gpt-4o-mini", training_file=training_file(client)
                )
        assert info.value.status_code == 502 and info.value.code == "upstream_invalid_answer"
        assert info.value.response.headers["x-should-retry"] == "false"
        assert app.created == 1  # the SDK did not make another
        deadline = time.monotonic() + 10
        while spend(store, "payer")[1]:
            assert time.monotonic() < deadline, spend(store, "payer")
            time.sleep(0.05)
        assert spend(store, "payer")[0] > 0  # the hold, charged


@pytest.mark.parametrize(
    ("endpoint", "body", "why"),
    [
        ("/v1/completions",
         {"model": "gpt-3.5-turbo-instruct", "prompt": "Hi", "max_tokens": "4000", "best_of": 20},
         "its max_tokens: Invalid type for 'max_tokens': expected an integer, but got a string "
         "instead"),
        ("/v1/completions", {"model": "gpt-3.5-turbo-instruct", "prompt": "Hi", "best_of": True},
         "its best_of: Invalid type for 'best_of': expected an integer, but got a boolean "
         "instead"),
        ("/v1/chat/completions",
         {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], "n": 128.0},
         "its n: Invalid type for 'n': expected an integer, but got a decimal instead"),
        ("/v1/embeddings", {"model": "text-embedding-3-small", "input": [[1.0] * 8]},
         "its input[0][0]: Invalid type for 'input[0][0]': expected an integer, but got a "
         "decimal instead"),
    ],
)  # fmt: skip
def test_a_line_whose_counts_the_hold_cannot_read_as_upstream_does_is_refused_before_upstream(
    gateway: ServerThread, simulator: ServerThread, store: redis.Redis,
    endpoint: str, body: dict[str, Any], why: str,
) -> None:  # fmt: skip
    """A line is held by its `max_tokens`, `best_of`, `n` and tokens as the endpoint reads them
    inline: a value of another type had been held as the default (16 tokens, one candidate, a
    float token as none) while a lenient upstream might read it as the count it spells."""
    client = sdk(gateway, "payer")
    line = {"custom_id": "r", "method": "POST", "url": endpoint, "body": body}
    file_id = client.files.create(file=("in.jsonl", orjson.dumps(line)), purpose="batch").id
    log = f"{simulator.url}/_sim/requests"
    before = httpx.get(log).json()["data"]
    with pytest.raises(openai.BadRequestError) as info:
        client.batches.create(
            input_file_id=file_id,
            endpoint=endpoint,  # type: ignore[arg-type]
            completion_window="24h",
        )
    assert info.value.code == "invalid_batch_line"
    assert info.value.response.json()["error"]["message"] == (
        f"Line 1 of the batch's input file cannot be accepted: {why}."
    )
    since = [r for r in httpx.get(log).json()["data"] if r not in before]
    assert [(r["method"], r["path"]) for r in since] == [("GET", f"/v1/files/{file_id}/content")]
    assert spend(store, "payer") == (0, 0)


def chat_line(i: int, model: str = "gpt-4o-mini") -> bytes:
    body = {"model": model, "messages": [{"role": "user", "content": f"Q{i}?"}], "max_tokens": i}
    return orjson.dumps(
        {"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions", "body": body}
    )


def test_an_input_file_read_a_block_at_a_time_is_held_as_read_whole(
    unfollowed: ServerThread, store: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The input file is priced as upstream sends it, a block of lines at a time, never held
    whole (it may be 200 MB, and a team may create several batches at once): each line held as
    when the file was read whole, whatever ends its lines and wherever the blocks cut it."""
    from gateway.endpoints import batches, owned

    client = sdk(unfollowed, "payer")
    lines = [chat_line(i) for i in range(1, 31)]

    def held_for(data: bytes) -> int:
        file_id = client.files.create(file=("in.jsonl", data), purpose="batch").id
        before = spend(store, "payer")[1]
        create(client, file_id)
        return spend(store, "payer")[1] - before

    whole = held_for(b"\n".join(lines) + b"\n")  # one block
    assert whole > 0
    monkeypatch.setattr(owned, "LINES_A_BLOCK", 200)
    read: list[int] = []
    real = batches._input_lines

    def watched(content: bytes, first: int, max_depth: int) -> Any:
        read.append(len(content))
        return real(content, first, max_depth)

    monkeypatch.setattr(batches, "_input_lines", watched)
    for data in (
        b"\n".join(lines),  # the last line without its end
        b"\r\n".join(lines) + b"\r\n",
        b"\r".join(lines),
        b"\n\r\n".join(lines) + b"\n\n",  # blank lines between
    ):
        read.clear()
        assert held_for(data) == whole
        assert len(read) > 10 and max(read) < 200 + len(max(lines, key=len)) + 2


def test_an_unreadable_line_after_an_unpriceable_one_is_named_as_when_read_whole(
    gateway: ServerThread, simulator: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every line is read before any is priced: a line that is not JSON is named before an
    earlier one whose model is not the team's, whichever blocks they are read in."""
    from gateway.endpoints import owned

    monkeypatch.setattr(owned, "LINES_A_BLOCK", 200)
    client = sdk(gateway, "payer")
    lines = [chat_line(i, "no-such-model" if i == 2 else "gpt-4o-mini") for i in range(1, 31)]
    broken = [*lines[:25], b"{not json", *lines[25:]]
    refused = refused_batch(client, simulator, b"\n".join(broken))
    assert refused.code == "invalid_batch_line"
    assert refused.response.json()["error"]["message"] == (
        "Line 26 of the batch's input file cannot be accepted: it is not JSON."
    )
    file_id = client.files.create(file=("in.jsonl", b"\n".join(lines)), purpose="batch").id
    with pytest.raises(openai.NotFoundError) as unpriced:
        create(client, file_id)
    assert unpriced.value.code == "model_not_found"


@pytest.fixture
def short_lines(start_gateway: GatewayFactory, redis_server: str, tmp_path: Path) -> ServerThread:
    return serve_teams(
        start_gateway, redis_server, tmp_path, TEAMS, batches={"max_line_bytes": 1000}
    )


def test_a_line_longer_than_the_gateway_reads_is_refused_before_upstream(
    short_lines: ServerThread, simulator: ServerThread, store: redis.Redis
) -> None:
    """The gateway holds a line of the input file at a time, whole, to price it: one longer
    than `batches.max_line_bytes` is refused, naming its line, before anything is made."""
    client = sdk(short_lines, "payer")
    long = chat_line(1).replace(b"Q1?", b"Q" * 1000)
    refused = refused_batch(client, simulator, chat_line(2) + b"\r\n" + long + b"\r\n")
    assert refused.code == "invalid_batch_line"
    assert refused.response.json()["error"]["message"] == (
        "Line 2 of the batch's input file cannot be accepted: it is longer than 1000 bytes, the "
        "most a line may be here."
    )
    # A line before it that cannot be read is named first, as it comes first, however
    # upstream's answer arrives.
    refused = refused_batch(client, simulator, b"{not json\n" + long)
    assert refused.response.json()["error"]["message"] == (
        "Line 1 of the batch's input file cannot be accepted: it is not JSON."
    )
    assert spend(store, "payer") == (0, 0)


def test_an_input_file_of_no_requests_is_refused_before_upstream(
    gateway: ServerThread, simulator: ServerThread, store: redis.Redis
) -> None:
    """A file of blank lines or none names no model to count the batch against: it had been
    answered 500, the gateway's own fault; upstream would fail the batch (`empty_file`)."""
    client = sdk(gateway, "payer")
    for data in (b"", b"\n\r\n"):
        refused = refused_batch(client, simulator, data)
        assert refused.code == "empty_file"
        assert refused.response.json()["error"]["message"] == (
            "The batch's input file has no requests."
        )
    assert spend(store, "payer") == (0, 0)


def test_a_refused_line_is_named_by_its_number_in_the_file_blank_lines_counted(
    gateway: ServerThread, simulator: ServerThread
) -> None:
    """As upstream numbers a batch's lines (its error file's `line`): a line priced after blank
    ones had been named by its place among the lines that are not blank."""
    client = sdk(gateway, "payer")
    elsewhere = chat_line(2).replace(b"/v1/chat/completions", b"/v1/embeddings")
    refused = refused_batch(client, simulator, chat_line(1) + b"\n\n\r\n" + elsewhere)
    assert refused.response.json()["error"]["message"] == (
        "Line 4 of the batch's input file cannot be accepted: its url is not the batch's "
        "/v1/chat/completions."
    )
