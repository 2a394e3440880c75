"""Admission end to end: the openai SDK against a gateway on a real redis-server."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import redis

from gateway.admission.pricing import cost_micros
from gateway.admission.usage_breakdown import breakdown
from gateway.config import Price
from gateway.wire.usage import Usage
from tests.conftest import (
    GatewayFactory,
    ServerThread,
    scrape,
    start_gateway_process,
    start_redis_server,
)

HELLO = [{"role": "user", "content": "Say hello to the gateway."}]
GPT_4O = Price(input=2_500_000, cached_input=1_250_000, output=10_000_000)
KEYS = {name: f"sk-gw-{name}-0123456789abcdef" for name in ("busy", "poor", "small", "metered")}


def teams_yaml() -> str:
    def key(name: str) -> str:
        return (
            f"    keys: [{{name: k, sha256: {hashlib.sha256(KEYS[name].encode()).hexdigest()}}}]\n"
        )

    return (
        "teams:\n"
        "  - name: busy\n    tier: tier-5\n    limits: {requests_per_minute: 2}\n" + key("busy")
        + "  - name: poor\n    tier: tier-5\n    budget_usd: 0.01\n" + key("poor")
        + "  - name: small\n    tier: tier-1\n" + key("small")
        + "  - name: metered\n    tier: tier-5\n" + key("metered")
    )  # fmt: skip


@pytest.fixture
def gateway(start_gateway: GatewayFactory, redis_server: str, tmp_path: Path) -> ServerThread:
    path = tmp_path / "teams.yaml"
    path.write_text(teams_yaml())
    return gateway_with(start_gateway, redis_server, path)


def gateway_with(start_gateway: GatewayFactory, redis_server: str, teams: Path) -> ServerThread:
    """A gateway on `redis_server` with the teams of `teams`, forwarding x-sim-* knobs."""
    return start_gateway(
        redis={"url": redis_server},
        admission={"teams_file": str(teams)},
        upstream={"forward_header_prefixes": ("x-sim-",)},
    )


@pytest.fixture
def store(redis_server: str) -> redis.Redis:
    return redis.Redis.from_url(redis_server)


def sdk(server: ServerThread, team: str, retries: int = 0) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEYS[team], max_retries=retries)


def month() -> str:
    return datetime.now(UTC).strftime("%Y-%m")


def usage_by(store: redis.Redis, team: str, dimension: str) -> dict[str, dict[str, Any]]:
    """A team's usage counters this month summed by `dimension` (model, endpoint or key)."""
    fields = store.hgetall(f"{{t:{team}}}:usage:{month()}")
    return breakdown({name.decode(): int(value) for name, value in fields.items()})[
        f"by_{dimension}"
    ]


def spend(store: redis.Redis, team: str) -> tuple[int, int]:
    """(settled spend, held) of a team this month, in micro-dollars, once settles have landed."""
    deadline = time.monotonic() + 5
    while True:
        held = int(store.get(f"{{t:{team}}}:held:{month()}") or 0)
        # A hold with no reserve (pass-through) shows in the open-holds set until settled.
        settled = held == 0 and store.zcard(f"{{t:{team}}}:holds") == 0
        if settled or time.monotonic() > deadline:
            return int(store.get(f"{{t:{team}}}:spend:{month()}") or 0), held
        time.sleep(0.02)


def test_rate_limit_refusal_is_openais_429_with_headers(gateway: ServerThread) -> None:
    client = sdk(gateway, "busy")
    ok = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=HELLO)  # type: ignore[arg-type]
    assert ok.headers["x-ratelimit-limit-requests"] == "2"
    assert ok.headers["x-ratelimit-remaining-requests"] == "1"
    assert ok.headers["x-ratelimit-reset-requests"] == "30s"
    assert int(ok.headers["x-ratelimit-limit-tokens"]) == 30_000_000
    assert "x-upstream-ratelimit-limit-requests" not in ok.headers  # the shared key's, no team's
    client.chat.completions.create(model="gpt-4o", messages=HELLO)  # type: ignore[arg-type]
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="gpt-4o", messages=HELLO)  # type: ignore[arg-type]
    error = info.value
    assert error.code == "rate_limit_exceeded"
    assert isinstance(error.body, dict) and error.body["type"] == "requests"
    assert "team busy on requests per min (RPM): Limit 2, Used 2, Requested 1" in error.message
    headers = error.response.headers
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert 1 <= int(headers["retry-after"]) <= 30 and 0 < int(headers["retry-after-ms"]) <= 30_000
    # Pass-through calls count against the same request limit.
    with pytest.raises(openai.RateLimitError):
        client.embeddings.create(model="text-embedding-3-small", input="x")


