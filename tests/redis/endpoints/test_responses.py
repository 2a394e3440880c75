"""The Responses API governed like chat, on a real redis-server: budgets hold under concurrency,
every response is charged exactly what its usage says, a team sees only its own responses, and
a model outside the team's tier is not found. Native (gpt-4o) and translated (o1-mini) alike."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import redis

from gateway.admission.pricing import cost_micros, worst_case_micros
from gateway.admission.redis_side import Admission
from gateway.config import ImageInputTokens, Price, Usd, usd_to_micros
from gateway.runtime.follower import Follower
from gateway.runtime.response_jobs import BackgroundResponses
from gateway.wire.tokens import count_text
from gateway.wire.usage import Usage
from tests.conftest import SIM_KEY, GatewayFactory, ServerThread, base_config
from tests.redis.admission.test_end_to_end import month, spend, usage_by
from tests.redis.endpoints.teams import billed, follower_pass, key_of, sdk, serve_teams

KEYS = {name: key_of(name) for name in ("poor", "small", "metered", "other", "snug")}
PRICES = {
    "gpt-4o": Price(input=2_500_000, cached_input=1_250_000, output=10_000_000),
    "gpt-4o-mini": Price(input=150_000, cached_input=75_000, output=600_000),
    "o1-mini": Price(input=3_000_000, cached_input=1_500_000, output=12_000_000),
}
MODELS = ("gpt-4o", "o1-mini")  # served natively; served by translation to chat


TEAMS: dict[str, dict[str, str]] = {
    "poor": {"tier": "tier-5", "budget_usd": "0.01"},
    "small": {"tier": "tier-1"},
    "metered": {"tier": "tier-5"},
    "other": {"tier": "tier-5"},
    # Enough for one large image on gpt-4o, not for the same image on gpt-4o-mini.
    "snug": {"tier": "tier-5", "budget_usd": "0.005"},
}


@pytest.fixture
def gateway(start_gateway: GatewayFactory, redis_server: str, tmp_path: Path) -> ServerThread:
    return serve_teams(start_gateway, redis_server, tmp_path, TEAMS)


def priced(model: str, usage: Any) -> int:
    """What a Responses `usage` costs at the model's configured price."""
    return cost_micros(
        PRICES[model],
        Usage(
            prompt_tokens=usage.input_tokens,
            completion_tokens=usage.output_tokens,
            cached_tokens=usage.input_tokens_details.cached_tokens,
            reasoning_tokens=usage.output_tokens_details.reasoning_tokens,
        ),
    )


@pytest.mark.parametrize("model", MODELS)
def test_concurrent_calls_never_pass_a_budget_smaller_than_one_worst_case(
    gateway: ServerThread, store: redis.Redis, model: str
) -> None:
    # $0.01 is less than either model's worst case (its whole output cap at the output price).
    async def fire() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=100)) as c:
            calls = [
                c.post(
                    f"{gateway.url}/v1/responses",
                    json={"model": model, "input": f"Say hello, number {i}."},
                    headers={"Authorization": f"Bearer {KEYS['poor']}"},
                )
                for i in range(100)
            ]
            return list(await asyncio.gather(*calls))

    answers = asyncio.run(fire())
    assert {a.status_code for a in answers} == {429}
    assert {a.json()["error"]["code"] for a in answers} == {"request_over_budget"}
    assert all(a.headers["x-should-retry"] == "false" for a in answers)
    assert spend(store, "poor") == (0, 0)


def test_each_response_is_charged_exactly_its_usage(
    gateway: ServerThread, store: redis.Redis
) -> None:
    client = sdk(gateway, "metered")
    expected = 0
    for model in MODELS:
        plain = client.responses.create(model=model, input="Say hello.", instructions="Be brief.")
        assert plain.usage is not None and plain.usage.output_tokens > 0
        expected += priced(model, plain.usage)
        with client.responses.stream(model=model, input="Stream a hello.") as stream:
            final = stream.get_final_response()
        assert final.usage is not None
        expected += priced(model, final.usage)
        # Reading a stored response never charges again.
        assert client.responses.retrieve(plain.id).id == plain.id
        assert client.responses.retrieve(final.id).id == final.id
    assert spend(store, "metered") == (expected, 0)
    counted = usage_by(store, "metered", "model")
    assert counted["gpt-4o"]["requests"] == 2 and counted["o1-mini"]["requests"] == 2
    assert list(usage_by(store, "metered", "endpoint")) == ["responses"]


