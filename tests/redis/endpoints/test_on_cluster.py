"""The whole gateway on a real 3-node Redis Cluster (`redis.cluster: true`), driven by the
`openai` SDK as two teams whose keys live on different nodes: chat (whole, streamed, from the
cache, coalesced on one replica and across two, a cache shared by both teams), files, a batch its
follower settles, a stored Responses chain, stored chat completions the gateway patched (their
views) and the admin API (objects handed over, a team deleted with its keys). Every answer is a 200, each team pays what upstream billed for it, and neither team sees
the other's objects: no command of any of these paths crosses slots."""

from __future__ import annotations

import io
import secrets
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
from redis.cluster import RedisCluster

from gateway.runtime.batch_jobs import BatchJobs
from gateway.runtime.tuning_jobs import TuningJobs
from tests.conftest import GatewayFactory, ServerThread, scrape
from tests.redis.admission.test_end_to_end import spend
from tests.redis.conftest import redis_cli, running_cluster
from tests.redis.endpoints.teams import billed, follower_pass, sdk, teams_yaml
from tests.redis.test_faults import wait_for

TEAMS = {name: {"tier": "tier-5", "cache": "true"} for name in ("north", "south")}
ADMIN_KEY = "admin-key-of-the-cluster-tests-0123456789"
ON = {"x-gateway-cache": "on"}


@pytest.fixture
def url(cluster: list[int]) -> str:
    return f"redis://127.0.0.1:{cluster[0]}"


@pytest.fixture
def store(url: str) -> Iterator[RedisCluster]:
    client = RedisCluster.from_url(url)
    yield client
    client.close()


def on_cluster(
    start_gateway: GatewayFactory, url: str, tmp_path: Path, **sections: Any
) -> ServerThread:
    """A gateway replica on the cluster; keyword args add config sections."""
    path = tmp_path / "teams.yaml"
    path.write_text(teams_yaml(TEAMS))
    return start_gateway(
        redis={"url": url, "cluster": True},
        admission={"teams_file": str(path)},
        upstream={"forward_header_prefixes": ("x-sim-",)},
        server={"admin_key": ADMIN_KEY},
        # The test's own follower pass settles batches and jobs.
        batches={"poll_s": 3600},
        fine_tuning={"poll_s": 3600},
        **sections,
    )


@pytest.fixture
def gateway(start_gateway: GatewayFactory, url: str, tmp_path: Path) -> ServerThread:
    return on_cluster(start_gateway, url, tmp_path)


@pytest.fixture
def fresh_bill(simulator: ServerThread, store: RedisCluster) -> dict[str, int]:
    """The simulator's bill reset; each team's settled spend before the test."""
    httpx.delete(f"{simulator.url}/_sim/bill")
    return {team: spend(store, team)[0] for team in TEAMS}


def spent_since(store: RedisCluster, before: dict[str, int]) -> int:
    total = 0
    for team, was in before.items():
        now, held = spend(store, team)
        assert held == 0, team
        total += now - was
    return total


def test_the_teams_keys_lie_on_different_nodes(store: RedisCluster) -> None:
    # Otherwise the tests below would not show that a team's calls stay on its own node.
    nodes = {store.get_node_from_key("{t:" + team + "}").port for team in TEAMS}
    assert len(nodes) == len(TEAMS)


def chat(client: openai.OpenAI, prompt: str, **extra: Any) -> Any:
    return client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": prompt}], **extra
    )


def coalesced(client: openai.OpenAI, prompt: str, count: int) -> list[Any]:
    """`count` identical cached requests at once, each slow upstream: one call, the rest wait."""
    slow = {**ON, "x-sim-latency-ms": "300"}
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: chat(client, prompt, extra_headers=slow), range(count)))


