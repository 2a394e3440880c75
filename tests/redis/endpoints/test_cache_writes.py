"""Prompt-cache writes: the newest models bill the prompt tokens they write to the prompt cache
at 1.25 times input (usage `cache_write_tokens`). A team is charged what upstream bills for
them, on chat and the Responses API, streamed or not; and the hold covers them, so a team is
never charged past its budget."""

from __future__ import annotations

import contextlib
import io
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
import redis

from gateway.admission.pricing import chat_prompt, worst_case_micros
from gateway.config import Config, Price, SimulatorConfig
from gateway.simulator import create_simulator
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
    return serve_teams(
        start_gateway, redis_server, tmp_path, teams, config=config, batches={"poll_s": 0.2}
    )


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


def test_a_call_writing_the_cache_is_never_charged_past_the_budget(
    start_gateway: GatewayFactory,
    redis_server: str,
    tmp_path: Path,
    simulator: ServerThread,
    store: redis.Redis,
) -> None:
    config = today_config(simulator)
    messages: Any = [{"role": "user", "content": prompt()}]
    payload = {"model": MODEL, "messages": messages, "max_completion_tokens": CAP}
    model = config.models[MODEL]
    # The budget holds the call's worst case were every prompt token billed at the input price.
    budget = worst_case_micros(
        Price(input=model.price.input, output=model.price.output),
        chat_prompt(payload, model),
        CAP,
    )
    teams = {"snug": {"tier": "tier-5", "budget_usd": f"{budget / 1_000_000:.6f}"}}
    gateway = serve(start_gateway, redis_server, tmp_path, simulator, teams)
    long_answer = {"x-sim-answer": " ".join(["word"] * 200)}  # the answer fills its cap
    with contextlib.suppress(openai.RateLimitError):  # refused: its worst case does not fit
        client(gateway, "snug").chat.completions.create(
            model=MODEL, messages=messages, max_completion_tokens=CAP, extra_headers=long_answer
        )
    assert spend(store, "snug")[0] <= budget


@pytest.fixture(scope="module")
def upstream_today() -> Iterator[ServerThread]:
    """A simulated upstream whose calendar is today's: batch lines are answered on its day."""
    with ServerThread(create_simulator(SimulatorConfig(today=TODAY))) as server:
        yield server


def test_a_batch_whose_lines_write_the_cache_is_charged_what_upstream_bills(
    start_gateway: GatewayFactory,
    redis_server: str,
    tmp_path: Path,
    upstream_today: ServerThread,
    store: redis.Redis,
) -> None:
    gateway = serve(
        start_gateway, redis_server, tmp_path, upstream_today, {"payer": {"tier": "tier-5"}}
    )
    gateway_client = client(gateway, "payer")
    rows = [
        {
            "custom_id": f"r{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": MODEL, "messages": [{"role": "user", "content": prompt()}]},
        }
        for i in range(3)
    ]
    data = b"\n".join(orjson.dumps(row) for row in rows)
    file_id = gateway_client.files.create(file=("in.jsonl", io.BytesIO(data)), purpose="batch").id
    gateway_client.batches.create(
        input_file_id=file_id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        extra_headers={"x-sim-batch": "complete"},
    )
    deadline = time.monotonic() + 10
    while spend(store, "payer")[0] == 0:
        assert time.monotonic() < deadline, "the batch was never charged"
        time.sleep(0.1)
    bill = httpx.get(f"{upstream_today.url}/_sim/bill").json()["by_key"][SIM_KEY]
    (line,) = [line for line in bill["lines"] if line["endpoint"] == "/v1/batches"]
    assert line["detail"]["cache_write_tokens"] > 0
    assert spend(store, "payer") == (billed(upstream_today), 0)
