"""`service_tier` on a real redis-server, through the official SDK: OpenAI bills priority
processing at twice the standard price and flex at half, so a request naming a tier is held
at that tier's price (`admission.service_tiers`) and charged at the price of the tier its
answer says served it, never more than held; a tier without a price is refused before
upstream."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import redis

from gateway.admission.pricing import cost_micros, worst_case_micros
from gateway.wire import tokens
from gateway.wire.usage import Usage
from tests.conftest import GatewayFactory, ServerThread
from tests.redis.admission.test_end_to_end import spend
from tests.redis.endpoints.teams import billed, sdk, serve_teams
from tests.redis.endpoints.test_responses import PRICES

MESSAGES: Any = [{"role": "user", "content": "Tell me about tiers."}]
CAP = 1_000
# Covers a gpt-4o call of `CAP` tokens at the standard price (about $0.0100), not at priority's.
TEAMS: dict[str, dict[str, str]] = {
    "metered": {"tier": "tier-5"},
    "cent": {"tier": "tier-5", "budget_usd": "0.015"},
}


@pytest.fixture
def gateway(start_gateway: GatewayFactory, redis_server: str, tmp_path: Path) -> ServerThread:
    return serve_teams(start_gateway, redis_server, tmp_path, TEAMS)


def tier_cost(prompt: int, completion: int, percent: int) -> int:
    """A gpt-4o call's cost at `percent` of each standard price (rounded up)."""
    standard = PRICES["gpt-4o"]
    tier = type(standard)(
        input=-(-standard.input * percent // 100),
        cached_input=-(-standard.cached_input * percent // 100),
        output=-(-standard.output * percent // 100),
    )
    return cost_micros(tier, Usage(prompt, completion))


@pytest.mark.parametrize(("tier", "percent"), [("priority", 200), ("flex", 50), ("default", 100)])
def test_a_chat_call_is_charged_at_its_tiers_price(
    gateway: ServerThread, simulator: ServerThread, store: redis.Redis, tier: str, percent: int
) -> None:
    before = billed(simulator)
    answer = sdk(gateway, "metered").chat.completions.create(
        model="gpt-4o", messages=MESSAGES, service_tier=tier,  # type: ignore[arg-type]
    )  # fmt: skip
    assert answer.usage is not None
    used = answer.usage.prompt_tokens, answer.usage.completion_tokens
    assert spend(store, "metered") == (tier_cost(*used, percent), 0)
    # The simulated upstream bills the tier its answer says served it: the same.
    assert billed(simulator) - before == tier_cost(*used, percent)


# (tier asked for, tier the answer says served it, percent charged): OpenAI bills the tier that
# served; one dearer than asked for is still charged no more than was held.
SERVED = [("priority", "default", 100), ("priority", "flex", 50), ("flex", "priority", 50)]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("asked", "served", "percent"), SERVED)
def test_a_chat_call_is_charged_at_the_tier_that_served_it(
    gateway: ServerThread, store: redis.Redis, asked: Any, served: str, percent: int, stream: bool
) -> None:
    client = sdk(gateway, "metered")
    knob = {"x-sim-service-tier": served}
    if stream:
        streamed = client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, service_tier=asked, extra_headers=knob,
            stream=True, stream_options={"include_usage": True},
        )  # fmt: skip
        chunks = list(streamed)
        reported, usage = chunks[-1].service_tier, chunks[-1].usage
    else:
        answer = client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, service_tier=asked, extra_headers=knob
        )
        reported, usage = answer.service_tier, answer.usage
    assert reported == served and usage is not None
    used = usage.prompt_tokens, usage.completion_tokens
    assert spend(store, "metered") == (tier_cost(*used, percent), 0)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("asked", "served", "percent"), SERVED)
def test_a_responses_call_is_charged_at_the_tier_that_served_it(
    gateway: ServerThread, store: redis.Redis, asked: Any, served: str, percent: int, stream: bool
) -> None:
    client = sdk(gateway, "metered")
    knob = {"x-sim-service-tier": served}
    if stream:
        with client.responses.stream(
            model="gpt-4o", input="Tell me about tiers.", service_tier=asked, extra_headers=knob
        ) as events:
            answer = events.get_final_response()
    else:
        answer = client.responses.create(
            model="gpt-4o", input="Tell me about tiers.", service_tier=asked, extra_headers=knob
        )
    assert answer.service_tier == served and answer.usage is not None
    used = answer.usage.input_tokens, answer.usage.output_tokens
    assert spend(store, "metered") == (tier_cost(*used, percent), 0)


def test_priority_holds_twice_the_worst_case(gateway: ServerThread, store: redis.Redis) -> None:
    """$0.015 covers the standard worst case (about $0.0100), not priority's (about $0.0200)."""
    prompt = tokens.count_messages(MESSAGES)
    assert worst_case_micros(PRICES["gpt-4o"], prompt, CAP) < 15_000
    client = sdk(gateway, "cent")
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, max_completion_tokens=CAP, service_tier="priority"
        )
    assert info.value.code == "request_over_budget"
    assert spend(store, "cent") == (0, 0)
    assert client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, max_completion_tokens=CAP
    ).choices


def test_a_responses_call_is_charged_at_its_tiers_price(
    gateway: ServerThread, store: redis.Redis
) -> None:
    answer = sdk(gateway, "metered").responses.create(
        model="gpt-4o", input="Tell me about tiers.", service_tier="priority"
    )
    assert answer.usage is not None
    used = answer.usage.input_tokens, answer.usage.output_tokens
    assert spend(store, "metered") == (tier_cost(*used, 200), 0)


def test_a_tier_without_a_price_is_refused_before_upstream(
    gateway: ServerThread, simulator: ServerThread, store: redis.Redis
) -> None:
    before = httpx.get(f"{simulator.url}/_sim/requests").json()["data"]
    client = sdk(gateway, "metered")
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="gpt-4o",
            messages=MESSAGES,
            service_tier="scale",  # type: ignore[arg-type]
        )
    assert (info.value.code, info.value.param) == ("invalid_value", "service_tier")
    assert "'priority'" in info.value.message
    with pytest.raises(openai.BadRequestError) as responses:
        client.responses.create(model="gpt-4o", input="Hi.", service_tier="scale")  # type: ignore[arg-type]
    assert responses.value.param == "service_tier"
    assert httpx.get(f"{simulator.url}/_sim/requests").json()["data"] == before
    assert spend(store, "metered") == (0, 0)


@pytest.mark.parametrize(("served", "percent"), [("default", 100), ("priority", 200)])
def test_a_background_response_is_charged_at_the_tier_that_served_it(
    start_gateway: GatewayFactory, redis_server: str, tmp_path: Path, store: redis.Redis,
    served: str, percent: int,
) -> None:  # fmt: skip
    """Its usage comes later, to the follower: a priority response upstream served at the
    standard tier is charged the standard price, as a call answered at once is."""
    gateway = serve_teams(start_gateway, redis_server, tmp_path, TEAMS, responses={"poll_s": 0.2})
    client = sdk(gateway, "metered")
    queued = client.responses.create(
        model="gpt-4o", input="Tell me about tiers.", background=True, service_tier="priority",
        extra_headers={"x-sim-service-tier": served},
    )  # fmt: skip
    assert queued.usage is None
    spent, held = spend(store, "metered")  # waits for the follower to settle the hold
    done = client.responses.retrieve(queued.id)
    assert done.service_tier == served and done.usage is not None
    used = done.usage.input_tokens, done.usage.output_tokens
    assert (spent, held) == (tier_cost(*used, percent), 0)
