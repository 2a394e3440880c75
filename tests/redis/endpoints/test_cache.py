"""The exact response cache and request coalescing, end to end: the `openai` SDK over real
sockets, a real redis-server, the simulated upstream's request log and bill.

A repeated request is answered from the cache (chat and Responses, whole and streamed), charged
the configured share of the original, never across teams, and survives a restart; identical
requests in flight share one upstream call, on one replica or several; errors, tool calls and
stored objects are never kept."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
import redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.config import SimulatorConfig
from gateway.routing.heuristic import DEFAULT
from gateway.simulator import create_simulator
from tests.conftest import SIM_KEY, GatewayFactory, ServerThread, base_config, free_port, scrape
from tests.redis.admission.test_end_to_end import month, spend
from tests.redis.endpoints.teams import billed, joined, key_of, sdk, serve_teams
from tests.redis.test_faults import wait_for
from tests.server.upstream.test_dispatch import config_with

TEAMS: dict[str, dict[str, str]] = {
    "alpha": {"tier": "tier-5", "cache": "true"},
    "beta": {"tier": "tier-5", "cache": "true"},
    "plain": {"tier": "tier-5"},
    "thrifty": {"tier": "tier-5", "cache": "true", "budget_usd": "1"},
    "rigid": {"tier": "tier-5", "cache": "true", "strict": "true"},
}
BUDGET_MICROS = 1_000_000  # thrifty's
ON = {"x-gateway-cache": "on"}
ADMIN_KEY = "admin-key-of-the-cache-tests-0123456789"


Serve = Callable[..., ServerThread]


@pytest.fixture
def serve(start_gateway: GatewayFactory, redis_server: str, tmp_path: Path) -> Serve:
    """Gateways on the same redis-server; keyword args replace config sections."""

    def start(**sections: Any) -> ServerThread:
        return serve_teams(start_gateway, redis_server, tmp_path, TEAMS, **sections)

    return start


@pytest.fixture
def gateway(serve: Serve) -> ServerThread:
    return serve()


@pytest.fixture
def prompt(simulator: ServerThread) -> Iterator[str]:
    """A prompt no other test sends, and the simulator's bill reset."""
    httpx.delete(f"{simulator.url}/_sim/bill")
    yield f"Say hello ({secrets.token_hex(6)})."


def upstream_calls(simulator: ServerThread, text: str) -> int:
    """The calls the simulated upstream received whose body mentions `text`."""
    log: list[dict[str, Any]] = httpx.get(f"{simulator.url}/_sim/requests").json()["data"]
    return sum(1 for entry in log if text in str(entry.get("body")))


def chat(client: openai.OpenAI, prompt: str, **extra: Any) -> Any:
    return client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": prompt}], **extra
    )


def streamed_text(raw: Any) -> str:
    return "".join(chunk.choices[0].delta.content or "" for chunk in raw.parse() if chunk.choices)


def test_a_repeated_chat_request_is_answered_from_the_cache(
    gateway: ServerThread, simulator: ServerThread, store: redis.Redis, prompt: str
) -> None:
    client = sdk(gateway, "alpha")
    first = chat(client, prompt)
    second = chat(client, prompt)
    assert first.headers["x-gateway-cache"] == "miss"
    assert second.headers["x-gateway-cache"] == "hit"
    assert int(second.headers["x-gateway-cache-age"]) >= 0
    assert second.parse().model_dump() == first.parse().model_dump()
    assert upstream_calls(simulator, prompt) == 1
    # Hits are free by default: the team paid exactly what upstream billed, once.
    assert spend(store, "alpha") == (billed(simulator), 0)
    metrics = scrape(gateway.url)
    assert 'gateway_cache_hits_total{model="gpt-4o",team="alpha"} 1.0' in metrics
    assert 'gateway_cache_misses_total{model="gpt-4o",team="alpha"} 1.0' in metrics
    saved = f'gateway_cache_saved_microdollars_total{{model="gpt-4o",team="alpha"}} {billed(simulator)}.0'
    assert saved in metrics