def test_chat_whole_streamed_cached_and_coalesced(
    gateway: ServerThread,
    simulator: ServerThread,
    store: RedisCluster,
    fresh_bill: dict[str, int],
) -> None:
    for team in TEAMS:
        client = sdk(gateway, team)
        prompt = f"Say hello ({secrets.token_hex(6)})."
        first = chat(client, prompt)
        assert first.http_response.status_code == 200
        assert first.parse().choices[0].message.content
        streamed = client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": prompt + " Slowly."}],
            stream=True,
            stream_options={"include_usage": True},
        )
        assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
        cached = f"Cache me ({secrets.token_hex(6)})."
        assert chat(client, cached, extra_headers=ON).headers["x-gateway-cache"] == "miss"
        again = chat(client, cached, extra_headers=ON)
        assert again.headers["x-gateway-cache"] == "hit"
        together = f"Together ({secrets.token_hex(6)})."
        answers = coalesced(client, together, 8)
        assert sorted(a.headers["x-gateway-cache"] for a in answers) == ["hit"] * 7 + ["miss"]
        assert len({a.parse().id for a in answers}) == 1
    assert spent_since(store, fresh_bill) == billed(simulator) > 0


def batch_input(client: openai.OpenAI) -> str:
    rows = [
        {
            "custom_id": f"r{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": f"Question {i}?"}],
                "max_tokens": 50,
            },
        }
        for i in range(2)
    ]
    data = b"\n".join(orjson.dumps(row) for row in rows)
    return client.files.create(file=("in.jsonl", io.BytesIO(data)), purpose="batch").id


def test_files_and_a_batch_stay_their_teams(
    gateway: ServerThread,
    simulator: ServerThread,
    store: RedisCluster,
    url: str,
    fresh_bill: dict[str, int],
) -> None:
    made: dict[str, tuple[str, str]] = {}
    for team in TEAMS:
        client = sdk(gateway, team)
        doc = client.files.create(file=("notes.txt", b"some notes"), purpose="assistants")
        assert client.files.retrieve(doc.id).id == doc.id
        assert doc.id in [f.id for f in client.files.list().data]
        assert client.files.delete(doc.id).deleted
        with pytest.raises(openai.NotFoundError):
            client.files.retrieve(doc.id)
        file_id = batch_input(client)
        batch = client.batches.create(
            input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h",
            extra_headers={"x-sim-batch": "complete"},
        )  # fmt: skip
        made[team] = (file_id, batch.id)
    follower_pass(url, simulator, lambda gw: BatchJobs(3600, gw.model_of), cluster=True)()
    for team, (file_id, batch_id) in made.items():
        client = sdk(gateway, team)
        done = client.batches.retrieve(batch_id)
        assert done.status == "completed" and done.output_file_id
        assert len(client.files.content(done.output_file_id).read().splitlines()) == 2
        assert [b.id for b in client.batches.list().data] == [batch_id]
        other = sdk(gateway, next(t for t in TEAMS if t != team))
        for reach, object_id in (
            (other.files.retrieve, file_id),
            (other.files.retrieve, done.output_file_id),
            (other.batches.retrieve, batch_id),
        ):
            with pytest.raises(openai.NotFoundError):
                reach(object_id)
        assert file_id not in [f.id for f in other.files.list().data]
        assert batch_id not in [b.id for b in other.batches.list().data]
    assert spent_since(store, fresh_bill) == billed(simulator) > 0


def test_a_fine_tuning_job_stays_its_teams(
    gateway: ServerThread,
    simulator: ServerThread,
    store: RedisCluster,
    url: str,
    fresh_bill: dict[str, int],
) -> None:
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"{i}?"},
                {"role": "assistant", "content": "Arr."},
            ]
        }
        for i in range(3)
    ]
    data = b"".join(orjson.dumps(row) + b"\n" for row in rows)
    jobs: dict[str, str] = {}
    for team in TEAMS:
        client = sdk(gateway, team)
        file_id = client.files.create(file=("t.jsonl", io.BytesIO(data)), purpose="fine-tune").id
        jobs[team] = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=file_id).id
        httpx.post(f"{simulator.url}/_sim/fine_tuning/jobs/{jobs[team]}/complete")
    follower_pass(url, simulator, lambda gw: TuningJobs(poll_s=3600), cluster=True)()
    for team, job_id in jobs.items():
        client = sdk(gateway, team)
        done = client.fine_tuning.jobs.retrieve(job_id)
        assert done.status == "succeeded" and done.fine_tuned_model
        assert client.models.retrieve(done.fine_tuned_model).id == done.fine_tuned_model
        other = sdk(gateway, next(t for t in TEAMS if t != team))
        with pytest.raises(openai.NotFoundError):
            other.fine_tuning.jobs.retrieve(job_id)
        with pytest.raises(openai.NotFoundError):
            other.models.retrieve(done.fine_tuned_model)
        assert job_id not in [j.id for j in other.fine_tuning.jobs.list()]
    assert store.hlen("o1gw:fine_tuning_jobs:open") == 0
    assert spent_since(store, fresh_bill) == billed(simulator) > 0


