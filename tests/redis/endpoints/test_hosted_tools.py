"""The Responses API's hosted tools (web search, file search, code interpreter) on a real
redis-server, through the official SDK: refused without a configured price before anything
reaches upstream; held at their worst case beside the tokens (`max_tool_calls` calls at the
dearest price, the gateway adding `max_tool_calls` when the client did not); charged the calls
the response made, plain, streamed or in the background, never more than was held."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
import redis

from gateway.admission.pricing import cost_micros, worst_case_micros, worst_usage
from gateway.config import Usd, usd_to_micros
from gateway.wire import tokens
from gateway.wire.usage import Usage
from tests.conftest import GatewayFactory, ServerThread, base_config, scrape
from tests.redis.admission.test_end_to_end import month, spend
from tests.redis.endpoints.teams import billed, refused_batch, sdk, serve_teams
from tests.redis.endpoints.test_responses import PRICES, priced

SEARCH = 10_000  # micro-dollars per web search ($0.01)
CONTEXT = 128_000  # gpt-4o's
FILE_SEARCH = 2_500
CONTAINER = 30_000
PRICED = {
    "web_search": "0.01",
    "web_search_preview": "0.01",
    "file_search": "0.0025",
    "code_interpreter": "0.03",
    "image_generation": "0.25",
}
TEAMS: dict[str, dict[str, str]] = {
    "metered": {"tier": "tier-5"},
    # Covers a small call's tokens and four searches with the passes reading them, not eight.
    "dollars": {"tier": "tier-5", "budget_usd": "1.40"},
    # Covers a small call's tokens, not one search.
    "penny": {"tier": "tier-5", "budget_usd": "0.005"},
}
WEB: list[Any] = [{"type": "web_search"}]
PROMPT = "What happened in the news today?"


@pytest.fixture
def gateway(start_gateway: GatewayFactory, redis_server: str, tmp_path: Path) -> ServerThread:
    return serve_teams(start_gateway, redis_server, tmp_path, TEAMS, hosted_tools=prices_of(PRICED))


def prices_of(usd: dict[str, str]) -> dict[str, Usd]:
    return {name: Usd(usd_to_micros(value, name)) for name, value in usd.items()}


def sim_requests(simulator: ServerThread) -> list[dict[str, Any]]:
    return list(httpx.get(f"{simulator.url}/_sim/requests").json()["data"])


def passes(calls: int) -> int:
    """What the model's passes after `calls` calls may read as input: a context each."""
    return cost_micros(PRICES["gpt-4o"], Usage(prompt_tokens=calls * CONTEXT))


def token_hold(tools: list[Any], max_output: int) -> int:
    """The tokens' worst case of a gpt-4o Responses call with `PROMPT`, as the gateway holds it."""
    prompt = tokens.count_messages([{"role": "user", "content": PROMPT}])
    prompt += tokens.count_text(orjson.dumps(tools).decode())
    return worst_case_micros(PRICES["gpt-4o"], prompt, max_output)


def assert_charged_searches(store: redis.Redis, team: str, answer: Any, searches: int) -> None:
    """The response made `searches` web searches, and the team was charged its tokens and them."""
    assert sum(item.type == "web_search_call" for item in answer.output) == searches
    assert answer.usage is not None
    assert spend(store, team) == (priced("gpt-4o", answer.usage) + searches * SEARCH, 0)


def held(store: redis.Redis, team: str) -> int:
    return int(store.get(f"{{t:{team}}}:held:{month()}") or 0)


def held_while(store: redis.Redis, team: str, ask: Callable[[], Any]) -> tuple[int, Any]:
    """What the team holds while `ask` (a slow call, in a thread) is under way, and its answer."""
    answers: list[Any] = []
    call = threading.Thread(target=lambda: answers.append(ask()))
    call.start()
    deadline = time.monotonic() + 10
    while (holding := held(store, team)) == 0:
        assert time.monotonic() < deadline, "no hold appeared"
        time.sleep(0.01)
    call.join()
    (answer,) = answers
    return holding, answer