def leave_after_ten_deltas(gateway: ServerThread, model: str, answer: str) -> None:
    stream = sdk(gateway, "metered").responses.create(
        model=model, input="Say many words.", stream=True,
        extra_headers={"x-sim-chunk-interval-ms": "20", "x-sim-answer": answer},
    )  # fmt: skip
    seen = 0
    for event in stream:
        seen += event.type == "response.output_text.delta"
        if seen == 10:
            break
    stream.close()


def test_a_client_leaving_a_native_stream_is_charged_what_was_generated(
    gateway: ServerThread, store: redis.Redis
) -> None:
    leave_after_ten_deltas(gateway, "gpt-4o", " ".join(["word"] * 200))
    charged, held = spend(store, "metered")
    assert held == 0
    # The prompt and about ten words; far below the whole answer.
    assert 0 < charged < cost_micros(PRICES["gpt-4o"], Usage(20, 100))


def test_a_client_leaving_a_faked_stream_is_charged_the_whole_answer_upstream_made(
    gateway: ServerThread, store: redis.Redis
) -> None:
    # o1-mini cannot stream: its answer was generated whole before the first delta left.
    answer = " ".join(["word"] * 200)
    whole = sdk(gateway, "other").responses.create(
        model="o1-mini", input="Say many words.", extra_headers={"x-sim-answer": answer}
    )
    assert whole.usage is not None
    leave_after_ten_deltas(gateway, "o1-mini", answer)
    assert spend(store, "metered") == (priced("o1-mini", whole.usage), 0)


@pytest.mark.parametrize("model", MODELS)
def test_a_team_reaches_only_its_own_responses(gateway: ServerThread, model: str) -> None:
    mine = sdk(gateway, "metered").responses.create(model=model, input="Remember the number 7.")
    theirs = sdk(gateway, "other")
    with pytest.raises(openai.NotFoundError) as info:
        theirs.responses.retrieve(mine.id)
    assert info.value.message.endswith(f"Response with id '{mine.id}' not found.")
    with pytest.raises(openai.NotFoundError):
        theirs.responses.input_items.list(mine.id)
    with pytest.raises(openai.NotFoundError):
        theirs.responses.delete(mine.id)
    with pytest.raises(openai.NotFoundError):
        theirs.responses.cancel(mine.id)
    with pytest.raises(openai.BadRequestError) as chained:
        theirs.responses.create(model=model, input="Which number?", previous_response_id=mine.id)
    assert chained.value.code == "previous_response_not_found"
    # Still there for its owner.
    assert sdk(gateway, "metered").responses.retrieve(mine.id).id == mine.id


def test_a_model_outside_the_tier_is_not_found(gateway: ServerThread) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        sdk(gateway, "small").responses.create(model="o1-preview", input="Hello.")
    assert info.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        sdk(gateway, "small").responses.create(model="o1-mini", input="Hello.", stream=True)


def test_a_stored_prompt_template_holds_the_whole_context(gateway: ServerThread) -> None:
    """The template's text is upstream's and its length unknown here: the hold assumes it
    fills the model's context, so a team that can afford the spelled-out call cannot afford it."""
    client = sdk(gateway, "poor")
    answer = client.responses.create(model="gpt-4o", input="Hi.", max_output_tokens=16)
    assert answer.usage is not None
    with pytest.raises(openai.RateLimitError) as info:
        client.responses.create(
            model="gpt-4o", input="Hi.", max_output_tokens=16, max_tool_calls=0,
            extra_body={"prompt": {"id": "pmpt_1"}},
        )  # fmt: skip
    assert info.value.code == "request_over_budget"


