"""The admin usage view on a real redis-server: what two keys of one team spent on chat,
responses, embeddings and images, broken down by endpoint, model and key, equal to what upstream
billed for each call to the micro-dollar; a past month by `?month`; pass-through calls filed
under the model they really used."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.admission.plan import tag
from gateway.admission.pricing import cost_micros
from gateway.admission.usage_breakdown import usage_label
from gateway.config import AllowedPath
from gateway.wire.usage import Usage
from tests.conftest import ROOT, SIM_KEY, GatewayFactory, ServerThread, base_config, scrape
from tests.redis.admission.test_end_to_end import spend
from tests.redis.endpoints.test_billing import billed

ADMIN_KEY = "adm-usage-key"
KEYS = {name: f"sk-gw-audited-{name}-0123456789abcdef" for name in ("alice", "bob")}
HELLO: Any = [{"role": "user", "content": "Say hello."}]
LUA = ROOT.joinpath("gateway", "admission", "admission.lua").read_text()
Row = tuple[str, str, str]  # model, endpoint, key id


def teams_yaml() -> str:
    keys = ", ".join(
        f"{{name: {name}, sha256: {hashlib.sha256(secret.encode()).hexdigest()}}}"
        for name, secret in KEYS.items()
    )
    return f"teams:\n  - name: audited\n    tier: tier-5\n    keys: [{keys}]\n"


@pytest.fixture
def gateway(start_gateway: GatewayFactory, redis_server: str, tmp_path: Path) -> ServerThread:
    path = tmp_path / "teams.yaml"
    path.write_text(teams_yaml())
    return start_gateway(
        server={"admin_key": ADMIN_KEY},
        redis={"url": redis_server},
        admission={"teams_file": str(path)},
    )


def admin(server: ServerThread) -> httpx.Client:
    return httpx.Client(
        base_url=f"{server.url}/admin", headers={"authorization": f"Bearer {ADMIN_KEY}"}
    )


def key_ids(server: ServerThread, team: str) -> dict[str, str]:
    """Key name -> id, as the admin API lists a team's keys."""
    return {k["name"]: k["id"] for k in admin(server).get(f"/teams/{team}/keys").json()["data"]}


def sdk(server: ServerThread, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEYS[key], max_retries=0)


CALLS: list[tuple[str, str, str, Callable[[openai.OpenAI], object]]] = [
    ("alice", "gpt-4o", "chat", lambda c: c.chat.completions.create(model="gpt-4o", messages=HELLO)),
    ("alice", "o1-mini", "chat", lambda c: list(
        c.chat.completions.create(model="o1-mini", messages=HELLO, stream=True)
    )),
    ("alice", "gpt-4o", "responses", lambda c: c.responses.create(model="gpt-4o", input="Hi.")),
    ("alice", "text-embedding-3-small", "embeddings", lambda c: c.embeddings.create(
        model="text-embedding-3-small", input=["hello", "world"]
    )),
    ("alice", "dall-e-2", "images", lambda c: c.images.generate(
        model="dall-e-2", prompt="a cat", n=2
    )),
    ("bob", "gpt-4o", "chat", lambda c: c.chat.completions.create(model="gpt-4o", messages=HELLO)),
    ("bob", "gpt-4o", "chat", lambda c: list(
        c.chat.completions.create(model="gpt-4o", messages=HELLO, stream=True)
    )),
    ("bob", "o1-mini", "responses", lambda c: c.responses.create(model="o1-mini", input="Hi.")),
    ("bob", "text-embedding-3-small", "embeddings", lambda c: c.embeddings.create(
        model="text-embedding-3-small", input="hello"
    )),
    ("bob", "gpt-image-1", "images", lambda c: c.images.generate(
        model="gpt-image-1", prompt="a cat", quality="low"
    )),
]  # fmt: skip


def summed(charges: dict[Row, int], index: int) -> dict[str, int]:
    out: Counter[str] = Counter()
    for row, micros in charges.items():
        out[row[index]] += micros
    return dict(out)


def test_two_keys_spend_is_broken_down_by_endpoint_model_and_key_to_the_micro_dollar(
    gateway: ServerThread, simulator: ServerThread, store: redis.Redis
) -> None:
    ids = key_ids(gateway, "audited")
    httpx.delete(f"{simulator.url}/_sim/bill")
    charges: Counter[Row] = Counter()
    calls: Counter[Row] = Counter()
    for key, model, endpoint, call in CALLS:
        before = billed(simulator)
        call(sdk(gateway, key))
        charge = billed(simulator) - before
        assert charge > 0, (key, model, endpoint)
        charges[(model, endpoint, ids[key])] += charge
        calls[(model, endpoint, ids[key])] += 1
    total = sum(charges.values())
    assert spend(store, "audited") == (total, 0)  # every settle has landed

    usage = admin(gateway).get("/teams/audited/usage").json()
    assert usage["spent_micros"] == total
    rows = {(r["model"], r["endpoint"], r["key"]): r for r in usage["rows"]}
    assert {row: r["cost_micros"] for row, r in rows.items()} == dict(charges)
    assert {row: r["requests"] for row, r in rows.items()} == dict(calls)
    for index, dimension in enumerate(("by_model", "by_endpoint", "by_key")):
        view = {name: counts["cost_micros"] for name, counts in usage[dimension].items()}
        assert view == summed(charges, index), dimension
    assert set(usage["by_endpoint"]) == {"chat", "responses", "embeddings", "images"}
    assert set(usage["by_key"]) == set(ids.values())
    # The key is named by its id, never by its secret.
    assert not any(secret in str(usage) for secret in KEYS.values())
    assert usage["by_key"][ids["bob"]]["requests"] == 5