@pytest.mark.parametrize(
    ("tool", "key"),
    [
        ({"type": "web_search"}, "hosted_tools.web_search"),
        ({"type": "web_search_preview"}, "hosted_tools.web_search_preview"),
        ({"type": "file_search", "vector_store_ids": []}, "hosted_tools.file_search"),
        ({"type": "code_interpreter", "container": {"type": "auto"}},
         "hosted_tools.code_interpreter"),
        ({"type": "code_interpreter", "container": {"type": "auto", "memory_limit": "16g"}},
         "hosted_tools.container_memory_prices.16g"),
        ({"type": "shell", "environment": {"type": "container_auto"}}, "hosted_tools.shell"),
        ({"type": "image_generation"}, "hosted_tools.image_generation"),
        ({"type": "image_generation", "model": "gpt-image-1"}, "hosted_tools.image_generation"),
    ],
)  # fmt: skip
def test_a_hosted_tool_without_a_price_is_refused_before_upstream(
    start_gateway: GatewayFactory,
    redis_server: str,
    tmp_path: Path,
    simulator: ServerThread,
    store: redis.Redis,
    tool: dict[str, Any],
    key: str,
) -> None:
    gateway = serve_teams(start_gateway, redis_server, tmp_path, TEAMS)  # no prices configured
    before = sim_requests(simulator)
    client = sdk(gateway, "metered")
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model="gpt-4o", input=PROMPT, tools=[tool])  # type: ignore[list-item]
    assert info.value.status_code == 400
    assert info.value.code == "tool_not_priced"
    assert info.value.param == "tools[0].type"
    assert f"`{key}`" in info.value.message
    with pytest.raises(openai.BadRequestError) as streamed:
        client.responses.create(model="gpt-4o", input=PROMPT, tools=[tool], stream=True)  # type: ignore[list-item]
    assert streamed.value.code == "tool_not_priced"
    assert sim_requests(simulator) == before
    assert spend(store, "metered") == (0, 0)


def test_chat_web_search_options_need_the_web_search_price(
    start_gateway: GatewayFactory, redis_server: str, tmp_path: Path, simulator: ServerThread
) -> None:
    gateway = serve_teams(start_gateway, redis_server, tmp_path, TEAMS)
    before = sim_requests(simulator)
    with pytest.raises(openai.BadRequestError) as info:
        sdk(gateway, "metered").chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": PROMPT}],
            web_search_options={},
        )  # fmt: skip
    assert info.value.code == "tool_not_priced"
    assert info.value.param == "web_search_options"
    assert "`hosted_tools.web_search`" in info.value.message
    assert sim_requests(simulator) == before


def test_chat_web_search_options_hold_one_search(gateway: ServerThread) -> None:
    """A search model searches before each answer: one search is held beside the tokens, so a
    team that affords the tokens alone but not the search is refused."""
    messages: Any = [{"role": "user", "content": PROMPT}]
    client = sdk(gateway, "penny")
    assert client.chat.completions.create(
        model="gpt-4o", messages=messages, max_completion_tokens=16
    ).choices
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(
            model="gpt-4o", messages=messages, max_completion_tokens=16, web_search_options={}
        )
    assert info.value.code == "request_over_budget"


def test_a_web_search_holds_max_tool_calls_searches_the_gateway_sets(
    gateway: ServerThread, simulator: ServerThread, store: redis.Redis
) -> None:
    """Without `max_tool_calls` the gateway sends the default (8) and holds that many searches
    beside the tokens; once answered, it charges the tokens and the searches made."""
    knobs = {"x-sim-latency-ms": "1500", "x-sim-tool-calls": "3"}
    holding, answer = held_while(
        store, "metered", lambda: sdk(gateway, "metered").responses.create(
            model="gpt-4o", input=PROMPT, tools=WEB, max_output_tokens=16, extra_headers=knobs
        ),
    )  # fmt: skip
    assert holding == token_hold(WEB, 16) + passes(8) + 8 * SEARCH
    sent = sim_requests(simulator)[-1]["body"]
    assert sent["max_tool_calls"] == 8
    searches = {item.status for item in answer.output if item.type == "web_search_call"}
    assert searches == {"completed"}  # the answer after them was cut at 16 tokens
    assert_charged_searches(store, "metered", answer, 3)
    assert 'gateway_tool_calls_total{model="gpt-4o",team="metered",tool="web_search"} 3.0' in (
        scrape(gateway.url)
    )