def test_a_file_input_holds_the_whole_context(gateway: ServerThread, store: redis.Redis) -> None:
    """A PDF's pages are read upstream, and their tokens are not known here: a request handing
    the model a file holds the whole context as its prompt, in chat and in the Responses API,
    so a team that can afford the same request without it cannot afford it."""
    client = sdk(gateway, "poor")
    pdf = "data:application/pdf;base64,JVBERi0xLjQK"
    chat_file: Any = {"type": "file", "file": {"filename": "a.pdf", "file_data": pdf}}
    text: Any = {"type": "text", "text": "Sum it up."}
    with pytest.raises(openai.RateLimitError) as chat:
        client.chat.completions.create(
            model="gpt-4o", max_completion_tokens=16,
            messages=[{"role": "user", "content": [text, chat_file]}],
        )  # fmt: skip
    assert chat.value.code == "request_over_budget"
    given: Any = [{"role": "user", "content": [
        {"type": "input_text", "text": "Sum it up."},
        {"type": "input_file", "filename": "a.pdf", "file_data": pdf},
    ]}]  # fmt: skip
    with pytest.raises(openai.RateLimitError) as responses:
        client.responses.create(model="gpt-4o", input=given, max_output_tokens=16)
    assert responses.value.code == "request_over_budget"
    assert spend(store, "poor") == (0, 0)
    assert client.chat.completions.create(
        model="gpt-4o", max_completion_tokens=16, messages=[{"role": "user", "content": [text]}]
    ).choices


def test_image_inputs_are_held_at_their_tokens(
    gateway: ServerThread, simulator: ServerThread, store: redis.Redis
) -> None:
    """Three images at high detail are 4,335 prompt tokens at most ($0.0108 on gpt-4o), more
    than the team's $0.01 on their own: held at that, in chat and in the Responses API, they
    are refused before upstream, while the same request without them is served."""
    client = sdk(gateway, "poor")
    url = "https://example.com/cat.png"
    assert 3 * ImageInputTokens().high * PRICES["gpt-4o"].input // 1_000_000 > 10_000
    log = f"{simulator.url}/_sim/requests"
    before = httpx.get(log).json()["data"]
    chat_parts: Any = [{"type": "text", "text": "Compare them."}] + [
        {"type": "image_url", "image_url": {"url": url, "detail": "high"}}
    ] * 3
    with pytest.raises(openai.RateLimitError) as chat:
        client.chat.completions.create(
            model="gpt-4o", max_completion_tokens=16,
            messages=[{"role": "user", "content": chat_parts}],
        )  # fmt: skip
    assert chat.value.code == "request_over_budget"
    text: Any = {"type": "input_text", "text": "Compare them."}
    image: Any = {"type": "input_image", "image_url": url, "detail": "high"}
    for stream in (False, True):
        with pytest.raises(openai.RateLimitError) as responses:
            client.responses.create(
                model="gpt-4o", max_output_tokens=16, stream=stream,
                input=[{"role": "user", "content": [text, image, image, image]}],
            )  # fmt: skip
        assert responses.value.code == "request_over_budget"
    assert httpx.get(log).json()["data"] == before
    assert spend(store, "poor") == (0, 0)
    answer = client.responses.create(
        model="gpt-4o", max_output_tokens=16, input=[{"role": "user", "content": [text]}]
    )
    assert answer.usage is not None and answer.usage.input_tokens > 0


@pytest.mark.parametrize("handed", ["file", "images"])
def test_files_and_images_a_function_output_hands_the_model_are_held(
    gateway: ServerThread, simulator: ServerThread, store: redis.Redis, handed: str
) -> None:
    """A function's output may hand the model a file or images (`function_call_output` whose
    `output` holds `input_file` or `input_image` parts), which upstream reads and bills as
    input as it does a message's: a file's pages may fill the context, three images at high
    detail are 4,335 tokens ($0.0108 on gpt-4o, past the team's $0.01). Held at that, the
    request is refused before upstream, while the same output as text is served."""
    client = sdk(gateway, "poor")
    call: Any = {"type": "function_call", "call_id": "call_1", "name": "fetch", "arguments": "{}"}
    text: Any = {"type": "input_text", "text": "Here it is."}
    if handed == "file":
        pdf = "data:application/pdf;base64,JVBERi0xLjQK"
        parts = [text, {"type": "input_file", "filename": "a.pdf", "file_data": pdf}]
    else:
        image = {"type": "input_image", "image_url": "https://example.com/c.png", "detail": "high"}
        parts = [text, image, image, image]
    given: Any = [
        {"role": "user", "content": "Fetch it and sum it up."},
        call,
        {"type": "function_call_output", "call_id": "call_1", "output": parts},
    ]
    log = f"{simulator.url}/_sim/requests"
    before = httpx.get(log).json()["data"]
    for stream in (False, True):
        with pytest.raises(openai.RateLimitError) as refused:
            answer = client.responses.create(
                model="gpt-4o", input=given, max_output_tokens=16, stream=stream
            )
            list(answer) if stream else None
        assert refused.value.code == "request_over_budget"
    assert httpx.get(log).json()["data"] == before  # nothing reached upstream
    assert spend(store, "poor") == (0, 0)
    given[2]["output"] = [text]
    served = client.responses.create(model="gpt-4o", input=given, max_output_tokens=16)
    assert served.usage is not None and served.usage.input_tokens > 0


