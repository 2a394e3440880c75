"""Prompt-cache writes: the newest models bill the prompt tokens they write to the prompt cache
at 1.25 times input (usage `cache_write_tokens`). A team is charged what upstream bills for
them, on chat and the Responses API, streamed or not; and the hold covers them, so a team is
never charged past its budget."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest
import redis

from gateway.config import Config
from tests.conftest import SIM_KEY, GatewayFactory, ServerThread, base_config
from tests.redis.admission.test_end_to_end import spend
from tests.redis.endpoints.teams import billed, key_of, serve_teams

TODAY = "2026-12-05"
MODEL = "gpt-6-luna"  # input $0.10, cache write $0.125 per 1M
CAP = 16


def prompt() -> str:
    """A prompt the simulated prompt cache has not seen, long enough to be written to it."""
    return f"{uuid.uuid4()} " + "alpha " * 1500


def client(server: ServerThread, team: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{server.url}/v1",
        api_key=key_of(team),
        max_retries=0,
        default_headers={"x-sim-today": TODAY},
    )


def today_config(simulator: ServerThread) -> Config:
    return base_config(
        OPENAI_BASE_URL=f"{simulator.url}/v1", OPENAI_API_KEY=SIM_KEY, O1GW__RETIREMENT__TODAY=TODAY
    )


def serve(
    start_gateway: GatewayFactory,
    redis_server: str,
    tmp_path: Path,
    simulator: ServerThread,
    teams: dict[str, Any],
) -> ServerThread:
    config = today_config(simulator)
    return serve_teams(start_gateway, redis_server, tmp_path, teams, config=config)


CALLS: dict[str, Callable[[openai.OpenAI], object]] = {
    "chat": lambda c: c.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": prompt()}]
    ),
    "chat stream": lambda c: list(
        c.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": prompt()}], stream=True
        )
    ),
    "responses": lambda c: c.responses.create(model=MODEL, input=prompt()),
    "responses stream": lambda c: list(
        c.responses.create(model=MODEL, input=prompt(), stream=True)
    ),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_cache_writes_are_charged_what_upstream_bills(
    start_gateway: GatewayFactory,
    redis_server: str,
    tmp_path: Path,
    simulator: ServerThread,
    store: redis.Redis,
    name: str,
) -> None:
    gateway = serve(start_gateway, redis_server, tmp_path, simulator, {"payer": {"tier": "tier-5"}})
    before = billed(simulator), spend(store, "payer")[0]
    CALLS[name](client(gateway, "payer"))
    after = billed(simulator), spend(store, "payer")[0]
    assert after[0] > before[0]
    assert after[1] - before[1] == after[0] - before[0]