def test_a_refused_request_never_reaches_upstream(
    gateway: ServerThread, simulator: ServerThread
) -> None:
    # Admitted calls are made ready on an idle upstream connection while Redis decides, and
    # written the moment it admits: a refusal must write nothing, and leave that connection
    # fit for the next call.
    marker = f"refusal probe {time.time_ns()}"
    messages = [{"role": "user", "content": marker}]
    client = sdk(gateway, "busy")
    for _ in range(2):
        client.chat.completions.create(model="gpt-4o", messages=messages)  # type: ignore[arg-type]
    for _ in range(3):
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model="gpt-4o", messages=messages)  # type: ignore[arg-type]
    answer = sdk(gateway, "metered").chat.completions.create(model="gpt-4o", messages=messages)  # type: ignore[arg-type]
    assert answer.choices[0].message.content
    log = httpx.get(f"{simulator.url}/_sim/requests").json()["data"]
    seen = [r for r in log if marker in str((r.get("body") or {}).get("messages"))]
    assert len(seen) == 3  # busy's two admitted calls and metered's one


def test_a_worst_case_over_the_budget_is_refused_and_the_sdk_does_not_retry(
    gateway: ServerThread,
) -> None:
    client = sdk(gateway, "poor", retries=2)
    attempts: list[int] = []
    client = client.with_options(
        http_client=httpx.Client(
            event_hooks={"response": [lambda r: attempts.append(r.status_code)]}
        )
    )
    with pytest.raises(openai.RateLimitError) as info:
        # o1-preview's worst case (32,768 output tokens at $60/1M) is far above $0.01.
        client.chat.completions.create(model="o1-preview", messages=HELLO)  # type: ignore[arg-type]
    assert info.value.code == "request_over_budget"
    assert info.value.response.headers["x-should-retry"] == "false"
    assert attempts == [429]
    # No rate limit refused it: they say what is left of them (o1-preview: 20 a minute).
    assert info.value.response.headers["x-ratelimit-remaining-requests"] == "20"
    assert int(info.value.response.headers["x-ratelimit-remaining-tokens"]) > 0
    # A cheap request that fits is still served.
    assert client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=50)  # type: ignore[arg-type]


def test_models_outside_the_tier_are_not_found(gateway: ServerThread) -> None:
    client = sdk(gateway, "small")
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="o1-preview", messages=HELLO)  # type: ignore[arg-type]
    assert info.value.code == "model_not_found"
    assert "o1-preview" not in {m.id for m in client.models.list()}


def test_completion_is_charged_its_exact_cost(gateway: ServerThread, store: redis.Redis) -> None:
    completion = sdk(gateway, "metered").chat.completions.create(model="gpt-4o", messages=HELLO)  # type: ignore[arg-type]
    assert completion.usage is not None
    expected = cost_micros(
        GPT_4O, Usage(completion.usage.prompt_tokens, completion.usage.completion_tokens)
    )
    assert spend(store, "metered") == (expected, 0)
    counted = usage_by(store, "metered", "model")["gpt-4o"]
    assert counted["requests"] == 1
    assert counted["prompt_tokens"] == completion.usage.prompt_tokens


def test_stream_is_charged_from_its_usage_chunk_which_the_caller_did_not_ask_for(
    gateway: ServerThread, store: redis.Redis
) -> None:
    chunks = list(
        sdk(gateway, "metered").chat.completions.create(model="gpt-4o", messages=HELLO, stream=True)
    )  # type: ignore[arg-type]
    assert all(chunk.choices for chunk in chunks)  # no usage-only chunk: it was not asked for
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    from gateway.wire import tokens

    prompt = tokens.count_messages(HELLO)
    expected = cost_micros(GPT_4O, Usage(prompt, tokens.count_text(text)))
    assert spend(store, "metered") == (expected, 0)


def test_client_leaving_mid_stream_is_charged_for_what_was_generated(
    gateway: ServerThread, store: redis.Redis
) -> None:
    answer = " ".join(["word"] * 200)
    stream = sdk(gateway, "metered").chat.completions.create(
        model="gpt-4o", messages=HELLO, stream=True,  # type: ignore[arg-type]
        extra_headers={"x-sim-chunk-interval-ms": "20", "x-sim-answer": answer},
    )  # fmt: skip
    iterator = iter(stream)
    for _ in range(10):
        next(iterator)
    stream.close()
    charged, held = spend(store, "metered")
    full = cost_micros(GPT_4O, Usage(20, 200))
    assert held == 0
    assert 0 < charged < full / 2


def test_a_failed_upstream_call_releases_its_hold(
    gateway: ServerThread, store: redis.Redis
) -> None:
    with pytest.raises(openai.InternalServerError):
        sdk(gateway, "metered").chat.completions.create(
            model="o1-preview",
            messages=HELLO,
            extra_headers={"x-sim-fault": "500"},  # type: ignore[arg-type]
        )
    assert spend(store, "metered") == (0, 0)


def test_pass_through_usage_is_priced_and_charged(
    gateway: ServerThread, store: redis.Redis
) -> None:
    embedding = sdk(gateway, "metered").embeddings.create(
        model="text-embedding-3-small", input="hello world"
    )
    expected = cost_micros(Price(input=20_000), Usage(prompt_tokens=embedding.usage.prompt_tokens))
    assert expected > 0
    assert spend(store, "metered") == (expected, 0)


