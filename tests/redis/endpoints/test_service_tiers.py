"""`service_tier` on a real redis-server, through the official SDK: OpenAI bills priority
processing at twice the standard price and flex at half, so a request naming a tier is held
at that tier's price (`admission.service_tiers`) and charged at the price of the tier its
answer says served it, which is what upstream bills; one naming none (`auto`, the project's
default) is held at `auto`'s price; a tier without a price is refused before upstream."""

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
# served, dearer than asked for too (a request naming none, served at a project's priority).
SERVED = [
    ("priority", "default", 100), ("priority", "flex", 50), ("flex", "priority", 200),
    (None, "priority", 200), (None, "flex", 50),
]  # fmt: skip


def asking(tier: str | None) -> dict[str, Any]:
    """A call's arguments naming `tier` (None: naming none)."""
    return {} if tier is None else {"service_tier": tier}


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("asked", "served", "percent"), SERVED)
def test_a_chat_call_is_charged_at_the_tier_that_served_it(
    gateway: ServerThread, simulator: ServerThread, store: redis.Redis,
    asked: str | None, served: str, percent: int, stream: bool,
) -> None:  # fmt: skip
    before = billed(simulator)
    client = sdk(gateway, "metered")
    knob = {"x-sim-service-tier": served}
    if stream:
        streamed = client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, extra_headers=knob, **asking(asked),
            stream=True, stream_options={"include_usage": True},
        )  # fmt: skip
        chunks = list(streamed)
        reported, usage = chunks[-1].service_tier, chunks[-1].usage
    else:
        answer = client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, extra_headers=knob, **asking(asked)
        )
        reported, usage = answer.service_tier, answer.usage
    assert reported == served and usage is not None
    used = usage.prompt_tokens, usage.completion_tokens
    assert spend(store, "metered") == (tier_cost(*used, percent), 0)
    assert billed(simulator) - before == tier_cost(*used, percent)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("asked", "served", "percent"), SERVED)
def test_a_responses_call_is_charged_at_the_tier_that_served_it(
    gateway: ServerThread, simulator: ServerThread, store: redis.Redis,
    asked: str | None, served: str, percent: int, stream: bool,
) -> None:  # fmt: skip
    before = billed(simulator)
    client = sdk(gateway, "metered")
    knob = {"x-sim-service-tier": served}
    if stream:
        with client.responses.stream(
            model="gpt-4o", input="Tell me about tiers.", extra_headers=knob, **asking(asked)
        ) as events:
            answer = events.get_final_response()
    else:
        answer = client.responses.create(
            model="gpt-4o", input="Tell me about tiers.", extra_headers=knob, **asking(asked)
        )
    assert answer.service_tier == served and answer.usage is not None
    used = answer.usage.input_tokens, answer.usage.output_tokens
    assert spend(store, "metered") == (tier_cost(*used, percent), 0)
    assert billed(simulator) - before == tier_cost(*used, percent)


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


@pytest.mark.parametrize(
    ("asked", "served", "percent"),
    [("priority", "default", 100), ("priority", "priority", 200), (None, "priority", 200)],
)
def test_a_background_response_is_charged_at_the_tier_that_served_it(
    start_gateway: GatewayFactory, redis_server: str, tmp_path: Path, store: redis.Redis,
    asked: str | None, served: str, percent: int,
) -> None:  # fmt: skip
    """Its usage comes later, to the follower: a priority response upstream served at the
    standard tier is charged the standard price, as a call answered at once is."""
    gateway = serve_teams(start_gateway, redis_server, tmp_path, TEAMS, responses={"poll_s": 0.2})
    client = sdk(gateway, "metered")
    queued = client.responses.create(
        model="gpt-4o", input="Tell me about tiers.", background=True,
        extra_headers={"x-sim-service-tier": served}, **asking(asked),
    )  # fmt: skip
    assert queued.usage is None
    spent, held = spend(store, "metered")  # waits for the follower to settle the hold
    done = client.responses.retrieve(queued.id)
    assert done.service_tier == served and done.usage is not None
    used = done.usage.input_tokens, done.usage.output_tokens
    assert (spent, held) == (tier_cost(*used, percent), 0)


def test_a_budget_is_not_passed_when_auto_is_priced_as_the_projects_priority(
    start_gateway: GatewayFactory, redis_server: str, tmp_path: Path, simulator: ServerThread,
    store: redis.Redis,
) -> None:  # fmt: skip
    """An upstream project on priority processing serves a request naming no tier at priority
    and bills it so: with `auto` priced as priority, each call is held at that and charged
    what upstream billed, and the calls a budget admits never take it past that budget."""
    tiers = {"auto": 200, "default": 100, "flex": 50, "priority": 200}
    gateway = serve_teams(
        start_gateway, redis_server, tmp_path, TEAMS, admission={"service_tiers": tiers}
    )
    client = sdk(gateway, "cent")
    knob = {"x-sim-service-tier": "priority"}
    with pytest.raises(openai.RateLimitError) as info:  # twice the standard worst case: $0.02
        client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, max_completion_tokens=CAP, extra_headers=knob
        )
    assert info.value.code == "request_over_budget"
    before, calls = billed(simulator), 0
    while True:
        try:
            client.chat.completions.create(
                model="gpt-4o", messages=MESSAGES, max_completion_tokens=CAP // 4,
                extra_headers=knob,
            )  # fmt: skip
        except openai.RateLimitError as refused:
            assert refused.code == "request_over_budget"
            break
        calls += 1
    spent, held = spend(store, "cent")
    assert calls and held == 0
    assert spent == billed(simulator) - before <= 15_000


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("served", ["default", "priority"])
def test_a_translated_responses_call_is_charged_at_the_tier_that_served_it(
    gateway: ServerThread, simulator: ServerThread, store: redis.Redis, served: str, stream: bool
) -> None:
    """o1-mini serves no Responses API: the gateway asks it on chat completions, naming no
    tier (`auto`); a project on priority processing serves it there at priority, bills so, and
    the Response the gateway makes of the chat answer says so."""
    before = billed(simulator)
    client = sdk(gateway, "metered")
    asked: Any = {"model": "o1-mini", "input": "Tell me about tiers."}
    knob = {"x-sim-service-tier": served}
    if stream:
        with client.responses.stream(**asked, extra_headers=knob) as events:
            opened = [event.response for event in events if event.type == "response.created"]
            answer = events.get_final_response()
        # Sent before upstream answers: the tier asked for, as OpenAI's own stream opens.
        assert [response.service_tier for response in opened] == ["auto"]
    else:
        answer = client.responses.create(**asked, extra_headers=knob)
    assert answer.service_tier == served and answer.usage is not None
    bill = billed(simulator) - before
    assert bill > 0 and spend(store, "metered") == (bill, 0)
    assert client.responses.retrieve(answer.id).service_tier == served  # as it was stored
