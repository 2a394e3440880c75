"""A reasoning model's reasoning items given back in a Responses input (an agent loop keeping
its own context, by the item's id or whole with its encrypted content), on a real
redis-server against the simulator's bill: upstream reads the reasoning each carries and bills
it as input, so the gateway holds it (the reasoning tokens of the response that made the item,
recorded when its usage was read; the model's whole context when it never was)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from gateway.admission.pricing import worst_case_micros
from tests.conftest import GatewayFactory, ServerThread, base_config
from tests.redis.admission.test_end_to_end import spend
from tests.redis.conftest import wait_for
from tests.redis.endpoints.teams import billed
from tests.redis.endpoints.test_cache_writes import client as sdk
from tests.redis.endpoints.test_cache_writes import serve
from tests.redis.endpoints.test_hosted_tools import held_while

MODEL = "gpt-6-luna"
TEAMS: dict[str, dict[str, str]] = {"metered": {"tier": "tier-5"}}
ASKED = "Plan the trip, then ask me one question."


@pytest.fixture
def gateway(
    start_gateway: GatewayFactory, redis_server: str, tmp_path: Path, simulator: ServerThread
) -> ServerThread:
    return serve(start_gateway, redis_server, tmp_path, simulator, TEAMS)


def first_turn(client: Any, **extra: Any) -> Any:
    answer = client.responses.create(
        model=MODEL, input=ASKED, reasoning={"effort": "high", "summary": "auto"},
        max_output_tokens=4_096, **extra,
    )  # fmt: skip
    assert answer.output[0].type == "reasoning"
    return answer


@pytest.mark.parametrize("kept", ["by id", "encrypted"])
def test_a_reasoning_item_given_back_is_held_as_the_reasoning_it_carries(
    gateway: ServerThread, simulator: ServerThread, store: redis.Redis, kept: str
) -> None:
    client = sdk(gateway, "metered")
    if kept == "by id":
        first = first_turn(client)
        reasoning: Any = {"type": "reasoning", "id": first.output[0].id, "summary": []}
    else:
        first = first_turn(client, store=False, include=["reasoning.encrypted_content"])
        reasoning = first.output[0].model_dump(exclude_none=True)
    said = first.output[-1].content[0].text
    given: Any = [
        {"role": "user", "content": ASKED}, reasoning,
        {"role": "assistant", "content": said}, {"role": "user", "content": "Paris, in May."},
    ]  # fmt: skip
    httpx.delete(f"{simulator.url}/_sim/bill")
    before, held = spend(store, "metered")
    assert held == 0  # the first turn's hold settled
    holding, second = held_while(store, "metered", lambda: client.responses.create(
        model=MODEL, input=given, max_output_tokens=16,
        extra_headers={"x-sim-latency-ms": "1500"},
    ))  # fmt: skip
    reasoned = first.usage.output_tokens_details.reasoning_tokens
    assert second.usage.input_tokens > reasoned > 0  # upstream read the reasoning
    bill = billed(simulator)
    assert spend(store, "metered")[0] - before == bill
    assert bill <= holding


def test_a_reasoning_item_whose_usage_was_never_read_holds_the_whole_context(
    gateway: ServerThread, simulator: ServerThread, store: redis.Redis
) -> None:
    """Its response's usage never reached the gateway (a stream cut short, a background one
    never read): what the item carries is unknown, so the model's context is held."""
    client = sdk(gateway, "metered")
    first = first_turn(client)
    recorded = f"o1gw:response-reasoning:{{t:metered}}:{first.output[0].id}"
    wait_for(lambda: store.exists(recorded) == 1, "the reasoning tokens recorded")
    store.delete(recorded)  # as if never recorded
    assert spend(store, "metered")[1] == 0  # the first turn's hold settled
    given: Any = [
        {"role": "user", "content": ASKED},
        {"type": "reasoning", "id": first.output[0].id, "summary": []},
        {"role": "user", "content": "Paris, in May."},
    ]
    holding, _ = held_while(store, "metered", lambda: client.responses.create(
        model=MODEL, input=given, max_output_tokens=16,
        extra_headers={"x-sim-latency-ms": "1500"},
    ))  # fmt: skip
    model = base_config().models[MODEL]
    assert holding >= worst_case_micros(model.price, model.context, 16)