@pytest.mark.parametrize("model", ["gpt-4o", "o1-mini"])
def test_a_stored_responses_chain_stays_its_teams(
    gateway: ServerThread,
    simulator: ServerThread,
    store: RedisCluster,
    fresh_bill: dict[str, int],
    model: str,
) -> None:
    for team in TEAMS:
        client = sdk(gateway, team)
        first = client.responses.create(model=model, input="Remember the number 7.")
        second = client.responses.create(
            model=model, input="Which number?", previous_response_id=first.id
        )
        assert client.responses.retrieve(second.id).id == second.id
        assert client.responses.input_items.list(second.id).data
        other = sdk(gateway, next(t for t in TEAMS if t != team))
        with pytest.raises(openai.NotFoundError):
            other.responses.retrieve(first.id)
        with pytest.raises(openai.BadRequestError):
            other.responses.create(model=model, input="And?", previous_response_id=second.id)
        # Its items given back (several at once: looked up in one round trip), by their owner
        # only.
        given: Any = [
            *(item.model_dump(exclude_none=True) for item in second.output),
            # (the translation takes no references)
            *([{"type": "item_reference", "id": first.output[-1].id}] if model == "gpt-4o" else []),
            {"role": "user", "content": "Repeat the above."},
        ]
        assert client.responses.create(model=model, input=given).status == "completed"
        with pytest.raises(openai.NotFoundError):
            other.responses.create(model=model, input=given)
        with client.responses.stream(model=model, input="Count to three.") as stream:
            assert stream.get_final_response().status == "completed"
        if model == "gpt-4o":
            queued = client.responses.create(model=model, input="Later.", background=True)
            while client.responses.retrieve(queued.id).status != "completed":
                time.sleep(0.02)
        prompt = f"Cache me ({secrets.token_hex(6)})."
        for status in ("miss", "hit"):
            cached = client.responses.with_raw_response.create(
                model=model, input=prompt, store=False, extra_headers=ON
            )
            assert cached.headers["x-gateway-cache"] == status
        assert client.responses.delete(first.id) is None
        with pytest.raises(openai.NotFoundError):
            client.responses.retrieve(first.id)
    assert spent_since(store, fresh_bill) == billed(simulator) > 0


def stored_by_each_team(
    gateway: ServerThread, model: str, messages: Any, count: int
) -> dict[str, list[str]]:
    """The ids of `count` chat completions each team stores, oldest first."""
    return {
        team: [
            sdk(gateway, team)
            .chat.completions.create(model=model, messages=messages, store=True)
            .id
            for _ in range(count)
        ]
        for team in TEAMS
    }


def test_stored_chat_completions_stay_their_teams(gateway: ServerThread) -> None:
    hi: Any = [{"role": "user", "content": "hi"}]
    kept = stored_by_each_team(gateway, "gpt-4o", hi, 3)
    for team, ids in kept.items():
        client = sdk(gateway, team)
        listed = [c.id for c in client.chat.completions.list(limit=100)]
        assert set(ids) <= set(listed)
        other = next(t for t in TEAMS if t != team)
        assert not set(kept[other]) & set(listed)
        assert client.chat.completions.messages.list(ids[0]).data
        assert client.chat.completions.delete(ids[0]).deleted
        with pytest.raises(openai.NotFoundError):
            sdk(gateway, other).chat.completions.retrieve(ids[1])
    assert scrape(gateway.url)  # the metrics read every team's spend in one pipeline


