"""A caller at the edge of its budget, through the openai SDK against a gateway on a real
redis-server: its own answered or abandoned calls never refuse its next request, and a refusal
says what is left and which completion cap would fit."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import openai
import pytest
import redis

from gateway.admission.pricing import cost_micros, largest_completion_cap, worst_case_micros
from gateway.wire import tokens
from gateway.wire.usage import Usage
from tests.conftest import GatewayFactory, ServerThread
from tests.redis.admission.test_end_to_end import GPT_4O, HELLO, gateway_with, month, spend

KEY = "sk-gw-edge-0123456789abcdef"
# $0.02: one gpt-4o call capped at 1,000 completion tokens (a worst case of about $0.01) fits,
# two at once do not. Every call below holds that worst case.
BUDGET = 20_000
CAP = 1_000
PROMPT = tokens.count_messages(HELLO)
WORST = worst_case_micros(GPT_4O, PROMPT, CAP)
SHORT = {"x-sim-answer": "Hello, gateway."}


@pytest.fixture
def gateway(redis_server: str, start_gateway: GatewayFactory, tmp_path: Path) -> ServerThread:
    # Redis first: it then outlives the gateway, whose last settles land at its shutdown.
    assert WORST <= BUDGET < 2 * WORST
    digest = hashlib.sha256(KEY.encode()).hexdigest()
    path = tmp_path / "teams.yaml"
    path.write_text(
        "teams:\n  - name: edge\n    tier: tier-5\n    budget_usd: 0.02\n"
        f"    keys: [{{name: k, sha256: {digest}}}]\n"
    )
    return gateway_with(start_gateway, redis_server, path)


@pytest.fixture
def store(redis_server: str) -> redis.Redis:
    return redis.Redis.from_url(redis_server)


def sdk(gateway: ServerThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=KEY, max_retries=0)


def test_a_sequential_client_at_its_budget_edge_is_never_refused_by_its_own_answers(
    gateway: ServerThread, store: redis.Redis
) -> None:
    # Back to back, each request sent as soon as the previous answer is read: each admission
    # fits only if the previous call's hold is settled by then. Whole answers and streams.
    client = sdk(gateway)
    charged = 0
    for i in range(16):
        if i % 2:
            chunks = list(
                client.chat.completions.create(
                    model="gpt-4o", messages=HELLO, max_completion_tokens=CAP,  # type: ignore[arg-type]
                    stream=True, stream_options={"include_usage": True}, extra_headers=SHORT,
                )
            )  # fmt: skip
            usage = chunks[-1].usage
        else:
            usage = client.chat.completions.create(
                model="gpt-4o", messages=HELLO, max_completion_tokens=CAP,  # type: ignore[arg-type]
                extra_headers=SHORT,
            ).usage  # fmt: skip
        assert usage is not None
        charged += cost_micros(GPT_4O, Usage(usage.prompt_tokens, usage.completion_tokens))
    assert charged + WORST <= BUDGET  # the budget itself never was the limit
    assert spend(store, "edge") == (charged, 0)


def test_an_abandoned_streams_hold_does_not_refuse_the_next_request(
    gateway: ServerThread, store: redis.Redis
) -> None:
    client = sdk(gateway)
    stream = client.chat.completions.create(
        model="gpt-4o", messages=HELLO, max_completion_tokens=CAP, stream=True,  # type: ignore[arg-type]
        extra_headers={"x-sim-chunk-interval-ms": "20", "x-sim-answer": " ".join(["word"] * 200)},
    )  # fmt: skip
    chunks = iter(stream)
    for _ in range(5):
        next(chunks)
    stream.close()
    # The gateway notices the client left and ends the request; nothing else is sent meanwhile.
    deadline = time.monotonic() + 10
    while gateway.requests_in_flight() and time.monotonic() < deadline:
        time.sleep(0.01)
    charged, held = spend(store, "edge")
    assert held == 0 and 0 < charged < cost_micros(GPT_4O, Usage(PROMPT, 200))
    # Its worst case no longer held, the next call fits.
    answer = client.chat.completions.create(
        model="gpt-4o", messages=HELLO, max_completion_tokens=CAP, extra_headers=SHORT,  # type: ignore[arg-type]
    )  # fmt: skip
    assert answer.choices[0].message.content == "Hello, gateway."


def test_a_worst_case_over_what_is_left_says_so_and_names_the_cap_that_fits(
    gateway: ServerThread, store: redis.Redis
) -> None:
    client = sdk(gateway)
    store.set(f"{{t:edge}}:spend:{month()}", 15_000)  # $0.005 left: less than one worst case
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(
            model="gpt-4o", messages=HELLO, max_completion_tokens=CAP, extra_headers=SHORT,  # type: ignore[arg-type]
        )  # fmt: skip
    error = info.value
    fits = largest_completion_cap(GPT_4O, PROMPT, 1, 5_000)
    assert error.code == "request_over_budget" and error.type == "insufficient_quota"
    assert isinstance(error.body, dict) and error.body["param"] == "max_completion_tokens"
    assert error.body["message"].startswith(
        f"This request could cost up to ${WORST / 1e6:.6f} (its worst case), more than team "
        "edge has left of its monthly budget: $0.005000 of $0.02 ($0.015000 spent, $0.00 "
        f"held for requests in flight). Set max_completion_tokens to at most {fits} for it "
        "to fit."
    )
    assert "exceeded" not in error.message
    assert error.response.headers["x-should-retry"] == "false"
    # The Responses API names its own field; and the cap named fits.
    with pytest.raises(openai.RateLimitError) as info:
        client.responses.create(model="gpt-4o", input="Say hello.", max_output_tokens=CAP)
    assert info.value.code == "request_over_budget"
    assert "Set max_output_tokens to at most " in info.value.message
    assert client.chat.completions.create(
        model="gpt-4o", messages=HELLO, max_completion_tokens=fits, extra_headers=SHORT,  # type: ignore[arg-type]
    ).choices  # fmt: skip
    # A budget really spent still says so.
    store.set(f"{{t:edge}}:spend:{month()}", BUDGET)
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(
            model="gpt-4o", messages=HELLO, max_completion_tokens=16, extra_headers=SHORT,  # type: ignore[arg-type]
        )  # fmt: skip
    assert info.value.code == "insufficient_quota"
    assert isinstance(info.value.body, dict)
    assert info.value.body["message"].startswith("You exceeded your team's monthly budget")