@pytest.mark.parametrize("api", ["chat", "responses", "responses-stream"])
def test_a_structured_output_schema_is_held_as_input(
    gateway: ServerThread, simulator: ServerThread, store: redis.Redis, api: str
) -> None:
    """A structured output's JSON schema (chat's `response_format`, the Responses API's
    `text.format`) is written into the model's prompt, as tool schemas are, and billed as
    input: a schema of 5,000 words ($0.0125 on gpt-4o) is past the team's $0.01, so it is
    refused before upstream, while the same request with a short schema is served."""
    assert count_text("word " * 5_000) * PRICES["gpt-4o"].input // 1_000_000 > 10_000
    client = sdk(gateway, "poor")

    def schema(description: str) -> dict[str, Any]:
        return {
            "type": "object", "description": description,
            "properties": {"answer": {"type": "string"}},
            "required": ["answer"], "additionalProperties": False,
        }  # fmt: skip

    def ask(description: str) -> Any:
        named = {"name": "answer", "strict": True, "schema": schema(description)}
        if api == "chat":
            return client.chat.completions.create(
                model="gpt-4o", max_completion_tokens=16,
                messages=[{"role": "user", "content": "Answer in JSON."}],
                response_format={"type": "json_schema", "json_schema": named},  # type: ignore[typeddict-item]
            )  # fmt: skip
        answer = client.responses.create(
            model="gpt-4o", max_output_tokens=16, input="Answer in JSON.",
            stream=api == "responses-stream", text={"format": {"type": "json_schema", **named}},  # type: ignore[typeddict-item]
        )  # fmt: skip
        return list(answer) if api == "responses-stream" else answer

    log = f"{simulator.url}/_sim/requests"
    before = httpx.get(log).json()["data"]
    with pytest.raises(openai.RateLimitError) as refused:
        ask("word " * 5_000)
    assert refused.value.code == "request_over_budget"
    assert httpx.get(log).json()["data"] == before  # nothing reached upstream
    assert spend(store, "poor") == (0, 0)
    assert ask("The answer.")


@pytest.mark.parametrize("api", ["chat", "responses", "responses-stream"])
def test_an_image_is_held_at_the_tokens_of_the_model_it_goes_to(
    gateway: ServerThread, simulator: ServerThread, store: redis.Redis, api: str
) -> None:
    """gpt-4o-mini bills a large image 48,169 tokens ($0.0072 at its price), gpt-4o 1,445
    ($0.0036): a team with $0.005 left is served the image on gpt-4o and refused the same
    request on gpt-4o-mini before upstream, not held at gpt-4o's count ($0.0002) there."""
    assert (
        worst_case_micros(PRICES["gpt-4o"], 1_445, 16)
        < 5_000
        < worst_case_micros(PRICES["gpt-4o-mini"], 48_169, 0)
    )
    assert worst_case_micros(PRICES["gpt-4o-mini"], 1_445 + 100, 16) < 5_000  # the old hold
    client = sdk(gateway, "snug")
    url = "https://example.com/large.png"

    def ask(model: str) -> Any:
        if api == "chat":
            part: Any = {"type": "image_url", "image_url": {"url": url, "detail": "high"}}
            return client.chat.completions.create(
                model=model, max_completion_tokens=16,
                messages=[{"role": "user", "content": [{"type": "text", "text": "What?"}, part]}],
            )  # fmt: skip
        content: Any = [
            {"type": "input_text", "text": "What?"},
            {"type": "input_image", "image_url": url, "detail": "high"},
        ]
        answer = client.responses.create(
            model=model, max_output_tokens=16, stream=api == "responses-stream",
            input=[{"role": "user", "content": content}],
        )  # fmt: skip
        return list(answer) if api == "responses-stream" else answer

    log = f"{simulator.url}/_sim/requests"
    before = httpx.get(log).json()["data"]
    with pytest.raises(openai.RateLimitError) as refused:
        ask("gpt-4o-mini")
    assert refused.value.code == "request_over_budget"
    assert httpx.get(log).json()["data"] == before  # nothing reached upstream
    assert spend(store, "snug") == (0, 0)
    assert ask("gpt-4o")
    spent, held = spend(store, "snug")
    assert 0 < spent <= 5_000 and held == 0