def test_a_team_that_cannot_afford_the_searches_worst_case_is_refused(
    gateway: ServerThread, store: redis.Redis
) -> None:
    """$1.40 covers the tokens and four searches with the passes reading their results, not
    the eight the gateway would allow."""
    client = sdk(gateway, "dollars")
    with pytest.raises(openai.RateLimitError) as info:
        client.responses.create(model="gpt-4o", input=PROMPT, tools=WEB, max_output_tokens=16)
    assert info.value.code == "request_over_budget"
    assert "No max_output_tokens makes it fit" in info.value.message  # the searches do not
    with pytest.raises(openai.RateLimitError) as capped:
        client.responses.create(model="gpt-4o", input=PROMPT, tools=WEB, max_tool_calls=4)
    # Four searches fit, the model's whole output cap beside them not: the cap it suggests
    # leaves room for the searches and their passes.
    suggested = int(capped.value.message.split("Set max_output_tokens to at most ")[1].split()[0])
    budget, beside = 1_400_000, passes(4) + 4 * SEARCH
    assert token_hold(WEB, suggested) + beside <= budget < token_hold(WEB, suggested + 1) + beside
    assert spend(store, "dollars") == (0, 0)
    answer = client.responses.create(
        model="gpt-4o", input=PROMPT, tools=WEB, max_output_tokens=16, max_tool_calls=4,
        extra_headers={"x-sim-tool-calls": "1"},
    )  # fmt: skip
    assert_charged_searches(store, "dollars", answer, 1)


def test_the_clients_max_tool_calls_bounds_the_calls_and_the_charge(
    gateway: ServerThread, simulator: ServerThread, store: redis.Redis
) -> None:
    answer = sdk(gateway, "metered").responses.create(
        model="gpt-4o", input=PROMPT, tools=WEB, max_tool_calls=2,
        extra_headers={"x-sim-tool-calls": "20"},
    )  # fmt: skip
    assert sim_requests(simulator)[-1]["body"]["max_tool_calls"] == 2
    assert_charged_searches(store, "metered", answer, 2)


def test_a_streamed_response_is_charged_its_searches_as_a_whole_one_is(
    gateway: ServerThread, store: redis.Redis
) -> None:
    client = sdk(gateway, "metered")
    started = 0
    with client.responses.stream(
        model="gpt-4o", input=PROMPT, tools=WEB, extra_headers={"x-sim-tool-calls": "4"}
    ) as stream:
        for event in stream:
            started += event.type == "response.web_search_call.in_progress"
        final = stream.get_final_response()
    assert started == 4
    assert_charged_searches(store, "metered", final, 4)


def test_file_searches_are_charged_by_the_call_and_the_code_interpreter_by_the_container(
    gateway: ServerThread, store: redis.Redis
) -> None:
    tools: Any = [
        {"type": "file_search", "vector_store_ids": []},
        {"type": "code_interpreter", "container": {"type": "auto"}},
    ]
    answer = sdk(gateway, "metered").responses.create(
        model="gpt-4o", input=PROMPT, tools=tools, extra_headers={"x-sim-tool-calls": "5"}
    )
    kinds = [item.type for item in answer.output if item.type != "message"]
    # Taken in turn: three file searches and two code runs, in one container.
    assert kinds.count("file_search_call") == 3 and kinds.count("code_interpreter_call") == 2
    assert answer.usage is not None
    expected = priced("gpt-4o", answer.usage) + 3 * FILE_SEARCH + CONTAINER
    assert spend(store, "metered") == (expected, 0)