@pytest.fixture
def store(redis_server: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server)
    yield client
    client.close()


def test_a_past_month_reads_by_month_with_its_old_unlabelled_counts(
    gateway: ServerThread, store: redis.Redis
) -> None:
    ids = key_ids(gateway, "audited")
    base = tag("audited")
    february = int(datetime(2025, 2, 14, tzinfo=UTC).timestamp() * 1000)
    label = usage_label("gpt-4o", "responses", ids["alice"])
    # A settle the script charges to February (its clock set there): no hold, so it is charged
    # to the month it runs in.
    settle = ["settle", "lost", february, 1234, 15, "0", 0, label, 10, 5, 0, 0]
    assert store.register_script(LUA)(keys=[base], args=settle) == [-1, 1234]
    # Counted before labels named an endpoint and a key.
    store.hset(f"{base}:usage:2025-02", mapping={"cost:o1-preview": 66, "requests:o1-preview": 1})
    sdk(gateway, "bob").embeddings.create(model="text-embedding-3-small", input="now")

    past = admin(gateway).get("/teams/audited/usage", params={"month": "2025-02"}).json()
    assert (past["period"], past["spent_micros"]) == ("2025-02", 1234)
    assert {(r["model"], r["endpoint"], r["key"], r["cost_micros"]) for r in past["rows"]} == {
        ("gpt-4o", "responses", ids["alice"], 1234),
        ("o1-preview", "unknown", "unknown", 66),
    }
    assert past["by_key"][ids["alice"]]["prompt_tokens"] == 10
    assert past["by_endpoint"]["unknown"]["requests"] == 1
    now = admin(gateway).get("/teams/audited/usage").json()
    assert set(now["by_endpoint"]) == {"embeddings"} and set(now["by_key"]) == {ids["bob"]}


# -- pass-through ---------------------------------------------------------------------------------

RUN_USAGE = {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}


async def thread_run(request: Request) -> JSONResponse:
    """An upstream's Assistants run: it names the snapshot that ran, and its usage."""
    body = await request.json()
    model = "gpt-4o-2024-08-06" if body.get("model") == "gpt-4o" else "gpt-4o-mini-2024-07-18"
    return JSONResponse({"id": "run_1", "object": "thread.run", "model": model, "usage": RUN_USAGE})


@pytest.fixture
def runs_upstream() -> Iterator[ServerThread]:
    app = Starlette(routes=[Route("/v1/threads/{thread_id}/runs", thread_run, methods=["POST"])])
    with ServerThread(app) as server:
        yield server


def test_pass_through_usage_is_filed_under_the_model_it_named_or_answered(
    start_gateway: GatewayFactory,
    redis_server: str,
    runs_upstream: ServerThread,
    tmp_path: Path,
    store: redis.Redis,
) -> None:
    path = tmp_path / "teams.yaml"
    path.write_text(teams_yaml())
    config = base_config(OPENAI_BASE_URL=f"{runs_upstream.url}/v1", OPENAI_API_KEY=SIM_KEY)
    gateway = start_gateway(
        config,
        server={"admin_key": ADMIN_KEY},
        redis={"url": redis_server},
        admission={"teams_file": str(path)},
        passthrough={"allow": (AllowedPath("POST", "/v1/threads/{id}/runs", "usage"),)},
    )
    headers = {"authorization": f"Bearer {KEYS['alice']}"}
    for body in ({"assistant_id": "asst_1", "model": "gpt-4o"}, {"assistant_id": "asst_1"}):
        answer = httpx.post(f"{gateway.url}/v1/threads/thread_1/runs", json=body, headers=headers)
        assert answer.status_code == 200, answer.text
    prices = {name: model.price for name, model in config.models.items()}
    usage = Usage(prompt_tokens=100, completion_tokens=20)
    expected = {m: cost_micros(prices[m], usage) for m in ("gpt-4o", "gpt-4o-mini")}
    assert spend(store, "audited") == (sum(expected.values()), 0)

    view = admin(gateway).get("/teams/audited/usage").json()
    alice = key_ids(gateway, "audited")["alice"]
    assert {(r["model"], r["endpoint"], r["key"], r["cost_micros"]) for r in view["rows"]} == {
        ("gpt-4o", "threads", alice, expected["gpt-4o"]),
        ("gpt-4o-mini", "threads", alice, expected["gpt-4o-mini"]),
    }
    assert "" not in view["by_model"]
    scraped = scrape(gateway.url)
    assert 'endpoint="threads",model="gpt-4o-mini",team="audited"' in scraped
