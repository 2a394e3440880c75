"""A served request leaves no reference cycles among the gateway's objects: everything it made is
freed when its last reference goes, not by a later garbage collection. A cycle per request shows
up as a gateway that grows and spends more CPU the longer it serves."""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.app import create_app
from tests.conftest import CLIENT_KEY, SIM_KEY, ServerThread, base_config

AUTH = {"authorization": f"Bearer {CLIENT_KEY}"}
ROUNDS = 20


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def saved_garbage() -> Iterator[list[object]]:
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield gc.garbage
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def gateway_objects(garbage: list[object]) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for thing in garbage:
        kind = type(thing)
        if kind.__module__.startswith("gateway."):
            name = f"{kind.__module__}.{kind.__qualname__}"
            kinds[name] = kinds.get(name, 0) + 1
    return kinds


@pytest.mark.anyio
@pytest.mark.parametrize(
    "body",
    [
        {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
        {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
        {"model": "auto", "messages": [{"role": "user", "content": "hi"}]},
    ],
    ids=["plain", "stream", "routed"],
)
async def test_requests_leave_no_cycles_of_gateway_objects(
    simulator: ServerThread,
    redis_server: str,
    teams_file: Path,
    body: dict[str, object],
    saved_garbage: list[object],
) -> None:
    # A real Redis: the pipelined admission client and the early upstream call are in play.
    config = base_config(
        OPENAI_BASE_URL=f"{simulator.url}/v1", OPENAI_API_KEY=SIM_KEY, REDIS_URL=redis_server
    )
    config = dataclasses.replace(
        config,
        admission=dataclasses.replace(config.admission, teams_file=str(teams_file)),
    )
    app = create_app(config)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            # The first requests open the Redis and upstream connections and load the admission
            # script, once each.
            for _ in range(3):
                await client.post("/v1/chat/completions", json=body, headers=AUTH)
            app.state.gateway.run_later()
            await app.state.gateway.admission.drain(5)
            gc.collect()
            saved_garbage.clear()
            for _ in range(ROUNDS):
                response = await client.post("/v1/chat/completions", json=body, headers=AUTH)
                assert response.status_code == 200, response.text
            app.state.gateway.run_later()  # the after-response bookkeeping, now
            await app.state.gateway.admission.drain(5)
            gc.collect()
            # A cycle per request leaves ROUNDS of its objects; a one-off (the NOSCRIPT error
            # that loading the script answers, an earlier test's app) leaves one or two.
            assert {kind: n for kind, n in gateway_objects(saved_garbage).items() if n >= 3} == {}