def test_a_response_cut_off_after_it_was_sent_is_charged_its_hold_fees_included(
    gateway: ServerThread, store: redis.Redis
) -> None:
    with pytest.raises(openai.APIError):
        sdk(gateway, "metered").responses.create(
            model="gpt-4o", input=PROMPT, tools=WEB, max_output_tokens=16, max_tool_calls=3,
            extra_headers={"x-sim-fault": "reset"},
        )  # fmt: skip
    assert spend(store, "metered") == (token_hold(WEB, 16) + passes(3) + 3 * SEARCH, 0)


def test_a_background_response_is_charged_its_searches_once_it_ends(
    start_gateway: GatewayFactory, redis_server: str, tmp_path: Path, store: redis.Redis
) -> None:
    gateway = serve_teams(
        start_gateway, redis_server, tmp_path, TEAMS,
        hosted_tools=prices_of(PRICED), responses={"poll_s": 0.2},
    )  # fmt: skip
    client = sdk(gateway, "metered")
    queued = client.responses.create(
        model="gpt-4o", input=PROMPT, tools=WEB, background=True,
        extra_headers={"x-sim-tool-calls": "2"},
    )  # fmt: skip
    assert queued.status == "queued"
    spent, holding = spend(store, "metered")  # waits for the follower to settle the hold
    done = client.responses.retrieve(queued.id)
    assert done.status == "completed" and done.usage is not None
    assert (spent, holding) == (priced("gpt-4o", done.usage) + 2 * SEARCH, 0)


def test_a_batch_line_with_web_search_options_is_refused(
    gateway: ServerThread, simulator: ServerThread
) -> None:
    """A batch is settled from its output's tokens: a search it cannot charge is not sent."""
    client = sdk(gateway, "metered")
    line = {
        "custom_id": "r0", "method": "POST", "url": "/v1/chat/completions",
        "body": {"model": "gpt-4o", "messages": [{"role": "user", "content": PROMPT}],
                 "web_search_options": {}},
    }  # fmt: skip
    refused = refused_batch(client, simulator, orjson.dumps(line))
    assert refused.code == "invalid_batch_line"
    assert "web_search_options" in refused.message


STORED_PROMPT: Any = {"prompt": {"id": "pmpt_1"}}
SHELL = 40_000
MEMORY_4G = 120_000  # the dearest container the operator priced
IMAGE = 250_000  # the most one image may cost ($0.25)


@pytest.fixture
def template_gateway(
    start_gateway: GatewayFactory, redis_server: str, tmp_path: Path
) -> Callable[[bool], ServerThread]:
    """A gateway (started when called) pricing every hosted tool a stored prompt template may
    bring, containers up to 4g, the image generation tool's images too if asked."""

    def serve(images: bool) -> ServerThread:
        priced = {**PRICED, "shell": "0.04"}
        if not images:
            del priced["image_generation"]
        prices: dict[str, Any] = prices_of(priced)
        prices["container_memory_prices"] = prices_of({"4g": "0.12"})
        return serve_teams(start_gateway, redis_server, tmp_path, TEAMS, hosted_tools=prices)

    return serve