def test_two_replicas_share_one_call_and_a_shared_cache_on_the_cluster(
    start_gateway: GatewayFactory,
    url: str,
    tmp_path: Path,
    simulator: ServerThread,
    store: RedisCluster,
) -> None:
    """Two replicas with one cache for every team: identical requests of both teams, spread
    over both replicas at once, make one upstream call (the replica not leading polls the
    entry, its lookup marking the key awaited by each of its teams, in one script), and the
    rest are hits."""
    replicas = [on_cluster(start_gateway, url, tmp_path, cache={"shared": True}) for _ in range(2)]
    together = f"Together ({secrets.token_hex(6)})."
    slow = {**ON, "x-sim-latency-ms": "300"}
    clients = [sdk(replica, team) for replica in replicas for team in TEAMS]
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(lambda i: chat(clients[i % 4], together, extra_headers=slow), range(8))
        )
    assert sorted(a.headers["x-gateway-cache"] for a in answers) == ["hit"] * 7 + ["miss"]
    assert len({a.parse().id for a in answers}) == 1
    log: list[dict[str, Any]] = httpx.get(f"{simulator.url}/_sim/requests").json()["data"]
    assert sum(1 for entry in log if together in str(entry.get("body"))) == 1
    # Every lock given up with its answer (in one script with the entry's write, after it).
    wait_for(lambda: not store.keys("gw:cache:*:l"), 10, "the locks to be given up")


def test_stored_views_of_patched_completions_stay_their_teams(gateway: ServerThread) -> None:
    """o1-mini takes no system message: the gateway folds it in, and keeps what the client sent
    (a view a completion, on whichever node its id hashes to); a list reads a page's views in
    one pipelined round trip across the nodes."""
    asked: Any = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2 + 2?"},
    ]
    kept = stored_by_each_team(gateway, "o1-mini", asked, 4)

    def listed(client: openai.OpenAI, ids: list[str]) -> list[str]:
        return [c.id for c in client.chat.completions.list(limit=100) if c.id in ids]

    for team, ids in kept.items():
        client = sdk(gateway, team)
        assert listed(client, ids) == ids
        messages = client.chat.completions.messages.list(ids[0]).data
        assert [(m.role, m.content) for m in messages] == [(m["role"], m["content"]) for m in asked]
        assert client.chat.completions.delete(ids[0]).deleted
        assert listed(client, ids) == ids[1:]
        with pytest.raises(openai.NotFoundError):
            sdk(gateway, next(t for t in TEAMS if t != team)).chat.completions.retrieve(ids[1])


def test_the_admin_api_hands_objects_over_and_deletes_a_team_with_its_keys(
    gateway: ServerThread,
) -> None:
    """A vector store and a stored response of north's given to a new team, whose keys (two)
    its deletion revokes; its name is then retired unless inherited."""
    admin = httpx.Client(
        base_url=f"{gateway.url}/admin", headers={"authorization": f"Bearer {ADMIN_KEY}"}
    )
    name = f"west{secrets.token_hex(3)}"
    assert admin.post("/teams", json={"name": name, "tier": "tier-5"}).status_code == 201
    secrets_of = [admin.post(f"/teams/{name}/keys").json()["key"] for _ in range(2)]
    west = [
        openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=secret, max_retries=0)
        for secret in secrets_of
    ]
    north = sdk(gateway, "north")
    store_id = north.vector_stores.create(name="north's").id
    response_id = north.responses.create(model="gpt-4o", input="Remember 7.").id
    for kind, object_id in (("vector_store", store_id), ("response", response_id)):
        given = admin.post(f"/objects/{kind}/{object_id}", json={"team": name})
        assert given.status_code == 200, given.text
    assert west[0].vector_stores.retrieve(store_id).id == store_id
    assert [s.id for s in west[1].vector_stores.list()] == [store_id]
    assert west[1].responses.retrieve(response_id).id == response_id
    with pytest.raises(openai.NotFoundError):
        north.vector_stores.retrieve(store_id)
    assert store_id not in [s.id for s in north.vector_stores.list()]
    assert admin.delete(f"/teams/{name}").status_code == 200
    for client in west:
        with pytest.raises(openai.AuthenticationError):
            client.models.list()
    assert name not in [t["name"] for t in admin.get("/teams").json()["data"]]
    retired = admin.post("/teams", json={"name": name, "tier": "tier-5"})
    assert retired.status_code == 409, retired.text
    again = admin.post("/teams", json={"name": name, "tier": "tier-5", "inherit": True})
    assert again.status_code == 201, again.text