def test_a_background_response_is_charged_its_usage_once_it_ends(
    start_gateway: GatewayFactory, redis_server: str, tmp_path: Path, store: redis.Redis
) -> None:
    """Its answer comes later: the gateway holds the worst case, follows the response upstream
    and, once it ended, charges the usage it reports (not the hold)."""
    gateway = serve_teams(start_gateway, redis_server, tmp_path, TEAMS, responses={"poll_s": 0.2})
    client = sdk(gateway, "metered")
    queued = client.responses.create(model="gpt-4o", input="Think slowly.", background=True)
    assert queued.status == "queued" and queued.usage is None
    spent, held = spend(store, "metered")  # waits for the follower to settle the hold
    done = client.responses.retrieve(queued.id)
    assert done.status == "completed" and done.usage is not None
    assert (spent, held) == (priced("gpt-4o", done.usage), 0)
    assert 0 < spent < 16_384 * PRICES["gpt-4o"].output // 1_000_000  # far below the hold
    assert store.hlen("o1gw:responses:open") == 0


def test_a_background_response_deleted_before_it_ended_is_charged_its_hold_and_let_go(
    start_gateway: GatewayFactory,
    redis_server: str,
    tmp_path: Path,
    store: redis.Redis,
    simulator: ServerThread,
) -> None:
    """Deleted upstream while it ran, a background response can no longer say what it cost:
    the follower charges its hold (upstream may have billed all of it) and stops following it,
    where it looked for it every `poll_s`, on every replica, for ever."""
    gateway = serve_teams(start_gateway, redis_server, tmp_path, TEAMS, responses={"poll_s": 3600})
    client = sdk(gateway, "metered")
    queued = client.responses.create(model="gpt-4o", input="Think slowly.", background=True)
    held = int(store.get(f"{{t:metered}}:held:{month()}") or 0)
    assert held > 0
    assert client.responses.delete(queued.id) is None
    assert not store.exists(f"o1gw:response:metered:{queued.id}")  # its owner record
    follow = follower_pass(redis_server, simulator, lambda gw: BackgroundResponses(3600))
    follow()
    assert store.hlen("o1gw:responses:open") == 0
    assert spend(store, "metered") == (held, 0)


def test_a_background_response_cancelled_before_it_ended_is_charged_no_less_than_billed(
    start_gateway: GatewayFactory,
    redis_server: str,
    tmp_path: Path,
    store: redis.Redis,
    simulator: ServerThread,
) -> None:
    """Cancelled while it ran, a background response reports no usage, though upstream billed
    what it generated by then (the simulator bills it whole): the follower charges its hold,
    never less than the bill, and stops following it."""
    httpx.delete(f"{simulator.url}/_sim/bill")
    gateway = serve_teams(start_gateway, redis_server, tmp_path, TEAMS, responses={"poll_s": 3600})
    client = sdk(gateway, "metered")
    queued = client.responses.create(model="gpt-4o", input="Think slowly.", background=True)
    held = int(store.get(f"{{t:metered}}:held:{month()}") or 0)
    cancelled = client.responses.cancel(queued.id)
    assert cancelled.status == "cancelled" and cancelled.usage is None
    follow = follower_pass(redis_server, simulator, lambda gw: BackgroundResponses(3600))
    follow()
    assert store.hlen("o1gw:responses:open") == 0
    assert spend(store, "metered") == (held, 0)
    assert 0 < billed(simulator) <= held