def test_a_stored_prompt_is_refused_unless_every_hosted_tool_is_priced_or_it_makes_no_calls(
    gateway: ServerThread, simulator: ServerThread, store: redis.Redis
) -> None:
    """A stored prompt template may bring any hosted tool, unseen by the gateway: with one of
    them unpriced (here the shell), the request is refused before upstream, unless the client
    says the template calls none (`max_tool_calls: 0`), which upstream then enforces."""
    client = sdk(gateway, "metered")
    before = sim_requests(simulator)
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model="gpt-4o", input=PROMPT, extra_body=STORED_PROMPT)
    assert info.value.code == "tool_not_priced"
    assert info.value.param == "prompt"
    assert "`hosted_tools.shell`" in info.value.message
    assert "max_tool_calls: 0" in info.value.message
    assert sim_requests(simulator) == before
    assert spend(store, "metered") == (0, 0)
    answer = client.responses.create(
        model="gpt-4o", input=PROMPT, max_tool_calls=0, extra_body=STORED_PROMPT,
        extra_headers={"x-sim-prompt-tools": "web_search"},
    )  # fmt: skip
    sent = sim_requests(simulator)[-1]["body"]
    assert sent["prompt"] == {"id": "pmpt_1"} and sent["max_tool_calls"] == 0
    assert [item.type for item in answer.output] == ["message"]
    assert answer.usage is not None
    assert spend(store, "metered") == (priced("gpt-4o", answer.usage), 0)


def test_a_stored_prompts_hosted_tools_are_held_at_their_worst_and_charged_as_made(
    template_gateway: Callable[[bool], ServerThread], simulator: ServerThread, store: redis.Redis
) -> None:
    """Every tool priced: the request is held as if the template brought them all (the gateway's
    `max_tool_calls` of the dearest call, here an image, and a container of each container tool
    at the dearest memory priced, beside the whole context a template may fill), then charged
    the calls the response made, here three web searches the template's tool ran."""
    gateway = template_gateway(True)
    knobs = {
        "x-sim-latency-ms": "1500", "x-sim-tool-calls": "3", "x-sim-prompt-tools": "web_search",
    }  # fmt: skip
    holding, answer = held_while(
        store, "metered", lambda: sdk(gateway, "metered").responses.create(
            model="gpt-4o", input=PROMPT, max_output_tokens=16, extra_body=STORED_PROMPT,
            extra_headers=knobs,
        ),
    )  # fmt: skip
    context = worst_case_micros(PRICES["gpt-4o"], CONTEXT, 16)
    containers = max(CONTAINER, MEMORY_4G) + max(SHELL, MEMORY_4G)
    assert holding == context + passes(8) + 8 * IMAGE + containers
    assert sim_requests(simulator)[-1]["body"]["max_tool_calls"] == 8
    assert_charged_searches(store, "metered", answer, 3)


def test_a_stored_prompt_is_refused_while_the_images_its_template_may_make_are_unpriced(
    template_gateway: Callable[[bool], ServerThread], simulator: ServerThread, store: redis.Redis
) -> None:
    """The template may bring the image generation tool, whose images OpenAI bills at an image
    model's prices: with every other hosted tool priced but not its images, the request is
    refused before upstream, naming the key to set."""
    gateway = template_gateway(False)
    before = sim_requests(simulator)
    client = sdk(gateway, "metered")
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as info:
            client.responses.create(
                model="gpt-4o", input=PROMPT, stream=stream, extra_body=STORED_PROMPT,
                extra_headers={"x-sim-prompt-tools": "image_generation"},
            )  # fmt: skip
        assert (info.value.code, info.value.param) == ("tool_not_priced", "prompt")
        assert "`hosted_tools.image_generation`" in info.value.message
    assert sim_requests(simulator) == before
    assert spend(store, "metered") == (0, 0)


