"""Prompt-cache writes: the models with a cache-write price report the cacheable part of a
prompt the cache did not serve (`cache_write_tokens`), on chat and the Responses API, streamed
or not, and the bill prices them at 1.25 times input; older models report none."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from gateway.config import SimulatorConfig
from gateway.simulator import create_simulator
from gateway.simulator.bill import tokens_charge
from gateway.simulator.prompt_cache import written_tokens
from gateway.wire import sse

AUTH = {"authorization": "Bearer sk-simulated-upstream", "x-sim-today": "2026-12-01"}
LONG = "alpha " * 1500

pytestmark = pytest.mark.anyio


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_simulator(SimulatorConfig(), seed=1)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as c:
        yield c


def test_written_tokens_are_the_cacheable_part_not_served() -> None:
    assert written_tokens(1000, 0) == 0  # below the 1,024 minimum: nothing is cached
    assert written_tokens(1500, 0) == 1408
    assert written_tokens(1500, 1408) == 0
    assert written_tokens(3000, 1408) == 2944 - 1408


def test_the_bill_prices_writes_at_their_price() -> None:
    # gpt-6-luna: input $0.10, cache write $0.125, output $0.50 per 1M.
    charge = tokens_charge("/v1/chat/completions", "gpt-6-luna", 2000, 10, cache_write_tokens=1920)
    assert charge.micros == -(-(80 * 100_000 + 1920 * 125_000 + 10 * 500_000) // 1_000_000)
    assert charge.detail["cache_write_tokens"] == 1920


async def _chat_usage(client: httpx.AsyncClient, model: str, text: str, stream: bool) -> Any:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": text}]}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    resp = await client.post("/v1/chat/completions", json=body, headers=AUTH)
    assert resp.status_code == 200, resp.text
    if not stream:
        return resp.json()["usage"]
    events = [orjson.loads(e) for e in sse.events(resp.content) if e != b"[DONE]"]
    return events[-1]["usage"]


async def _responses_usage(client: httpx.AsyncClient, text: str, stream: bool) -> Any:
    body = {"model": "gpt-6-luna", "input": text, "stream": stream}
    resp = await client.post("/v1/responses", json=body, headers=AUTH)
    assert resp.status_code == 200, resp.text
    if not stream:
        return resp.json()["usage"]
    events = [orjson.loads(e) for e in sse.events(resp.content)]
    return events[-1]["response"]["usage"]


@pytest.mark.parametrize("stream", [False, True])
async def test_chat_reports_writes_then_reads(client: httpx.AsyncClient, stream: bool) -> None:
    first = await _chat_usage(client, "gpt-6-luna", LONG, stream)
    prompt = first["prompt_tokens"]
    assert first["prompt_tokens_details"] == {
        "cached_tokens": 0,
        "cache_write_tokens": prompt // 128 * 128,
    }
    again = await _chat_usage(client, "gpt-6-luna", LONG, stream)
    assert again["prompt_tokens_details"]["cache_write_tokens"] == 0
    assert again["prompt_tokens_details"]["cached_tokens"] == prompt // 128 * 128
    bill = (await client.get("/_sim/bill")).json()
    (line,) = bill["by_key"]["sk-simulated-upstream"]["lines"]
    assert line["detail"]["cache_write_tokens"] == prompt // 128 * 128


@pytest.mark.parametrize("stream", [False, True])
async def test_responses_report_writes(client: httpx.AsyncClient, stream: bool) -> None:
    usage = await _responses_usage(client, LONG, stream)
    details = usage["input_tokens_details"]
    assert details["cache_write_tokens"] == usage["input_tokens"] // 128 * 128 > 0


async def test_models_without_a_write_price_report_none(client: httpx.AsyncClient) -> None:
    usage = await _chat_usage(client, "gpt-4o", LONG, False)
    assert usage["prompt_tokens_details"] == {"cached_tokens": 0}
