"""Streamed answers whose body never began (the request's task cancelled after upstream's
headers, while the response's own headers are written: at shutdown, or on a full socket buffer),
and relays broken by the gateway's own bug: an in-process gateway on a real redis-server, the
simulated upstream on a real socket. Whatever ends the response, its hold is settled, its cache
flight ended and its client told."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis

from gateway.app import create_app
from gateway.cache.key import cache_key, scope
from gateway.cache.store import lock_key
from gateway.config import Config
from gateway.wire.usage import StreamMeter
from tests.conftest import SIM_KEY, ServerThread, base_config, cut_at_its_headers
from tests.redis.admission.test_end_to_end import spend
from tests.redis.endpoints.teams import key_of, teams_yaml

TEAM = "unbegun"
MESSAGES = [{"role": "user", "content": "Say hello to the gateway, please."}]
# The faked stream's 200 goes out before its upstream answers (o1-mini thinks 300 ms).
GRACE = {"status_grace_s": 0.05, "keepalive_s": 0.05}


def config(simulator: ServerThread, redis_server: str, tmp_path: Path) -> Config:
    teams = tmp_path / "teams.yaml"
    teams.write_text(teams_yaml({TEAM: {"tier": "tier-5", "cache": "true"}}))
    shipped = base_config(
        OPENAI_BASE_URL=f"{simulator.url}/v1", OPENAI_API_KEY=SIM_KEY, REDIS_URL=redis_server
    )
    return dataclasses.replace(
        shipped,
        admission=dataclasses.replace(shipped.admission, teams_file=str(teams)),
        upstream=dataclasses.replace(shipped.upstream, forward_header_prefixes=("x-sim-",)),
        compat=dataclasses.replace(shipped.compat, **GRACE),
    )


async def held_until(store: redis.Redis, gone: float) -> tuple[int, int]:
    """(spend, held) of the team once its hold is settled, or as they are after `gone` s."""
    deadline = time.monotonic() + gone
    while True:
        spent, held = await asyncio.to_thread(spend, store, TEAM)
        if held == 0 or time.monotonic() > deadline:
            return spent, held
        await asyncio.sleep(0.05)


@pytest.fixture
def store(redis_server: str) -> redis.Redis:
    return redis.Redis.from_url(redis_server)


@pytest.mark.anyio
async def test_a_faked_stream_cut_before_its_body_is_charged_when_its_answer_comes(
    simulator: ServerThread, redis_server: str, tmp_path: Path, store: redis.Redis
) -> None:
    app = create_app(config(simulator, redis_server, tmp_path))
    async with app.router.lifespan_context(app):
        body = {"model": "o1-mini", "stream": True, "messages": MESSAGES}
        await cut_at_its_headers(app, body, key_of(TEAM), **{"x-sim-latency-ms": "300"})
        # Upstream still answers, and bills, the whole answer: charged as it comes (not
        # left held until the hold expires).
        spent, held = await held_until(store, 10)
        assert held == 0
        assert spent > 0


@pytest.mark.anyio
async def test_a_cached_stream_cut_before_its_body_ends_its_flight(
    simulator: ServerThread, redis_server: str, tmp_path: Path, store: redis.Redis
) -> None:
    app = create_app(config(simulator, redis_server, tmp_path))
    async with app.router.lifespan_context(app):
        prompt = [{"role": "user", "content": f"Say hello, unbegun ({time.time_ns()})."}]
        body = {"model": "gpt-4o", "stream": True, "messages": prompt}
        await cut_at_its_headers(app, body, key_of(TEAM), **{"x-gateway-cache": "on"})
        gw = app.state.gateway
        upstream = gw.config.models["gpt-4o"].upstream
        key = cache_key("chat", "gpt-4o", upstream, scope(TEAM, False, False), body, {})
        # The flight ended: its waiters here are told, and its lock tells the other replicas.
        assert all(flight.future.done() for flight in gw.cache._flights.values())
        for _ in range(100):
            if store.get(lock_key(key)) in (None, b"done"):
                break
            await asyncio.sleep(0.05)
        assert store.get(lock_key(key)) in (None, b"done")
        # An identical request calls upstream itself at once (not after `coalesce_wait_s`).
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            answer = await asyncio.wait_for(
                client.post(
                    "/v1/chat/completions",
                    json=body,
                    headers={"authorization": f"Bearer {key_of(TEAM)}", "x-gateway-cache": "on"},
                ),
                10,
            )
        assert answer.status_code == 200
        assert answer.headers["x-gateway-cache"] == "miss"


class Bug(Exception):
    pass


@pytest.mark.anyio
@pytest.mark.parametrize("where", ["feed", "generated_usage"])
async def test_a_relay_broken_by_a_bug_ends_in_an_error_event_and_settles_its_hold(
    simulator: ServerThread,
    redis_server: str,
    tmp_path: Path,
    store: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    where: str,
) -> None:
    """A bug in the stream's meter: as it reads a chunk (mid-way), or as it counts what was
    generated (at the usage chunk, and again when the relay charges it in its `finally`)."""
    calls = 0
    method = getattr(StreamMeter, where)

    def broken(self: StreamMeter, *args: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls >= 3 or where != "feed":
            raise Bug(f"a bug in the meter's {where}")
        return method(self, *args)

    monkeypatch.setattr(StreamMeter, where, broken)
    shipped = config(simulator, redis_server, tmp_path)
    app = create_app(
        dataclasses.replace(
            shipped,
            upstream=dataclasses.replace(
                shipped.upstream, breaker_failures=1, breaker_cooldown_s=0.01
            ),
        )
    )
    async with app.router.lifespan_context(app):
        gw = app.state.gateway
        (target,) = gw.dispatch.targets("gpt-4o")
        target.breaker.failure(time.perf_counter())  # open: the next call after the cooldown
        await asyncio.sleep(0.02)  # probes it
        # As a server would, the client is not raised the app's exception: it sees the stream.
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            events: list[bytes] = []

            async def read() -> None:
                async with client.stream(
                    "POST",
                    "/v1/chat/completions",
                    json={"model": "gpt-4o", "stream": True, "messages": MESSAGES},
                    headers={
                        "authorization": f"Bearer {key_of(TEAM)}",
                        "x-sim-chunk-interval-ms": "5",
                    },
                ) as answer:
                    assert answer.status_code == 200
                    events.extend([line async for line in lines(answer)])

            await asyncio.wait_for(read(), 10)
        # The client is told the stream broke, not cut off silently.
        last = orjson.loads(events[-1].removeprefix(b"data: "))
        assert last["error"]["type"] == "server_error"
        # The gateway's bug says nothing of the deployment's health: not a success that closes
        # its breaker; the probe is freed for the next call.
        assert target.breaker.state == "half_open"
        assert gw.dispatch.available("gpt-4o")
        spent, held = await held_until(store, 5)
        assert held == 0
        assert spent > 0


async def lines(answer: httpx.Response) -> AsyncIterator[bytes]:
    async for line in answer.aiter_lines():
        if line.startswith("data: "):
            yield line.encode()