def test_the_admin_api_makes_a_team_and_its_key(gateway: ServerThread) -> None:
    admin = httpx.Client(
        base_url=f"{gateway.url}/admin", headers={"authorization": f"Bearer {ADMIN_KEY}"}
    )
    name = f"east{secrets.token_hex(3)}"
    made = admin.post("/teams", json={"name": name, "tier": "tier-5"})
    assert made.status_code == 201, made.text
    key = admin.post(f"/teams/{name}/keys")
    assert key.is_success, key.text
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key.json()["key"], max_retries=0)
    assert chat(client, "Hello.").http_response.status_code == 200
    deadline = time.monotonic() + 5  # the settle lands after the answer
    while (usage := admin.get(f"/teams/{name}/usage").json())["spent_micros"] == 0:
        assert time.monotonic() < deadline, usage
        time.sleep(0.05)
    assert usage["held_micros"] == 0 and usage["rows"]
    assert name in [t["name"] for t in admin.get("/teams").json()["data"]]
    # A batch file (its owner record expires) and a stored chat completion of north's, given to
    # the new team: theirs now, no longer north's.
    north = sdk(gateway, "north")
    doc = north.files.create(file=("in.jsonl", b"{}\n"), purpose="batch").id
    hi: Any = [{"role": "user", "content": "hi"}]
    kept = north.chat.completions.create(model="gpt-4o-mini", messages=hi, store=True).id
    for kind, object_id in (("file", doc), ("chat_completion", kept)):
        assert admin.post(f"/objects/{kind}/{object_id}", json={"team": name}).status_code == 200
    assert client.files.retrieve(doc).id == doc
    assert client.chat.completions.retrieve(kept).id == kept
    with pytest.raises(openai.NotFoundError):
        north.files.retrieve(doc)
    with pytest.raises(openai.NotFoundError):
        north.chat.completions.retrieve(kept)
    assert admin.get(f"/teams/{name}/keys").json()["data"][0]["id"] == key.json()["id"]
    assert admin.delete(f"/keys/{key.json()['id']}").status_code == 200
    assert admin.delete(f"/teams/{name}").status_code == 200