# -- several gateway processes on one Redis ----------------------------------------------------------


def _start_gateway_process(
    redis_url: str, teams: Path, simulator: ServerThread
) -> tuple[subprocess.Popen[bytes], int]:
    return start_gateway_process(simulator, redis_url, teams)


@pytest.fixture
def three_gateways(
    redis_server: str, simulator: ServerThread, tmp_path: Path
) -> Iterator[list[int]]:
    teams = tmp_path / "teams.yaml"
    key = hashlib.sha256(KEYS["busy"].encode()).hexdigest()
    teams.write_text(
        "teams:\n"
        "  - name: shared\n    tier: tier-5\n    budget_usd: 1.00\n    limits: {requests_per_minute: 37}\n"
        f"    keys: [{{name: k, sha256: {key}}}]\n"
    )
    started: list[tuple[subprocess.Popen[bytes], int]] = []
    try:
        for _ in range(3):
            started.append(_start_gateway_process(redis_server, teams, simulator))
        yield [port for _, port in started]
    finally:
        for proc, _ in started:
            proc.terminate()
        for proc, _ in started:
            proc.wait(timeout=20)


async def _fire(ports: list[int], n: int, body: dict[str, Any]) -> list[int]:
    limits = httpx.Limits(max_connections=n)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        calls = [
            client.post(
                f"http://127.0.0.1:{ports[i % len(ports)]}/v1/chat/completions",
                json=body,
                headers={"Authorization": f"Bearer {KEYS['busy']}"},
            )
            for i in range(n)
        ]
        return [r.status_code for r in await asyncio.gather(*calls)]


def test_three_gateways_on_one_redis_admit_the_limit_and_no_more(three_gateways: list[int]) -> None:
    # The per-minute limit is a token bucket refilling one request every 60/37 s. These processes'
    # clocks cannot be pinned, so a burst that a loaded host stretches past a refill period may
    # rightly admit one more per period elapsed: count them from the burst's own duration.
    started = time.monotonic()
    statuses = asyncio.run(
        _fire(three_gateways, 300, {"model": "gpt-4o-mini", "messages": HELLO, "max_tokens": 16})
    )
    refills = int((time.monotonic() - started) * 37 / 60)
    assert 37 <= statuses.count(200) <= 37 + refills
    assert statuses.count(200) + statuses.count(429) == 300


def test_three_gateways_never_spend_past_the_budget(
    three_gateways: list[int], store: redis.Redis
) -> None:
    # Each o1-mini call may cost up to ~$0.05 (4,000 completion tokens at $12/1M): a $1.00 budget
    # can hold about 20 at once. The rate limit (37/min) is not what stops them here.
    body = {"model": "o1-mini", "messages": HELLO, "max_completion_tokens": 4000}
    statuses = asyncio.run(_fire(three_gateways, 120, body))
    assert statuses.count(200) >= 1
    assert set(statuses) <= {200, 429}
    charged, held = spend(store, "shared")
    assert held == 0
    assert 0 < charged <= 1_000_000


# -- Redis unreachable ---------------------------------------------------------------------------


@pytest.mark.parametrize("budgets", ["closed", "open"])
def test_redis_down_rate_limits_fail_open_and_budgets_fail_closed(
    start_gateway: GatewayFactory, tmp_path: Path, budgets: str
) -> None:
    proc, url = start_redis_server(str(tmp_path))
    teams = tmp_path / "teams.yaml"
    teams.write_text(teams_yaml())
    try:
        server = start_gateway(
            redis={"url": url, "timeout_s": 0.3},
            admission={"teams_file": str(teams), "budgets_on_redis_error": budgets},
        )
        client = sdk(server, "busy")  # 2 requests per minute
        assert client.chat.completions.create(model="gpt-4o", messages=HELLO)  # type: ignore[arg-type]
    finally:
        proc.kill()
        proc.wait()
    ready = httpx.get(f"{server.url}/readyz")
    # Still in the load balancer (rate limits fail open), but it says Redis is away.
    assert ready.status_code == 200 and ready.json()["checks"]["redis"] is False
    if budgets == "closed":
        with pytest.raises(openai.InternalServerError) as info:
            client.chat.completions.create(model="gpt-4o", messages=HELLO)  # type: ignore[arg-type]
        assert info.value.status_code == 503 and info.value.code == "budget_store_unavailable"
        outcome = "fail_closed"
    else:
        # The in-process limiter takes over: this replica still enforces 2 per minute.
        client.chat.completions.create(model="gpt-4o", messages=HELLO)  # type: ignore[arg-type]
        client.chat.completions.create(model="gpt-4o", messages=HELLO)  # type: ignore[arg-type]
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model="gpt-4o", messages=HELLO)  # type: ignore[arg-type]
        outcome = "fail_open"
    metrics = scrape(server.url)
    assert f'gateway_admission_degraded_total{{outcome="{outcome}"}}' in metrics