def test_a_background_response_deleted_once_it_ended_is_charged_its_usage(
    start_gateway: GatewayFactory,
    redis_server: str,
    tmp_path: Path,
    store: redis.Redis,
    simulator: ServerThread,
) -> None:
    """A client polls its background response until it ended, reads it and deletes it, before
    the follower's next look (`responses.poll_s`): upstream billed its usage, which the
    follower, finding it deleted, could no longer read."""
    gateway = serve_teams(start_gateway, redis_server, tmp_path, TEAMS, responses={"poll_s": 3600})
    client = sdk(gateway, "metered")
    queued = client.responses.create(model="gpt-4o", input="Think slowly.", background=True)
    done = client.responses.retrieve(queued.id)
    while done.status in ("queued", "in_progress"):
        done = client.responses.retrieve(queued.id)
    assert done.status == "completed" and done.usage is not None
    assert client.responses.delete(queued.id) is None
    follow = follower_pass(redis_server, simulator, lambda gw: BackgroundResponses(3600))
    follow()
    assert store.hlen("o1gw:responses:open") == 0
    assert spend(store, "metered") == (priced("gpt-4o", done.usage), 0)


def test_a_background_response_made_while_redis_was_away_is_charged_when_it_is_back(
    start_gateway: GatewayFactory,
    redis_server: str,
    tmp_path: Path,
    store: redis.Redis,
    simulator: ServerThread,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Redis is away (a failover) as a background response is created: it is admitted without
    Redis (budgets_on_redis_error and rate_limits_on_redis_error: open), upstream runs it, and
    the gateway cannot follow it. Its hold, never written, cannot expire into a charge: the
    response, billed upstream, is charged its hold once Redis is back."""
    config = base_config(OPENAI_BASE_URL=f"{simulator.url}/v1", OPENAI_API_KEY=SIM_KEY)
    admission = dataclasses.replace(config.admission, budgets_on_redis_error="open")
    config = dataclasses.replace(config, admission=admission)
    gateway = serve_teams(
        start_gateway, redis_server, tmp_path, TEAMS, config=config, responses={"poll_s": 3600}
    )
    client = sdk(gateway, "metered")
    run = Admission._run

    async def admit_away(self: Admission, keys: list[str], args: list[Any], *more: Any) -> Any:
        if args[0] == "admit":
            raise redis.exceptions.ConnectionError("Error connecting to redis: refused")
        return await run(self, keys, args, *more)

    async def away(*_: object, **__: object) -> None:
        raise redis.exceptions.ConnectionError("Error connecting to redis: refused")

    monkeypatch.setattr(Admission, "_run", admit_away)
    monkeypatch.setattr(Follower, "follow", away)
    queued = client.responses.create(model="gpt-4o", input="Think slowly.", background=True)
    assert queued.status == "queued"
    monkeypatch.undo()
    deadline = time.monotonic() + 5
    while spend(store, "metered")[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    # Charged its worst case: 16,384 output tokens of gpt-4o, and its prompt.
    assert spend(store, "metered")[0] > 16_384 * PRICES["gpt-4o"].output // 1_000_000


def test_a_response_chained_to_a_background_one_holds_its_context(
    start_gateway: GatewayFactory, redis_server: str, tmp_path: Path, store: redis.Redis
) -> None:
    """A background response answers before its usage exists: a response chained to it is
    billed the whole stored conversation as input (here 40,000 tokens, $0.05 even mostly
    cached), which the hold must count, or a team with $0.02 left is let through for the price
    of its new words."""
    teams = {"chained": {"tier": "tier-5", "budget_usd": "0.12"}}
    gateway = serve_teams(start_gateway, redis_server, tmp_path, teams)
    client = sdk(gateway, "chained")
    first = client.responses.create(
        model="gpt-4o", input="word " * 40_000, max_output_tokens=16, background=True
    )
    spent, held = spend(store, "chained")
    assert 90_000 < spent + held <= 110_000  # held while it runs: about $0.10
    with pytest.raises(openai.RateLimitError) as info:
        client.responses.create(
            model="gpt-4o", input="And then?", max_output_tokens=16, previous_response_id=first.id
        )
    assert info.value.code == "request_over_budget"
    spent, held = spend(store, "chained")
    assert spent + held <= 120_000


def test_a_response_chained_to_an_ended_background_one_holds_the_context_upstream_reports(
    start_gateway: GatewayFactory, redis_server: str, tmp_path: Path, store: redis.Redis
) -> None:
    """Once the background response ended, upstream tells its usage: the chained call holds
    that context ($0.10 here), not the model's whole context ($0.32), so a team with $0.20
    left is served."""
    teams = {"chained": {"tier": "tier-5", "budget_usd": "0.30"}}
    gateway = serve_teams(start_gateway, redis_server, tmp_path, teams)
    client = sdk(gateway, "chained")
    first = client.responses.create(
        model="gpt-4o", input="word " * 40_000, max_output_tokens=16, background=True
    )
    statuses = [client.responses.retrieve(first.id).status for _ in range(2)]
    assert statuses[-1] == "incomplete"  # ended, at its max_output_tokens
    chained = client.responses.create(
        model="gpt-4o", input="And then?", max_output_tokens=16, previous_response_id=first.id
    )
    assert chained.usage is not None and chained.usage.input_tokens > 40_000
    spent, held = spend(store, "chained")
    assert spent + held <= 300_000


def test_a_native_input_with_an_item_reference_holds_its_text_and_the_referenced_item(
    start_gateway: GatewayFactory, redis_server: str, tmp_path: Path, store: redis.Redis
) -> None:
    """An `item_reference` (an item of the team's given back by id) is served natively but has
    no chat form: the hold must still count the input's 40,000 tokens of text ($0.10), and
    the referenced item, whose length upstream knows, not the gateway; a team with $0.05 left
    must not be let through for the price of an empty prompt."""
    teams = {"referrer": {"tier": "tier-5", "budget_usd": "0.05"}}
    gateway = serve_teams(start_gateway, redis_server, tmp_path, teams)
    client = sdk(gateway, "referrer")
    first = client.responses.create(model="gpt-4o", input="Hi.", max_output_tokens=16)
    item_id = first.output[0].id
    assert item_id is not None
    before = spend(store, "referrer")[0]
    given: Any = [
        {"role": "user", "content": "word " * 40_000},
        {"type": "item_reference", "id": item_id},
    ]
    with pytest.raises(openai.RateLimitError) as info:
        client.responses.create(model="gpt-4o", input=given, max_output_tokens=16)
    assert info.value.code == "request_over_budget"
    assert spend(store, "referrer") == (before, 0)


def test_a_native_call_chained_to_a_translated_one_holds_its_conversation_with_hosted_tools(
    start_gateway: GatewayFactory, redis_server: str, tmp_path: Path, store: redis.Redis
) -> None:
    """A response the gateway translated (o1-mini) is continued on a native model with a hosted
    tool, which chat cannot carry: the gateway spells the stored conversation (20,000 tokens)
    out for upstream, which bills it as input ($0.025 here, mostly cached), so the hold must
    count it even though the tool's calls are bounded at none; a team with $0.015 left must not
    be let through for the price of its new words."""
    teams = {"chained": {"tier": "tier-5", "budget_usd": "0.075"}}
    search = {"web_search": Usd(usd_to_micros("0.01", "web_search"))}
    gateway = serve_teams(start_gateway, redis_server, tmp_path, teams, hosted_tools=search)
    client = sdk(gateway, "chained")
    first = client.responses.create(model="o1-mini", input="word " * 20_000, max_output_tokens=16)
    spent, held = spend(store, "chained")
    assert 60_000 <= spent <= 61_000 and held == 0  # $0.06 of o1-mini input
    with pytest.raises(openai.RateLimitError) as info:
        client.responses.create(
            model="gpt-4o", input="And then?", max_output_tokens=16, previous_response_id=first.id,
            tools=[{"type": "web_search"}], max_tool_calls=0,
        )  # fmt: skip
    assert info.value.code == "request_over_budget"
    assert spend(store, "chained") == (spent, 0)