def test_the_images_a_stored_prompts_template_makes_are_held_and_charged_by_the_image(
    template_gateway: Callable[[bool], ServerThread], simulator: ServerThread, store: redis.Redis
) -> None:
    """Images the template's image generation tool makes (`image_generation_call` items) are
    held, `max_tool_calls` of them at the image price, and charged each at it beside the
    tokens, whole or streamed."""
    gateway = template_gateway(True)
    client = sdk(gateway, "metered")
    knobs = {"x-sim-tool-calls": "2", "x-sim-prompt-tools": "image_generation"}
    holding, answer = held_while(
        store, "metered", lambda: client.responses.create(
            model="gpt-4o", input=PROMPT, max_output_tokens=16, max_tool_calls=3,
            extra_body=STORED_PROMPT, extra_headers={**knobs, "x-sim-latency-ms": "1500"},
        ),
    )  # fmt: skip
    context = worst_case_micros(PRICES["gpt-4o"], CONTEXT, 16)
    assert holding == context + passes(3) + 3 * IMAGE + 2 * MEMORY_4G
    images = [item for item in answer.output if item.type == "image_generation_call"]
    assert len(images) == 2 and all(image.result for image in images)
    assert answer.usage is not None
    charged = priced("gpt-4o", answer.usage) + 2 * IMAGE
    assert spend(store, "metered") == (charged, 0)
    generating = 0
    with client.responses.stream(
        model="gpt-4o", input=PROMPT, extra_body=STORED_PROMPT, extra_headers=knobs
    ) as stream:
        for event in stream:
            generating += event.type == "response.image_generation_call.generating"
        final = stream.get_final_response()
    assert generating == 2
    assert final.usage is not None
    charged += priced("gpt-4o", final.usage) + 2 * IMAGE
    assert spend(store, "metered") == (charged, 0)
    counted = 'gateway_tool_calls_total{model="gpt-4o",team="metered",tool="image_generation"} 4.0'
    assert counted in scrape(gateway.url)


MCP: list[Any] = [{"type": "mcp", "server_label": "intranet", "server_url": "https://mcp.example"}]


def test_a_remote_mcp_servers_passes_are_held(gateway: ServerThread, store: redis.Redis) -> None:
    """Its calls cost no fee, but the model reads each result in another pass: the gateway's
    eight calls' passes are more than $1.40 covers, none are nothing to hold."""
    client = sdk(gateway, "dollars")
    with pytest.raises(openai.RateLimitError) as info:
        client.responses.create(model="gpt-4o", input=PROMPT, tools=MCP, max_output_tokens=16)
    assert info.value.code == "request_over_budget"
    answer = client.responses.create(
        model="gpt-4o", input=PROMPT, tools=MCP, max_output_tokens=16, max_tool_calls=0
    )
    assert answer.usage is not None
    assert spend(store, "dollars") == (priced("gpt-4o", answer.usage), 0)


@pytest.mark.parametrize("stream", [False, True])
def test_an_mcp_servers_tool_list_is_held_whole_and_charged_as_billed(
    gateway: ServerThread, simulator: ServerThread, store: redis.Redis, stream: bool
) -> None:
    """Upstream imports a remote MCP server's tools (an `mcp_list_tools` item) whatever
    `max_tool_calls` says, and bills their definitions as input: the gateway cannot know how
    long the list is, so it holds the model's whole context for the call's input, and the
    charge is what upstream billed."""
    httpx.delete(f"{simulator.url}/_sim/bill")
    client = sdk(gateway, "metered")

    def ask() -> Any:
        knobs = {"x-sim-latency-ms": "1500"}
        if not stream:
            return client.responses.create(
                model="gpt-4o", input=PROMPT, tools=MCP, max_output_tokens=16, max_tool_calls=0,
                extra_headers=knobs,
            )  # fmt: skip
        events = client.responses.create(
            model="gpt-4o", input=PROMPT, tools=MCP, max_output_tokens=16, max_tool_calls=0,
            extra_headers=knobs, stream=True,
        )  # fmt: skip
        return list(events)[-1].response  # its terminal event: `response.incomplete`

    holding, answer = held_while(store, "metered", ask)
    assert answer.output[0].type == "mcp_list_tools"
    assert answer.usage is not None
    listed = tokens.count_text(orjson.dumps(answer.output[0].model_dump()["tools"]).decode())
    assert answer.usage.input_tokens > listed  # the list is billed as input
    bill = billed(simulator)
    assert spend(store, "metered") == (bill, 0)
    assert bill <= holding == worst_case_micros(PRICES["gpt-4o"], CONTEXT, 16)


DRAW: list[Any] = [{"type": "image_generation", "model": "gpt-image-1", "size": "1024x1536"}]