def quick_shutdown(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gateway's shutdown waits 10 s for the settles Redis did not take: here none can land
    (monkeypatch, set up before the gateway, is undone after it stops)."""
    monkeypatch.setattr("gateway.runtime.gateway.SETTLE_DRAIN_S", 0.1)


@pytest.mark.parametrize("budgets", ["closed", "open"])
def test_a_cluster_gone_away_degrades_as_one_redis_does(
    monkeypatch: pytest.MonkeyPatch, start_gateway: GatewayFactory, tmp_path: Path, budgets: str
) -> None:
    """Every node down: rate limits fail open, budgets as configured, never a 500."""
    quick_shutdown(monkeypatch)
    path = tmp_path / "teams.yaml"
    path.write_text(teams_yaml(TEAMS))
    nodes = running_cluster()
    ports = next(nodes)
    try:
        gateway = start_gateway(
            redis={"url": f"redis://127.0.0.1:{ports[0]}", "cluster": True, "timeout_s": 0.3},
            admission={"teams_file": str(path), "budgets_on_redis_error": budgets},
        )
        client = sdk(gateway, "north")
        assert chat(client, "Hello.").http_response.status_code == 200
    finally:
        nodes.close()  # every node killed
    ready = httpx.get(f"{gateway.url}/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["redis"] is False
    if budgets == "closed":
        with pytest.raises(openai.InternalServerError) as info:
            chat(client, "Hello.")
        assert info.value.status_code == 503 and info.value.code == "budget_store_unavailable"
    else:
        assert chat(client, "Hello.").http_response.status_code == 200


def test_a_node_gone_away_costs_its_teams_no_more_than_one_redis_gone_does(
    monkeypatch: pytest.MonkeyPatch, start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    """One node down (no replica to take over): the team whose keys it held degrades as it
    would with one redis-server away, within about `redis.timeout_s`, not after the cluster
    client's default ten retries with backoff (3.5 s a command); the other team is not slowed."""
    quick_shutdown(monkeypatch)
    path = tmp_path / "teams.yaml"
    # No cache: an entry may lie on either node.
    path.write_text(teams_yaml({team: {"tier": "tier-5"} for team in TEAMS}))
    nodes = running_cluster()
    ports = next(nodes)
    try:
        url = f"redis://127.0.0.1:{ports[0]}"
        gateway = start_gateway(
            redis={"url": url, "cluster": True, "timeout_s": 0.3},
            admission={"teams_file": str(path), "budgets_on_redis_error": "open"},
        )
        for team in TEAMS:
            assert chat(sdk(gateway, team), "Hello.").http_response.status_code == 200
        with RedisCluster.from_url(url) as store:
            gone = store.get_node_from_key("{t:north}").port
        subprocess.run(["redis-cli", "-p", str(gone), "shutdown", "nosave"], check=False)
        for team in ("north", "south", "north"):
            began = time.monotonic()
            assert chat(sdk(gateway, team), "Hello.").http_response.status_code == 200
            # Within three `timeout_s` (two retries), with room for a busy host; the default
            # retries took 3.4 s at least.
            assert time.monotonic() - began < 2.5, team
    finally:
        nodes.close()


def test_a_replica_taking_over_a_node_loses_its_teams_nothing(
    monkeypatch: pytest.MonkeyPatch,
    start_gateway: GatewayFactory,
    simulator: ServerThread,
    tmp_path: Path,
) -> None:
    """The master holding a team's keys dies and its replica takes over (a failover): while no
    node serves the team's slots its requests are refused as with Redis away (budgets closed:
    503, nothing sent upstream), and once the replica serves them the gateway finds it
    without a restart: every later request is a 200 and the team has paid exactly what
    upstream billed, before and after."""
    quick_shutdown(monkeypatch)
    path = tmp_path / "teams.yaml"
    path.write_text(teams_yaml({team: {"tier": "tier-5"} for team in TEAMS}))
    nodes = running_cluster(replicas=1, node_timeout_ms=1000)
    ports = next(nodes)
    try:
        url = f"redis://127.0.0.1:{ports[0]}"
        gateway = start_gateway(
            redis={"url": url, "cluster": True, "timeout_s": 0.3},
            admission={"teams_file": str(path)},
        )
        httpx.delete(f"{simulator.url}/_sim/bill")
        client = sdk(gateway, "north")
        for _ in range(3):
            assert chat(client, "Hello.").http_response.status_code == 200
        with RedisCluster.from_url(url) as store:
            before = spend(store, "north")
            gone = store.get_node_from_key("{t:north}").port
        # Every write of the master's has reached its replica before it dies (replication is
        # asynchronous: what a master acknowledged and had not sent is lost with it).
        wait_for(lambda: replicated(gone), 10, "the replica to have the master's writes")
        subprocess.run(["redis-cli", "-p", str(gone), "shutdown", "nosave"], check=False)
        deadline = time.monotonic() + 30
        while True:
            try:
                chat(client.with_options(max_retries=0), "Hello.")
                break
            except openai.InternalServerError as exc:
                assert exc.status_code == 503 and exc.code == "budget_store_unavailable"
            assert time.monotonic() < deadline, "the gateway never found the new master"
            time.sleep(0.2)
        for _ in range(5):
            assert chat(client, "Hello.").http_response.status_code == 200
        live = next(port for port in ports if port != gone)
        with RedisCluster.from_url(f"redis://127.0.0.1:{live}") as store:
            assert store.get_node_from_key("{t:north}").port != gone
            charged, held = spend(store, "north")
        assert before[0] > 0 and held == 0
        assert charged == billed(simulator)
    finally:
        nodes.close()


def replicated(master: int) -> bool:
    """Whether the master's replicas have every write it made so far."""
    info = dict(
        line.split(":", 1)
        for line in redis_cli("-p", str(master), "info", "replication").splitlines()
        if ":" in line
    )
    offsets = [
        int(dict(field.split("=") for field in value.split(","))["offset"])
        for name, value in info.items()
        if name.startswith("slave") and "offset=" in value
    ]
    return bool(offsets) and min(offsets) >= int(info["master_repl_offset"])