def test_a_streamed_chat_request_is_replayed_from_the_cache(
    gateway: ServerThread, simulator: ServerThread, prompt: str
) -> None:
    client = sdk(gateway, "alpha")
    options = {"stream": True, "stream_options": {"include_usage": True}}
    first = chat(client, prompt, **options)
    text = streamed_text(first)
    second = chat(client, prompt, **options)
    assert (first.headers["x-gateway-cache"], second.headers["x-gateway-cache"]) == ("miss", "hit")
    chunks = list(second.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    # The same request unstreamed is the same answer, whole; streamed without usage, no usage.
    whole = chat(client, prompt)
    assert whole.headers["x-gateway-cache"] == "hit"
    assert whole.parse().choices[0].message.content == text
    assert whole.parse().usage is not None
    bare = list(chat(client, prompt, stream=True).parse())
    assert all(chunk.usage is None for chunk in bare)
    assert upstream_calls(simulator, prompt) == 1


def test_a_stream_whose_client_asked_no_usage_is_kept_with_its_usage(
    gateway: ServerThread, simulator: ServerThread, prompt: str
) -> None:
    client = sdk(gateway, "alpha")
    text = streamed_text(chat(client, prompt, stream=True))
    whole = chat(client, prompt)
    assert whole.headers["x-gateway-cache"] == "hit"
    answer = whole.parse()
    assert answer.choices[0].message.content == text
    assert answer.usage is not None and answer.usage.completion_tokens > 0
    assert upstream_calls(simulator, prompt) == 1


@pytest.mark.parametrize("model", ["gpt-4o", "o1-mini"])  # native; translated
def test_a_repeated_responses_request_is_answered_from_the_cache(
    gateway: ServerThread, simulator: ServerThread, store: redis.Redis, prompt: str, model: str
) -> None:
    client = sdk(gateway, "alpha")
    create = client.responses.with_raw_response.create
    first = create(model=model, input=prompt, store=False)
    second = create(model=model, input=prompt, store=False)
    assert (first.headers["x-gateway-cache"], second.headers["x-gateway-cache"]) == ("miss", "hit")
    assert second.parse().output_text == first.parse().output_text
    events = list(create(model=model, input=prompt, store=False, stream=True).parse())
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == first.parse().output_text
    assert upstream_calls(simulator, prompt) == 1
    assert spend(store, "alpha") == (billed(simulator), 0)


def test_a_streamed_responses_request_is_kept_and_replayed(
    gateway: ServerThread, simulator: ServerThread, prompt: str
) -> None:
    client = sdk(gateway, "alpha")
    create = client.responses.with_raw_response.create
    first = create(model="gpt-4o", input=prompt, store=False, stream=True)
    text = "".join(e.delta for e in first.parse() if e.type == "response.output_text.delta")
    whole = create(model="gpt-4o", input=prompt, store=False)
    assert whole.headers["x-gateway-cache"] == "hit"
    assert whole.parse().output_text == text
    assert upstream_calls(simulator, prompt) == 1


def test_a_replayed_responses_stream_pads_its_deltas_unless_asked_not_to(
    gateway: ServerThread, simulator: ServerThread, prompt: str
) -> None:
    """Upstream pads each delta event of a Responses stream with random characters
    (`obfuscation`, so that a payload's size does not tell its text's) unless the request says
    `stream_options.include_obfuscation: false`: a replayed stream does too, with padding of
    its own each time."""
    create = sdk(gateway, "alpha").responses.with_raw_response.create
    asked: Any = {"model": "gpt-4o", "input": prompt, "store": False}
    assert create(**asked).headers["x-gateway-cache"] == "miss"

    def deltas(**extra: Any) -> list[dict[str, Any]]:
        hit = create(**asked, stream=True, **extra)
        assert hit.headers["x-gateway-cache"] == "hit"
        events = [e.model_dump(exclude_unset=True) for e in hit.parse()]
        return [e for e in events if e["type"].endswith(".delta")]

    first, second = deltas(), deltas()
    assert first and all(e["obfuscation"].isalnum() for e in first + second)
    assert [e["obfuscation"] for e in first] != [e["obfuscation"] for e in second]
    plain = deltas(stream_options={"include_obfuscation": False})
    assert plain and not any("obfuscation" in e for e in plain)
    assert upstream_calls(simulator, prompt) == 1


def test_a_hit_is_charged_the_configured_share(
    serve: Serve, simulator: ServerThread, store: redis.Redis, prompt: str
) -> None:
    gateway = serve(cache={"charge_fraction": 0.5})
    client = sdk(gateway, "alpha")
    chat(client, prompt)
    original = billed(simulator)
    assert chat(client, prompt).headers["x-gateway-cache"] == "hit"
    assert billed(simulator) == original
    assert spend(store, "alpha") == (original + (original + 1) // 2, 0)


def test_the_cache_never_crosses_teams(
    gateway: ServerThread, simulator: ServerThread, prompt: str
) -> None:
    assert chat(sdk(gateway, "alpha"), prompt).headers["x-gateway-cache"] == "miss"
    assert chat(sdk(gateway, "beta"), prompt).headers["x-gateway-cache"] == "miss"
    assert chat(sdk(gateway, "beta"), prompt).headers["x-gateway-cache"] == "hit"
    assert upstream_calls(simulator, prompt) == 2


def test_a_shared_cache_serves_no_answer_about_another_teams_object(
    serve: Serve, simulator: ServerThread, prompt: str
) -> None:
    """Every id a request names is checked before the cache is looked at: an answer kept for a
    request naming a team's file is never served to another team, however the cache is scoped."""
    gateway = serve(cache={"shared": True})
    alpha, beta = sdk(gateway, "alpha"), sdk(gateway, "beta")
    doc = alpha.files.create(file=("doc.txt", b"alpha's notes"), purpose="user_data").id
    part: Any = {"type": "file", "file": {"file_id": doc}}
    asked = {"messages": [{"role": "user", "content": [{"type": "text", "text": prompt}, part]}]}
    assert chat_about(alpha, asked).headers["x-gateway-cache"] == "miss"
    assert chat_about(alpha, asked).headers["x-gateway-cache"] == "hit"
    plain = {"messages": [{"role": "user", "content": prompt}]}
    assert chat_about(alpha, plain).headers["x-gateway-cache"] == "miss"
    assert chat_about(beta, plain).headers["x-gateway-cache"] == "hit"  # shared, as configured
    with pytest.raises(openai.NotFoundError) as info:
        chat_about(beta, asked)
    assert info.value.response.json()["error"]["message"] == f"No such File object: {doc}"
    assert upstream_calls(simulator, prompt) == 2


@pytest.mark.parametrize("where", ["here", "another replica"])
def test_in_a_shared_cache_a_leader_leaving_reads_on_only_for_its_own_team(
    serve: Serve, simulator: ServerThread, store: redis.Redis, prompt: str, where: str
) -> None:
    """A leader whose client leaves its stream reads it on, charged whole, for identical
    requests waiting for it: of its own team only. In a shared cache, another team's waiting
    would make the leader's team pay the whole answer, which that team gets for nothing (its
    hits cost `cache.charge_fraction`, 0): alpha's stream is stopped as one nobody waits for,
    charged what was generated, and one of beta's requests calls upstream, paid by beta, the
    other waiting for its answer."""
    gateway = serve(cache={"shared": True})
    waiting = gateway if where == "here" else serve(cache={"shared": True})
    answer = " ".join(["word"] * 200)
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": prompt}], "stream": True}
    knobs = {"x-sim-answer": answer, "x-sim-chunk-interval-ms": "20"}

    def headers(team: str) -> dict[str, str]:
        return {"authorization": f"Bearer {key_of(team)}", **knobs}

    async def scenario() -> list[httpx.Response]:
        url = "/v1/chat/completions"
        async with httpx.AsyncClient(timeout=30) as http:
            async with http.stream(
                "POST", f"{gateway.url}{url}", json=body, headers=headers("alpha")
            ) as leader:
                assert leader.headers["x-gateway-cache"] == "miss"
                lines = leader.aiter_lines()  # kept: a line iterator dropped closes the stream
                await anext(lines)
                waiters = [
                    asyncio.create_task(
                        http.post(f"{waiting.url}{url}", json=body, headers=headers("beta"))
                    )
                    for _ in range(2)
                ]
                await joined(waiting, "beta", 2, None if waiting is gateway else store)
            return await asyncio.gather(*waiters)

    waited = asyncio.run(scenario())
    assert all(answer.status_code == 200 for answer in waited)
    assert sorted(answer.headers["x-gateway-cache"] for answer in waited) == ["hit", "miss"]
    wait_for(lambda: spend(store, "alpha")[1] == spend(store, "beta")[1] == 0, 10, "charges")
    alpha, beta = spend(store, "alpha")[0], spend(store, "beta")[0]
    # beta paid the whole answer of its one call; alpha, stopped, far less than one.
    assert upstream_calls(simulator, prompt) == 2
    assert 0 < alpha < beta / 2


def chat_about(client: openai.OpenAI, asked: dict[str, Any]) -> Any:
    return client.chat.completions.with_raw_response.create(model="gpt-4o", **asked)


def test_a_request_upstream_refuses_is_never_a_hit_on_one_it_answered(
    gateway: ServerThread, simulator: ServerThread, store: redis.Redis, prompt: str
) -> None:
    """The key leaves out fields that do not change the answer (`stream`, `stream_options`,
    `background`, ...), but not where upstream refuses them: a strict team's requests go
    upstream unpatched, and o1-mini refuses `stream: true` (a patched stream is faked); chat
    completions have no `background`; `stream_options` without `stream` is refused too (in
    upstream's words by the gateway, before upstream, as a patched request is), and a
    `prompt_cache_key` of more than 64 characters (by OpenAI; the simulator takes it). Each
    was served the answer kept for the same request without it, where upstream answers a 400:
    it reaches the client as upstream wrote it, every time (never kept), and costs nothing."""
    messages: Any = [{"role": "user", "content": prompt}]
    strict = sdk(gateway, "rigid").chat.completions.with_raw_response.create
    assert strict(model="o1-mini", messages=messages).headers["x-gateway-cache"] == "miss"
    with pytest.raises(openai.BadRequestError) as refused:
        strict(model="o1-mini", messages=messages, stream=True)
    assert refused.value.code == "unsupported_value"
    assert refused.value.response.headers["x-gateway-cache"] == "miss"
    client = sdk(gateway, "alpha")
    assert chat(client, prompt).headers["x-gateway-cache"] == "miss"
    with pytest.raises(openai.BadRequestError) as refused:
        chat(client, prompt, extra_body={"background": False})
    assert "background" in refused.value.message
    assert refused.value.response.headers["x-gateway-cache"] == "miss"
    charged = spend(store, "alpha")
    for _ in range(2):
        with pytest.raises(openai.BadRequestError) as refused:
            chat(client, prompt, stream_options={"include_usage": True})
        assert refused.value.body == {
            "message": "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            "type": "invalid_request_error",
            "param": "stream_options",
            "code": None,
        }
        assert refused.value.response.headers["x-gateway-cache"] == "miss"
    assert spend(store, "alpha") == charged
    # OpenAI: "Invalid 'prompt_cache_key': string too long" (the simulator takes it).
    long_key = chat(client, prompt, extra_body={"prompt_cache_key": "k" * 65})
    assert long_key.headers["x-gateway-cache"] == "miss"
    assert upstream_calls(simulator, prompt) == 5  # the two stream_options refusals: none


def test_the_cache_is_off_unless_turned_on(
    gateway: ServerThread, simulator: ServerThread, prompt: str
) -> None:
    client = sdk(gateway, "plain")
    assert "x-gateway-cache" not in chat(client, prompt).headers
    assert chat(client, prompt, extra_headers=ON).headers["x-gateway-cache"] == "miss"
    assert chat(client, prompt, extra_headers=ON).headers["x-gateway-cache"] == "hit"
    off = chat(sdk(gateway, "alpha"), prompt, extra_headers={"x-gateway-cache": "off"})
    assert off.headers["x-gateway-cache"] == "bypass"
    assert upstream_calls(simulator, prompt) == 3
    with pytest.raises(openai.BadRequestError) as info:
        chat(client, prompt, extra_headers={"x-gateway-cache": "maybe"})
    assert info.value.code == "invalid_value"


def test_refresh_calls_upstream_and_overwrites(
    gateway: ServerThread, simulator: ServerThread, prompt: str
) -> None:
    client = sdk(gateway, "alpha")
    first = chat(client, prompt).parse()
    refreshed = chat(client, prompt, extra_headers={"x-gateway-cache": "refresh"})
    assert refreshed.headers["x-gateway-cache"] == "refresh"
    assert refreshed.parse().id != first.id
    after = chat(client, prompt)
    assert after.headers["x-gateway-cache"] == "hit"
    assert after.parse().id == refreshed.parse().id
    assert upstream_calls(simulator, prompt) == 2


def test_errors_tool_calls_and_stored_objects_are_not_kept(
    gateway: ServerThread, simulator: ServerThread, prompt: str
) -> None:
    client = sdk(gateway, "alpha")
    for _ in range(2):
        # A stream that fails after its first chunks (a whole answer's 5xx is retried first).
        failing = chat(client, prompt, stream=True, extra_headers={"x-sim-fault": "stream-error"})
        assert failing.headers["x-gateway-cache"] == "miss"
        with pytest.raises(openai.APIError):
            list(failing.parse())
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    forced = {"type": "function", "function": {"name": "lookup"}}
    for _ in range(2):
        called = chat(client, prompt + " tools", tools=[tool], tool_choice=forced)
        assert called.headers["x-gateway-cache"] == "bypass"
        assert called.parse().choices[0].finish_reason == "tool_calls"
        stored = chat(client, prompt + " stored", store=True)
        assert stored.headers["x-gateway-cache"] == "bypass"
        kept = client.responses.with_raw_response.create(model="gpt-4o", input=prompt + " kept")
        assert kept.headers["x-gateway-cache"] == "bypass"
    assert upstream_calls(simulator, prompt) == 8
    # Asked for, tool calls are kept.
    asked = {"x-gateway-cache-tools": "on"}
    for status in ("miss", "hit"):
        called = chat(
            client, prompt + " asked", tools=[tool], tool_choice=forced, extra_headers=asked
        )
        assert called.headers["x-gateway-cache"] == status
        assert called.parse().choices[0].message.tool_calls
    assert upstream_calls(simulator, prompt) == 9


@pytest.mark.parametrize("stream", [False, True])
def test_legacy_function_calls_are_not_kept(
    gateway: ServerThread, simulator: ServerThread, prompt: str, stream: bool
) -> None:
    """`functions` (with `function_call`) are chat's tools before `tools`: an answer that calls
    one (`message.function_call`, `finish_reason: stop` when the call is forced) is no answer
    to keep, as tool calls are not, and a kept stream or its replay would lose the call (only
    `tool_calls` are gathered and replayed): not kept, even where tool answers may be."""
    client = sdk(gateway, "alpha")
    function = {"name": "lookup", "parameters": {"type": "object", "properties": {}}}
    for headers in ({}, {"x-gateway-cache-tools": "on"}):
        for _ in range(2):
            called = chat(
                client, prompt, functions=[function], function_call={"name": "lookup"},
                stream=stream, extra_headers=headers,
            )  # fmt: skip
            assert called.headers["x-gateway-cache"] == "bypass"
    assert upstream_calls(simulator, prompt) == 4


def test_a_hit_survives_a_gateway_restart(
    serve: Serve, simulator: ServerThread, prompt: str
) -> None:
    first = serve()
    answer = chat(sdk(first, "alpha"), prompt).parse()
    first.__exit__()
    second = serve()
    again = chat(sdk(second, "alpha"), prompt)
    assert again.headers["x-gateway-cache"] == "hit"
    assert again.parse().id == answer.id
    assert upstream_calls(simulator, prompt) == 1


# A day o1-preview (shut down on 2025-07-28) is past its shutdown, upstream and in the gateway.
SHUT_DOWN_DAY = "2026-12-05"


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_an_answer_kept_before_its_models_shutdown_is_not_served_after_it(
    serve: Serve, prompt: str, api: str
) -> None:
    """With the shield off, a request naming a shut-down model goes upstream as named, which
    refuses it: an answer kept for it before its day would be an answer from a model that no
    longer exists. With the shield on, its successor serves it, keyed as the successor."""

    def ask(gateway: ServerThread) -> Any:
        client = sdk(gateway, "alpha")
        if api == "chat":
            create = client.chat.completions.with_raw_response.create
            return create(model="o1-preview", messages=[{"role": "user", "content": prompt}])
        create_response = client.responses.with_raw_response.create
        return create_response(model="o1-preview", input=prompt, store=False)

    before = serve(retirement={"shield": False})
    assert [ask(before).headers["x-gateway-cache"] for _ in range(2)] == ["miss", "hit"]
    with ServerThread(
        create_simulator(SimulatorConfig(today=SHUT_DOWN_DAY, request_log=50))
    ) as upstream:
        config = base_config(
            OPENAI_BASE_URL=f"{upstream.url}/v1", OPENAI_API_KEY=SIM_KEY,
            O1GW__RETIREMENT__TODAY=SHUT_DOWN_DAY,
        )  # fmt: skip
        unshielded = serve(config=config, retirement={"shield": False})
        with pytest.raises(openai.NotFoundError) as refused:
            ask(unshielded)
        assert refused.value.code == "model_not_found"
        assert refused.value.response.headers["x-gateway-cache"] == "bypass"
        assert upstream_calls(upstream, prompt) == 1
        shielded = serve(config=config)
        answers = [ask(shielded) for _ in range(2)]
        assert [a.headers["x-gateway-cache"] for a in answers] == ["miss", "hit"]
        substituted = answers[0].headers["x-gateway-model-substituted"]
        assert substituted == "o1-preview -> gpt-6.2-astra"
        assert upstream_calls(upstream, prompt) == 2


def concurrent(gateways: list[ServerThread], prompt: str, count: int, **extra: Any) -> list[Any]:
    slow = {"x-sim-latency-ms": "500"}

    def one(i: int) -> Any:
        return chat(sdk(gateways[i % len(gateways)], "alpha"), prompt, extra_headers=slow, **extra)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def test_identical_requests_in_flight_share_one_upstream_call(
    gateway: ServerThread, simulator: ServerThread, store: redis.Redis, prompt: str
) -> None:
    answers = concurrent([gateway], prompt, 50)
    assert upstream_calls(simulator, prompt) == 1
    assert len({a.parse().choices[0].message.content for a in answers}) == 1
    statuses = sorted(a.headers["x-gateway-cache"] for a in answers)
    assert statuses == ["hit"] * 49 + ["miss"]
    assert spend(store, "alpha") == (billed(simulator), 0)


def test_identical_streams_in_flight_share_one_upstream_call(
    gateway: ServerThread, simulator: ServerThread, prompt: str
) -> None:
    answers = concurrent([gateway], prompt, 20, stream=True)
    assert upstream_calls(simulator, prompt) == 1
    assert len({streamed_text(a) for a in answers}) == 1


class FirstCallFails:
    """An upstream whose first chat call fails (a 500) once the test lets it (`fail`); the
    others are passed on to the simulator."""

    def __init__(self, simulator: ServerThread) -> None:
        self.simulator = simulator.url
        self.calls = 0
        self.fail = threading.Event()
        self.app = Starlette(routes=[Route("/v1/chat/completions", self.chat, methods=["POST"])])

    async def chat(self, request: Request) -> Response:
        self.calls += 1
        body = await request.body()
        if self.calls == 1:
            await asyncio.to_thread(self.fail.wait, 30)
            error = {"message": "The server had an error.", "type": "server_error"}
            return JSONResponse({"error": {**error, "param": None, "code": None}}, 500)
        async with httpx.AsyncClient(timeout=30) as http:
            answer = await http.post(
                f"{self.simulator}/v1/chat/completions", content=body,
                headers={k: request.headers[k] for k in ("authorization", "content-type")},
            )  # fmt: skip
        return Response(answer.content, answer.status_code, media_type="application/json")


# Where each of the requests after the first goes: the first one's replica (0) or another (1).
SPREADS = {"here": (0,), "another replica": (1,), "both": (0, 1)}


@pytest.mark.parametrize("spread", SPREADS)
def test_when_the_call_identical_requests_wait_for_fails_one_of_them_calls_again(
    serve: Serve, simulator: ServerThread, store: redis.Redis, prompt: str, spread: str
) -> None:
    """Twelve identical requests: the first one's call fails (upstream's 500, no retry) once
    the others wait for it, on its replica, on another (polling Redis) or on both. They elect
    one of them to call again (here, or by the lock the failed call freed in Redis), and the
    rest wait for its answer, rather than each calling upstream alone: upstream sees two
    calls, eleven requests get one answer (one miss, ten hits), and the team pays for one
    answer, the one upstream billed."""
    count, places = 12, SPREADS[spread]
    upstream = FirstCallFails(simulator)
    with ServerThread(upstream.app) as front:
        config = base_config(OPENAI_BASE_URL=f"{front.url}/v1", OPENAI_API_KEY=SIM_KEY)
        gateways = [serve(config=config, upstream={"retries": 0}) for _ in range(2)]
        caches = [g.server.config.app.state.gateway.cache for g in gateways]
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": prompt}]}
        headers = {"authorization": f"Bearer {key_of('alpha')}"}

        def waiting(calls: int, others: int) -> Callable[[], bool]:
            return lambda: (
                upstream.calls == calls
                and sum(cache.waiting("alpha") for cache in caches) == others
            )

        async def scenario() -> list[httpx.Response]:
            async with httpx.AsyncClient(timeout=60) as http:

                def ask(replica: int) -> asyncio.Task[httpx.Response]:
                    url = f"{gateways[replica].url}/v1/chat/completions"
                    return asyncio.create_task(http.post(url, json=body, headers=headers))

                first = ask(0)
                await asyncio.to_thread(wait_for, waiting(1, 0), 10, "the first call")
                rest = [ask(places[i % len(places)]) for i in range(count - 1)]
                await asyncio.to_thread(
                    wait_for, waiting(1, count - 1), 10, "the others to wait for it"
                )
                upstream.fail.set()
                return [await first, *await asyncio.gather(*rest)]

        answers = asyncio.run(scenario())
        assert upstream.calls == 2
    assert answers[0].status_code == 500 and answers[0].headers["x-gateway-cache"] == "miss"
    served = answers[1:]
    assert all(a.status_code == 200 for a in served)
    assert len({a.json()["choices"][0]["message"]["content"] for a in served}) == 1
    assert sorted(a.headers["x-gateway-cache"] for a in served) == ["hit"] * 10 + ["miss"]
    wait_for(lambda: spend(store, "alpha")[1] == 0, 10, "the holds to settle")
    assert upstream_calls(simulator, prompt) == 1
    assert spend(store, "alpha") == (billed(simulator), 0)


def test_a_waiter_whose_client_left_calls_nothing_when_the_answer_cannot_be_kept(
    gateway: ServerThread, simulator: ServerThread, store: redis.Redis, prompt: str
) -> None:
    """Identical requests wait for a slow call whose answer may not be kept (cut short at
    `max_tokens`): each then calls upstream itself. Three of their clients gave up while they
    waited: they call nothing (upstream would bill an answer nobody reads, charged to their
    team); the one still there gets its answer."""
    body = {
        "model": "gpt-4o", "messages": [{"role": "user", "content": prompt}], "max_tokens": 3,
    }  # fmt: skip
    headers = {
        "authorization": f"Bearer {key_of('alpha')}", **ON, "x-sim-latency-ms": "1500",
        "x-sim-answer": " ".join(["word"] * 20),
    }  # fmt: skip
    url = f"{gateway.url}/v1/chat/completions"

    async def scenario() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as http:
            leader = asyncio.create_task(http.post(url, json=body, headers=headers))
            await asyncio.to_thread(
                wait_for, lambda: upstream_calls(simulator, prompt) == 1, 10, "the first call"
            )
            stays = asyncio.create_task(http.post(url, json=body, headers=headers))
            async with httpx.AsyncClient(timeout=30) as leaving:
                gone = [
                    asyncio.create_task(leaving.post(url, json=body, headers=headers))
                    for _ in range(3)
                ]
                await joined(gateway, "alpha", 4)
                for request in gone:
                    request.cancel()  # the client gives up: its connection is dropped
                await asyncio.gather(*gone, return_exceptions=True)
            return [await leader, await stays]

    first, waited = asyncio.run(scenario())
    assert first.json()["choices"][0]["finish_reason"] == "length"
    assert waited.status_code == 200 and waited.headers["x-gateway-cache"] == "miss"
    wait_for(lambda: gateway.requests_in_flight() == 0, 10, "the requests to end")
    assert upstream_calls(simulator, prompt) == 2
    assert spend(store, "alpha")[1] == 0


def test_replicas_decide_in_redis_who_calls_upstream(
    serve: Serve, simulator: ServerThread, prompt: str
) -> None:
    replicas = [serve() for _ in range(2)]
    answers = concurrent(replicas, prompt, 50)
    assert upstream_calls(simulator, prompt) == 1
    assert len({a.parse().choices[0].message.content for a in answers}) == 1


def test_a_routing_policy_turns_the_cache_on_for_the_model_it_picks(
    serve: Serve, simulator: ServerThread, prompt: str
) -> None:
    # Policies as a loaded config has them: the o1-2024 line-up's models filled in.
    policies = {"auto": dataclasses.replace(DEFAULT, cache=True), "auto-cheap": DEFAULT}
    gateway = serve(routing={"policies": policies})
    client = sdk(gateway, "plain")
    messages = [{"role": "user", "content": prompt}]
    create = client.chat.completions.with_raw_response.create
    routed = create(model="auto", messages=messages)  # type: ignore[arg-type]
    assert routed.headers["x-gateway-cache"] == "miss"
    picked = routed.headers["x-gateway-route-model"]
    assert create(model="auto", messages=messages).headers["x-gateway-cache"] == "hit"  # type: ignore[arg-type]
    assert "x-gateway-cache" not in create(model="auto-cheap", messages=messages).headers  # type: ignore[arg-type]
    # The key is the model routed to, not the alias: asking for it by name is the same request.
    direct = create(model=picked, messages=messages, extra_headers=ON)  # type: ignore[arg-type]
    assert direct.headers["x-gateway-cache"] == "hit"


def test_an_admin_turns_a_teams_cache_on(
    serve: Serve, simulator: ServerThread, prompt: str
) -> None:
    gateway = serve(server={"admin_key": ADMIN_KEY})
    admin = {"authorization": f"Bearer {ADMIN_KEY}"}
    client = sdk(gateway, "plain")
    answer = httpx.patch(f"{gateway.url}/admin/teams/plain", json={"cache": True}, headers=admin)
    assert answer.status_code == 200 and answer.json()["cache"] is True
    assert [chat(client, prompt).headers["x-gateway-cache"] for _ in range(2)] == ["miss", "hit"]
    bad = httpx.patch(f"{gateway.url}/admin/teams/plain", json={"cache": "yes"}, headers=admin)
    assert bad.status_code == 400 and "cache" in bad.json()["error"]["message"]


@pytest.mark.parametrize("stream", [False, True])
def test_a_hit_is_charged_its_share_of_what_the_original_was_charged_at_its_service_tier(
    serve: Serve, simulator: ServerThread, store: redis.Redis, prompt: str, stream: bool
) -> None:
    """A priority answer is charged twice the standard price: a hit is charged its share of
    that, and saves the rest of that, not of the standard price."""
    gateway = serve(cache={"charge_fraction": 0.5})
    client = sdk(gateway, "alpha")
    first = chat(client, prompt, service_tier="priority", stream=stream)
    if stream:
        streamed_text(first)
    original, _ = spend(store, "alpha")
    hit = chat(client, prompt, service_tier="priority")
    assert hit.headers["x-gateway-cache"] == "hit"
    share = (original + 1) // 2
    assert spend(store, "alpha") == (original + share, 0)
    saved = f'gateway_cache_saved_microdollars_total{{model="gpt-4o",team="alpha"}} {original - share}.0'
    assert saved in scrape(gateway.url)


def test_two_names_of_one_upstream_model_keep_their_answers_apart(
    serve: Serve, simulator: ServerThread, store: redis.Redis, prompt: str
) -> None:
    """`gpt-4o-resold` is gpt-4o upstream at twice its price (a team's, with a margin; or with
    its own allow-list): an answer kept for gpt-4o is no hit for it, which would be charged a
    share of gpt-4o's cost and count gpt-4o's price as saved under its name. Its own hit is
    charged its share of its own answer, and saves the rest of that."""
    shipped = base_config(OPENAI_BASE_URL=f"{simulator.url}/v1", OPENAI_API_KEY=SIM_KEY)
    gpt_4o = shipped.models["gpt-4o"]
    price = gpt_4o.price
    doubled = dataclasses.replace(
        price, input=2 * price.input, cached_input=2 * price.cached_input,
        output=2 * price.output, cache_write=2 * price.cache_write,
    )  # fmt: skip
    resold = dataclasses.replace(gpt_4o, price=doubled)
    config = dataclasses.replace(shipped, models={**shipped.models, "gpt-4o-resold": resold})
    gateway = serve(config=config, cache={"charge_fraction": 0.5})
    client = sdk(gateway, "alpha")
    assert chat(client, prompt).headers["x-gateway-cache"] == "miss"
    plain, _ = spend(store, "alpha")
    create = client.chat.completions.with_raw_response.create
    messages: Any = [{"role": "user", "content": prompt}]
    first = create(model="gpt-4o-resold", messages=messages)
    assert first.headers["x-gateway-cache"] == "miss"
    original = spend(store, "alpha")[0] - plain
    assert original > plain  # at twice the price
    hit = create(model="gpt-4o-resold", messages=messages)
    assert hit.headers["x-gateway-cache"] == "hit"
    share = (original + 1) // 2
    assert spend(store, "alpha") == (plain + original + share, 0)
    assert upstream_calls(simulator, prompt) == 2
    metrics = scrape(gateway.url)
    saved = f'gateway_cache_saved_microdollars_total{{model="gpt-4o-resold",team="alpha"}} {original - share}.0'
    assert saved in metrics
    assert 'gateway_cache_saved_microdollars_total{model="gpt-4o",team="alpha"}' not in metrics


PIXEL = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8/5+hHgAHggJ/PchI7wAAAABJRU5ErkJggg=="


def test_an_answer_about_content_upstream_fetches_from_a_url_is_not_kept(
    gateway: ServerThread, simulator: ServerThread, prompt: str
) -> None:
    """What an image or a file at a URL shows may change while the request stays the same: the
    answer about it is never kept. An image sent inline is part of the request: it is."""
    client = sdk(gateway, "alpha")
    create = client.responses.with_raw_response.create

    def chat_on(image: str) -> Any:
        part = {"type": "image_url", "image_url": {"url": image}}
        messages: Any = [{"role": "user", "content": [{"type": "text", "text": prompt}, part]}]
        return chat_about(client, {"messages": messages})

    def respond_on(part: dict[str, Any]) -> Any:
        content = [{"type": "input_text", "text": prompt + " responses"}, part]
        given: Any = [{"role": "user", "content": content}]
        return create(model="gpt-4o", input=given, store=False)

    remote = [
        lambda: chat_on("https://example.com/today.png"),
        lambda: respond_on({"type": "input_image", "image_url": "https://example.com/today.png"}),
    ]
    for ask in remote:
        assert [ask().headers["x-gateway-cache"] for _ in range(2)] == ["bypass", "bypass"]
    assert upstream_calls(simulator, prompt) == 4
    assert [chat_on(PIXEL).headers["x-gateway-cache"] for _ in range(2)] == ["miss", "hit"]
    assert upstream_calls(simulator, prompt) == 5


def test_an_answer_a_fallback_model_gave_is_not_kept_for_the_model_asked(
    start_gateway: GatewayFactory,
    redis_server: str,
    tmp_path: Path,
    simulator: ServerThread,
    prompt: str,
) -> None:
    """A replica whose o1-preview is down answers with its fallback, o1-mini: that answer is
    not what o1-preview says, and is not served from the cache to a request for o1-preview
    that o1-preview (here, on another replica) can answer."""
    config = config_with(f"{simulator.url}/v1", broken=f"http://127.0.0.1:{free_port()}/v1")
    down = serve_teams(
        start_gateway, redis_server, tmp_path, TEAMS, config=config,
        upstream={"retry_backoff_s": 0.01, "breaker_failures": 100},
    )  # fmt: skip
    healthy = serve_teams(start_gateway, redis_server, tmp_path, TEAMS)
    messages: Any = [{"role": "user", "content": prompt}]

    def ask(gateway: ServerThread) -> Any:
        create = sdk(gateway, "alpha").chat.completions.with_raw_response.create
        return create(model="o1-preview", messages=messages)

    fallen = ask(down)
    assert fallen.headers["x-gateway-fallback"].startswith("o1-preview -> o1-mini")
    assert fallen.parse().model.startswith("o1-mini")
    answer = ask(healthy)
    assert answer.headers["x-gateway-cache"] == "miss"
    assert answer.parse().model.startswith("o1-preview")
    assert ask(healthy).headers["x-gateway-cache"] == "hit"


def gateway_headers(raw: Any) -> dict[str, str]:
    """What the gateway says it did, less what is each answer's own."""
    own = {"x-gateway-cache", "x-gateway-cache-age", "x-gateway-upstream-ms"}
    return {
        name: value
        for name, value in raw.headers.items()
        if name.startswith("x-gateway-") and name not in own
    }


@pytest.mark.parametrize("stream", [False, True])
def test_a_hit_says_what_was_done_to_its_answer_as_the_miss_did(
    gateway: ServerThread, simulator: ServerThread, prompt: str, stream: bool
) -> None:
    """A patched chat answer (o1-mini takes no system message) and a Responses answer
    translated to chat completions: the hit carries the miss's `x-gateway-patched` and
    `x-gateway-translated`, since its answer is the one they describe."""
    client = sdk(gateway, "alpha")
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": prompt}]
    asked: list[Callable[[], Any]] = [
        lambda: client.chat.completions.with_raw_response.create(
            model="o1-mini", messages=messages, stream=stream
        ),
        lambda: client.responses.with_raw_response.create(
            model="o1-mini", input=prompt, instructions="Be brief.", store=False, stream=stream
        ),
    ]
    for ask in asked:
        miss, hit = ask(), ask()
        assert (miss.headers["x-gateway-cache"], hit.headers["x-gateway-cache"]) == ("miss", "hit")
        assert "x-gateway-patched" in gateway_headers(miss)
        assert gateway_headers(hit) == gateway_headers(miss)


def test_a_schema_in_another_property_order_is_another_request(
    gateway: ServerThread, simulator: ServerThread, prompt: str
) -> None:
    """A structured answer gives its properties in the order its schema lists them (the model
    writes them in that order: reasoning before its answer, or after): not the same request."""
    client = sdk(gateway, "alpha")

    def answered(*names: str) -> Any:
        schema = {"type": "object", "properties": {name: {"type": "string"} for name in names}}
        asked = {"type": "json_schema", "json_schema": {"name": "verdict", "schema": schema}}
        return chat(client, prompt, response_format=asked)

    first = answered("reasoning", "answer")
    second = answered("answer", "reasoning")
    assert list(orjson.loads(first.parse().choices[0].message.content)) == ["reasoning", "answer"]
    assert second.headers["x-gateway-cache"] == "miss"
    assert list(orjson.loads(second.parse().choices[0].message.content)) == ["answer", "reasoning"]
    assert answered("answer", "reasoning").headers["x-gateway-cache"] == "hit"
    assert upstream_calls(simulator, prompt) == 2


def test_an_answer_from_a_stored_prompt_template_is_not_kept(
    gateway: ServerThread, simulator: ServerThread, prompt: str
) -> None:
    """A template is kept upstream and the gateway cannot read it: its next version (the one a
    request without `version` gets), or a hosted tool it brings, such as a web search, changes
    the answer while the request stays the same."""
    create = sdk(gateway, "alpha").responses.with_raw_response.create
    for _ in range(2):
        answered = create(
            model="gpt-4o", input=prompt, store=False, prompt={"id": "pmpt_1"}, max_tool_calls=0
        )
        assert answered.headers["x-gateway-cache"] == "bypass"
    assert upstream_calls(simulator, prompt) == 2


def test_a_streamed_hit_says_the_service_tier_that_served_it(
    gateway: ServerThread, simulator: ServerThread, prompt: str
) -> None:
    """Each chunk of a stream names the tier that served the call (what the client is billed
    at); a replay names the one the kept answer says, as the miss did."""
    client = sdk(gateway, "alpha")
    for status in ("miss", "hit"):
        streamed = chat(client, prompt, stream=True, service_tier="priority")
        assert streamed.headers["x-gateway-cache"] == status
        assert {chunk.service_tier for chunk in streamed.parse()} == {"priority"}


@pytest.mark.parametrize("model", ["gpt-4o", "o1-mini"])  # native; translated
def test_a_responses_hit_echoes_who_asked_it_not_who_asked_first(
    serve: Serve, simulator: ServerThread, prompt: str, model: str
) -> None:
    """A Response object echoes the request's `user` (and `safety_identifier`,
    `prompt_cache_key`), which the key leaves out: a hit says this request's, as its miss would
    have, never the first requester's (in a shared cache, another team's end user)."""
    gateway = serve(cache={"shared": True})
    alpha, beta = sdk(gateway, "alpha"), sdk(gateway, "beta")
    asked = {"model": model, "input": prompt, "store": False}
    first = alpha.responses.with_raw_response.create(**asked, user="alice@alpha.example")
    assert first.headers["x-gateway-cache"] == "miss"
    assert first.parse().user == "alice@alpha.example"
    for stream in (False, True):
        hit = beta.responses.with_raw_response.create(**asked, user="bob", stream=stream)
        assert hit.headers["x-gateway-cache"] == "hit"
        if stream:
            events = list(hit.parse())
            assert {e.response.user for e in events if hasattr(e, "response")} == {"bob"}
        else:
            assert hit.parse().user == "bob"
    anonymous = beta.responses.with_raw_response.create(**asked)
    assert anonymous.headers["x-gateway-cache"] == "hit"
    assert anonymous.parse().user is None
    assert upstream_calls(simulator, prompt) == 1


@pytest.mark.parametrize("fraction", [0, 0.5])
def test_a_team_that_spent_its_budget_is_served_free_hits_only(
    serve: Serve, simulator: ServerThread, store: redis.Redis, prompt: str, fraction: float
) -> None:
    """A free call is never refused for the budget: a hit charged nothing (the default) is
    served to a team that spent all of it; a hit charged a share of its answer is refused as any paid call is, `insufficient_quota`."""
    gateway = serve(cache={"charge_fraction": fraction})
    client = sdk(gateway, "thrifty")
    assert chat(client, prompt).headers["x-gateway-cache"] == "miss"
    # The rest of the month's budget spent elsewhere.
    spent = spend(store, "thrifty")[0] + BUDGET_MICROS
    store.set(f"{{t:thrifty}}:spend:{month()}", spent)
    if fraction:
        with pytest.raises(openai.RateLimitError) as refused:
            chat(client, prompt)
        assert refused.value.code == "insufficient_quota"
        # As a refused miss says `miss`: the cache had the answer.
        assert refused.value.response.headers["x-gateway-cache"] == "hit"
        with pytest.raises(openai.RateLimitError) as refused:
            chat(client, prompt + " again")
        assert refused.value.response.headers["x-gateway-cache"] == "miss"
    else:
        hit = chat(client, prompt)
        assert hit.headers["x-gateway-cache"] == "hit"
        assert hit.parse().choices[0].message.content
    assert spend(store, "thrifty") == (spent, 0)
    assert upstream_calls(simulator, prompt) == 1


def test_with_admission_off_a_hit_saves_all_its_answer_cost(
    serve: Serve, simulator: ServerThread, prompt: str
) -> None:
    """Without admission nothing is charged, a hit no more than any call: what it saved is all
    its answer would have cost, whatever share a hit would otherwise be charged."""
    gateway = serve(admission={"enabled": False}, cache={"charge_fraction": 0.5})
    client = sdk(gateway, "alpha")
    chat(client, prompt)
    assert chat(client, prompt).headers["x-gateway-cache"] == "hit"
    saved = f'gateway_cache_saved_microdollars_total{{model="gpt-4o",team="alpha"}} {billed(simulator)}.0'
    assert saved in scrape(gateway.url)


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_a_hit_says_its_stream_was_faked_only_when_it_streams(
    gateway: ServerThread, simulator: ServerThread, prompt: str, api: str
) -> None:
    """o1-mini cannot stream: a streamed answer is faked from a whole one, and says so with
    `stream` among its patches. A hit delivered the other way than its miss says what a miss
    delivered its way would have: `stream` when it streams, not when it does not."""
    client = sdk(gateway, "alpha")

    def ask(text: str, stream: bool) -> Any:
        if api == "chat":
            messages: Any = [
                {"role": "system", "content": "Be brief."}, {"role": "user", "content": text}
            ]  # fmt: skip
            return client.chat.completions.with_raw_response.create(
                model="o1-mini", messages=messages, stream=stream
            )
        return client.responses.with_raw_response.create(
            model="o1-mini", input=text, instructions="Be brief.", store=False, stream=stream
        )

    for first in (True, False):
        text = f"{prompt} {first}"
        asked = [ask(text, stream) for stream in (first, not first)]
        assert [raw.headers["x-gateway-cache"] for raw in asked] == ["miss", "hit"]
        for raw, stream in zip(asked, (first, not first), strict=True):
            patched = raw.headers["x-gateway-patched"].split(",")
            assert ("stream" in patched) is stream
            assert "system_messages" in patched


def test_a_query_string_upstream_is_not_sent_is_no_part_of_the_request(
    gateway: ServerThread, simulator: ServerThread, prompt: str
) -> None:
    """A chat request's query string stays at the gateway (upstream is sent none with a
    POST): a request with one is the same request upstream, answered from the same entry."""
    client = sdk(gateway, "alpha")
    assert chat(client, prompt).headers["x-gateway-cache"] == "miss"
    asked = chat(client, prompt, extra_query={"api-version": "2024-10-21"})
    assert asked.headers["x-gateway-cache"] == "hit"
    assert upstream_calls(simulator, prompt) == 1


@pytest.mark.parametrize("shared", [False, True])
def test_a_poller_whose_client_left_calls_nothing_when_the_lock_comes_to_it(
    serve: Serve, simulator: ServerThread, store: redis.Redis, prompt: str, shared: bool
) -> None:
    """A request polling for another replica's call loses its client; then the lock comes to it
    (that replica died: its lock lapsed). Nothing of its team waits for the answer: it calls
    nothing (upstream would bill an answer nobody reads, charged to its team) and ends as a
    499. In a shared cache another team's request joined to it here does not make it call
    either (alpha would pay the whole answer beta gets): beta calls upstream itself, as any
    request whose call was given up does, and pays for it."""
    cache = {"shared": True} if shared else {}
    leading, polling = serve(cache=cache), serve(cache=cache)
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": prompt}]}
    slow = {"x-sim-latency-ms": "3000"}
    url = "/v1/chat/completions"

    def headers(team: str) -> dict[str, str]:
        return {"authorization": f"Bearer {key_of(team)}", **slow}

    async def scenario() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as http:
            leader = asyncio.create_task(
                http.post(f"{leading.url}{url}", json=body, headers=headers("alpha"))
            )
            await asyncio.to_thread(
                wait_for, lambda: upstream_calls(simulator, prompt) == 1, 10, "the first call"
            )
            async with httpx.AsyncClient(timeout=30) as leaving:
                gone = asyncio.create_task(
                    leaving.post(f"{polling.url}{url}", json=body, headers=headers("alpha"))
                )
                await joined(polling, "alpha", 1, store)
                others = []
                if shared:
                    others.append(
                        asyncio.create_task(
                            http.post(f"{polling.url}{url}", json=body, headers=headers("beta"))
                        )
                    )
                    await joined(polling, "beta", 1)
                gone.cancel()  # the client gives up: its connection is dropped
                await asyncio.gather(gone, return_exceptions=True)
            cache = polling.server.config.app.state.gateway.cache
            await asyncio.to_thread(
                wait_for, lambda: cache.waiting("alpha") == 0, 10, "the poller to notice"
            )
            # Its last mark of alpha's waiting lapses; then the leading replica's lock does.
            await asyncio.to_thread(
                wait_for, lambda: not store.keys("gw:cache:*:p:alpha"), 10, "the mark to lapse"
            )
            store.delete(*store.keys("gw:cache:*:l"))
            return [await leader, *await asyncio.gather(*others)]

    answers = asyncio.run(scenario())
    assert all(answer.status_code == 200 for answer in answers)
    wait_for(lambda: polling.requests_in_flight() == 0, 10, "the requests to end")
    assert upstream_calls(simulator, prompt) == 1 + shared
    paid = [spend(store, team) for team in ("alpha", "beta")]
    assert [held for _, held in paid] == [0, 0]
    # alpha paid its leader's answer only; beta, in a shared cache, its own call.
    assert sum(settled for settled, _ in paid) == billed(simulator)
    assert paid[1][0] > 0 if shared else paid[1][0] == 0


def test_a_header_sent_twice_is_keyed_as_upstream_is_sent_it(
    gateway: ServerThread, simulator: ServerThread, prompt: str
) -> None:
    """A forwarded header that steers upstream, given twice, goes upstream as its first value:
    the key holds that one too. Keyed by the last, the answer to `x-sim-answer: first` was kept
    for `x-sim-answer: second` and served (in a shared cache, to another team) as its answer."""
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": prompt}]}
    auth = ("authorization", f"Bearer {key_of('alpha')}")
    url = f"{gateway.url}/v1/chat/completions"
    twice = [auth, ("x-sim-answer", "first"), ("x-sim-answer", "second")]
    answered = httpx.post(url, json=body, headers=twice)
    assert answered.json()["choices"][0]["message"]["content"] == "first"
    for status in ("miss", "hit"):
        once = httpx.post(url, json=body, headers=[auth, ("x-sim-answer", "second")])
        assert once.headers["x-gateway-cache"] == status
        assert once.json()["choices"][0]["message"]["content"] == "second"
    again = httpx.post(url, json=body, headers=[auth, ("x-sim-answer", "first")])
    assert again.headers["x-gateway-cache"] == "hit"
    assert again.json()["choices"][0]["message"]["content"] == "first"
    assert upstream_calls(simulator, prompt) == 2


def test_the_entry_limit_and_ttl_are_the_configured_ones(
    serve: Serve, simulator: ServerThread, store: redis.Redis, prompt: str
) -> None:
    """`cache.max_entry_bytes` bounds what is kept (a stream of 700 words is not, 10 are) and
    `cache.ttl_s` how long Redis keeps it."""
    gateway = serve(cache={"max_entry_bytes": 3000, "ttl_s": 120})
    client = sdk(gateway, "alpha")

    def ask(words: int) -> str:
        raw = chat(
            client, f"{prompt} {words}", stream=True,
            extra_headers={"x-sim-answer": " ".join(["word"] * words)},
        )  # fmt: skip
        assert len(streamed_text(raw).split()) == words
        return str(raw.headers["x-gateway-cache"])

    assert [ask(700) for _ in range(2)] == ["miss", "miss"]
    assert [ask(10) for _ in range(2)] == ["miss", "hit"]
    assert upstream_calls(simulator, prompt) == 3
    kept = store.keys("gw:cache:*:e")
    assert len(kept) == 1 and 0 < store.pttl(kept[0]) <= 120_000  # not the default hour