def test_the_image_generation_tool_holds_max_tool_calls_images_and_charges_those_it_made(
    gateway: ServerThread, simulator: ServerThread, store: redis.Redis
) -> None:
    """With `hosted_tools.image_generation` set, the tool named in `tools` is served: held at
    `max_tool_calls` images (the gateway's default 8 when the client sets none, which it sends
    upstream) at that price beside the tokens, and charged each `image_generation_call` item
    of the answer, whole or streamed."""
    client = sdk(gateway, "metered")
    knobs = {"x-sim-tool-calls": "2", "x-sim-latency-ms": "1500"}
    holding, answer = held_while(
        store, "metered", lambda: client.responses.create(
            model="gpt-4o", input=PROMPT, tools=DRAW, max_output_tokens=16, max_tool_calls=3,
            extra_headers=knobs,
        ),
    )  # fmt: skip
    assert holding == token_hold(DRAW, 16) + passes(3) + 3 * IMAGE
    images = [item for item in answer.output if item.type == "image_generation_call"]
    assert len(images) == 2 and all(image.result for image in images)
    assert answer.usage is not None
    charged = priced("gpt-4o", answer.usage) + 2 * IMAGE
    assert spend(store, "metered") == (charged, 0)
    holding, answer = held_while(
        store, "metered", lambda: client.responses.create(
            model="gpt-4o", input=PROMPT, tools=DRAW, max_output_tokens=16, extra_headers=knobs
        ),
    )  # fmt: skip
    assert holding == token_hold(DRAW, 16) + passes(8) + 8 * IMAGE
    assert sim_requests(simulator)[-1]["body"]["max_tool_calls"] == 8
    assert answer.usage is not None
    charged += priced("gpt-4o", answer.usage) + 2 * IMAGE
    assert spend(store, "metered") == (charged, 0)
    generating = 0
    with client.responses.stream(
        model="gpt-4o", input=PROMPT, tools=DRAW, max_tool_calls=1,
        extra_headers={"x-sim-tool-calls": "2"},
    ) as stream:  # fmt: skip
        for event in stream:
            generating += event.type == "response.image_generation_call.generating"
        final = stream.get_final_response()
    assert generating == 1  # upstream makes no more than max_tool_calls
    assert final.usage is not None
    charged += priced("gpt-4o", final.usage) + IMAGE
    assert spend(store, "metered") == (charged, 0)
    counted = 'gateway_tool_calls_total{model="gpt-4o",team="metered",tool="image_generation"} 5.0'
    assert counted in scrape(gateway.url)


def test_the_passes_of_a_long_context_model_are_held_with_its_own_tokens(
    gateway: ServerThread, store: redis.Redis
) -> None:
    """A pass over a search's results reads up to the whole context (1.05M tokens on
    gpt-6.1-sol), and the response's usage bills it with the call's own prompt: past 272K input
    tokens, the whole call at twice the input and 1.5 times the output price, its own prompt
    and output too. The hold must cover what that usage is charged, not the passes at the long
    prices beside the call's own tokens at the standard ones."""
    price = base_config().models["gpt-6.1-sol"].price
    knobs = {"x-sim-latency-ms": "1500", "x-sim-tool-calls": "1", "x-sim-today": "2026-12-07"}
    holding, answer = held_while(
        store, "metered", lambda: sdk(gateway, "metered").responses.create(
            model="gpt-6.1-sol", input=PROMPT, tools=WEB, max_tool_calls=1,
            max_output_tokens=16_000, extra_headers=knobs,
        ),
    )  # fmt: skip
    prompt = tokens.count_messages([{"role": "user", "content": PROMPT}])
    prompt += tokens.count_text(orjson.dumps(WEB).decode())
    # The most its usage can say: its prompt and one pass of the whole context, none of it
    # cached and all of it written to the cache, and its whole output cap.
    most = worst_usage(price, prompt + 1_050_000, 16_000)
    assert holding == cost_micros(price, most) + SEARCH
    assert answer.usage is not None and answer.usage.input_tokens < 272_000
