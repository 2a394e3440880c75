"""Streams whose client leaves: what the team is charged against what upstream bills, on a real
redis-server, over real sockets.

The simulator bills a stream what it generated until it noticed its reader left (its prompt,
the reasoning of its thinking time, the frames it sent, read or not). The client leaves while
the model thinks (before the first token), after the first tokens, half-way and near the end;
on chat at an answer's pace and unpaced (the whole answer in the gateway's buffers before the
client has read it), on a reasoning model streaming natively, on a faked o1 stream, and on the
Responses API. Every case: the team is charged no less than the bill, no more than its hold,
and no more than the bill and `admission.left_stream_margin_tokens`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
import redis

from gateway.admission.pricing import completions_worst_case, cost_micros, worst_case_micros
from gateway.config import Config, SimulatorConfig
from gateway.simulator import create_simulator
from gateway.wire import tokens
from gateway.wire.usage import Usage
from tests.conftest import SIM_KEY, GatewayFactory, ServerThread, base_config
from tests.redis.admission.test_end_to_end import spend
from tests.redis.endpoints.teams import billed, key_of, teams_yaml
from tests.redis.test_faults import wait_for

TEAM = "leaver"
PROMPT = "Say hello to the gateway, please."
MESSAGES = [{"role": "user", "content": PROMPT}]
LONG_ANSWER = " ".join(["word"] * 100)
# Thinking before the first token: long enough for the client to leave in the middle of it.
THINK_MS = "400"
PACE_MS = "5"
# Where the client leaves: while the model thinks (None), or after reading this many events.
THINKING = None


def config(**env: str) -> Config:
    """The shipped config, with o1-mini also as `o1-native`, streaming natively (as it did from
    November 2024), for tier-5 teams."""
    shipped = base_config(**env)
    o1 = shipped.models["o1-mini"]
    streaming = dataclasses.replace(
        o1, capabilities=dataclasses.replace(o1.capabilities, streaming=True)
    )
    tier = shipped.tiers["tier-5"]
    return dataclasses.replace(
        shipped,
        models={**shipped.models, "o1-native": streaming},
        tiers={
            **shipped.tiers,
            "tier-5": dataclasses.replace(tier, models=(*tier.models, "o1-native")),
        },
    )


CONFIG = config()


@dataclasses.dataclass(frozen=True)
class Case:
    api: str  # chat or responses
    model: str
    knobs: dict[str, str]
    leave: int | None  # events read before leaving; THINKING: before the first
    background: bool = False  # a Responses call upstream runs to its end whoever reads it

    def body(self) -> tuple[str, dict[str, Any]]:
        if self.api == "completions":
            return "/v1/completions", {**LEGACY, "model": self.model}
        if self.api == "chat":
            return "/v1/chat/completions", {
                "model": self.model, "messages": MESSAGES, "stream": True,
            }  # fmt: skip
        body = {"model": self.model, "input": PROMPT, "stream": True}
        return "/v1/responses", {**body, "background": True} if self.background else body


# A legacy completion (its answer, 37 words, is the simulator's for the prompt).
LEGACY = {"prompt": PROMPT, "max_tokens": 300, "stream": True}
PACED = {"x-sim-ttft-ms": THINK_MS, "x-sim-chunk-interval-ms": PACE_MS}
UNPACED = {"x-sim-ttft-ms": THINK_MS}
NATIVE_O1 = {**PACED, "x-sim-o1-streaming": "true", "x-sim-reasoning-tokens": "2048"}
# A faked stream: o1 answers whole after thinking (the latency), past the grace period.
FAKED = {"x-sim-latency-ms": THINK_MS, "x-sim-reasoning-tokens": "2048"}
POINTS = {"thinking": THINKING, "first tokens": 3, "half-way": 50, "near the end": 95}
CASES = {
    f"{name} / {point}": Case(api, model, knobs, leave)
    for name, api, model, knobs in [
        ("chat gpt-4o paced", "chat", "gpt-4o", PACED),
        ("chat gpt-4o unpaced", "chat", "gpt-4o", UNPACED),
        ("chat o1-mini native", "chat", "o1-native", NATIVE_O1),
        ("chat o1-mini faked", "chat", "o1-mini", FAKED),
        ("responses gpt-4o paced", "responses", "gpt-4o", PACED),
        ("responses gpt-4o unpaced", "responses", "gpt-4o", UNPACED),
        ("responses o1-mini faked", "responses", "o1-mini", FAKED),
    ]
    for point, leave in POINTS.items()
} | {
    f"completions {name} / {point}": Case("completions", "gpt-3.5-turbo-instruct", knobs, leave)
    for name, knobs in [("paced", PACED), ("unpaced", UNPACED)]
    for point, leave in {"thinking": THINKING, "first tokens": 3, "half-way": 18}.items()
}


@pytest.fixture(scope="module")
def upstream() -> Iterator[ServerThread]:
    with ServerThread(create_simulator(SimulatorConfig())) as server:
        yield server


@pytest.fixture
def gateway(
    start_gateway: GatewayFactory, upstream: ServerThread, redis_server: str, tmp_path: Path
) -> ServerThread:
    teams = tmp_path / "teams.yaml"
    teams.write_text(teams_yaml({TEAM: {"tier": "tier-5"}}))
    return start_gateway(
        config(OPENAI_BASE_URL=f"{upstream.url}/v1", OPENAI_API_KEY=SIM_KEY),
        upstream={"forward_header_prefixes": ("x-sim-",), "retries": 0},
        redis={"url": redis_server},
        admission={"teams_file": str(teams)},
        compat={"status_grace_s": 0.05, "keepalive_s": 0.05},
    )


def hold(case: Case) -> int:
    model = CONFIG.models[case.model]
    if case.api == "completions":
        return worst_case_micros(model.price, *completions_worst_case(LEGACY, model))
    return worst_case_micros(model.price, tokens.count_messages(MESSAGES), model.max_output)


async def leave(gateway: ServerThread, upstream: ServerThread, case: Case) -> None:
    """Call, and leave where the case says."""
    path, body = case.body()
    headers = {"authorization": f"Bearer {key_of(TEAM)}", "x-sim-answer": LONG_ANSWER}
    headers.update(case.knobs)
    read = 0
    async with httpx.AsyncClient(timeout=30) as http:
        if case.leave is THINKING and case.knobs is not FAKED:
            # No headers until the first token: the client gives up while it waits for them.
            call = asyncio.create_task(
                http.post(f"{gateway.url}{path}", json=body, headers=headers)
            )
            await asyncio.to_thread(
                wait_for, lambda: upstream.requests_in_flight() > 0, 10, "the upstream call"
            )
            await asyncio.sleep(0.15)  # a third of the way into the thinking
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            return
        async with http.stream("POST", f"{gateway.url}{path}", json=body, headers=headers) as got:
            assert got.status_code == 200
            async for line in got.aiter_lines():
                if case.leave is THINKING:
                    break  # a faked stream's keep-alive: the model still thinks
                if line.startswith("data: "):
                    read += 1
                    if read >= case.leave:
                        break


def measure(
    gateway: ServerThread, upstream: ServerThread, store: redis.Redis, case: Case
) -> tuple[int, int]:
    """(what upstream billed, what the team was charged) for one stream left as `case` says."""
    httpx.delete(f"{upstream.url}/_sim/bill")
    asyncio.run(leave(gateway, upstream, case))
    return settled(gateway, upstream, store)


def settled(gateway: ServerThread, upstream: ServerThread, store: redis.Redis) -> tuple[int, int]:
    """Once the calls have ended: (what upstream billed, what the team was charged)."""
    wait_for(
        lambda: upstream.requests_in_flight() == 0 and gateway.requests_in_flight() == 0,
        10,
        "the calls to end",
    )
    charged, held = spend(store, TEAM)
    assert held == 0
    return billed(upstream), charged


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_stream_left_is_charged_no_less_than_upstream_bills_and_no_more_than_its_hold(
    gateway: ServerThread, upstream: ServerThread, store: redis.Redis, name: str
) -> None:
    """Never less than the bill, nor more than the hold, nor more than the bill and the margin
    for what upstream may generate before it notices a stream the gateway stopped."""
    case = CASES[name]
    bill, charged = measure(gateway, upstream, store, case)
    price = CONFIG.models[case.model].price
    margin = cost_micros(price, Usage(0, CONFIG.admission.left_stream_margin_tokens))
    assert bill <= charged <= min(hold(case), bill + margin), (bill, charged)


def test_a_stream_left_by_a_client_that_fell_behind_is_charged_what_upstream_generated(
    gateway: ServerThread, upstream: ServerThread, store: redis.Redis
) -> None:
    """A client with a small receive buffer reads the first bytes, stops reading, then leaves.
    Upstream (unpaced) ran ahead of it by all the buffers between them hold: the gateway reads
    the rest of the stream, relaying nothing, and charges the usage at its end, the bill."""
    httpx.delete(f"{upstream.url}/_sim/bill")
    copies, answer = 16, " ".join(["word"] * 4000)  # about 12 MB of events
    body = orjson.dumps({"model": "gpt-4o", "messages": MESSAGES, "stream": True, "n": copies})
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nhost: gateway\r\n"
        f"authorization: Bearer {key_of(TEAM)}\r\ncontent-type: application/json\r\n"
        f"x-sim-answer: {answer}\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    with socket.socket() as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.connect(("127.0.0.1", gateway.port))
        client.sendall(head.encode() + body)
        assert client.recv(1024).startswith(b"HTTP/1.1 200 OK")
        wait_for(lambda: upstream.requests_in_flight() == 0, 10, "upstream to finish the stream")
    wait_for(lambda: gateway.requests_in_flight() == 0, 10, "the gateway to read it")
    charged, held = spend(store, TEAM)
    model = CONFIG.models["gpt-4o"]
    most = worst_case_micros(
        model.price, tokens.count_messages(MESSAGES), model.max_output * copies
    )
    assert held == 0 and billed(upstream) == charged < most


@pytest.mark.parametrize(
    ("fault", "ending"),
    [("reset", '"code":"upstream_truncated"'), ("stream-error", '"error"')],
    ids=["cut mid-way", "ended by upstream's error event"],
)
def test_a_reasoning_models_stream_without_its_usage_is_charged_its_hold(
    gateway: ServerThread, upstream: ServerThread, store: redis.Redis, fault: str, ending: str
) -> None:
    """A native o1 stream that ends after its first tokens, cut (the gateway's error event
    ends it) or by upstream's own error event, never reports the usage that counts its
    reasoning, which upstream bills: the hold, not the text that arrived."""
    httpx.delete(f"{upstream.url}/_sim/bill")
    case = Case("chat", "o1-native", NATIVE_O1, None)
    path, body = case.body()
    headers = {"authorization": f"Bearer {key_of(TEAM)}", "x-sim-answer": LONG_ANSWER}
    headers.update({**NATIVE_O1, "x-sim-fault": fault})
    answer = httpx.post(f"{gateway.url}{path}", json=body, headers=headers, timeout=30)
    assert answer.status_code == 200
    assert ending in answer.text and "[DONE]" not in answer.text
    bill, charged = settled(gateway, upstream, store)
    assert 0 < bill <= charged == hold(case)


@pytest.mark.parametrize("leave", [3, 50], ids=["first tokens", "half-way"])
def test_a_background_stream_left_is_charged_the_whole_response_upstream_bills(
    gateway: ServerThread, upstream: ServerThread, store: redis.Redis, leave: int
) -> None:
    """A background response goes on upstream when its stream's client leaves (the client may
    pick it up again with `GET ?stream=true`), and is billed whole: the gateway reads the stream
    to its end and charges the usage there, not what had reached the client."""
    case = Case("responses", "gpt-4o", PACED, leave, background=True)
    bill, charged = measure(gateway, upstream, store, case)
    assert 0 < bill == charged < hold(case), (bill, charged)


WHOLE_TEXT = " ".join(["word"] * 10)


def chat_text(event: dict[str, Any]) -> str:
    return "".join(choice["delta"].get("content") or "" for choice in event["choices"])


def last_choice_text(event: dict[str, Any]) -> str:
    """The text of the second of two choices, which the simulator interleaves: once it is
    whole, so is the first's."""
    return chat_text({"choices": [c for c in event["choices"] if c["index"] == 1]})


def responses_text(event: dict[str, Any]) -> str:
    return event["delta"] if event["type"] == "response.output_text.delta" else ""


def leave_once_the_text_is_whole(
    gateway: ServerThread, path: str, body: dict[str, Any], text_of: Callable[[Any], str]
) -> None:
    """Stream `body` and leave as soon as the events read (`text_of` each) make the whole
    answer, before what closes it."""
    # Slow enough between chunks for the gateway to notice the client left before the next.
    headers = {
        "authorization": f"Bearer {key_of(TEAM)}", "x-sim-answer": WHOLE_TEXT,
        "x-sim-ttft-ms": "10", "x-sim-chunk-interval-ms": "150",
    }  # fmt: skip

    async def read_the_text_and_leave() -> None:
        text = ""
        async with (
            httpx.AsyncClient(timeout=30) as http,
            http.stream("POST", f"{gateway.url}{path}", json=body, headers=headers) as got,
        ):
            assert got.status_code == 200
            async for line in got.aiter_lines():
                if line.startswith("data: {"):
                    text += text_of(orjson.loads(line[6:]))
                if text == WHOLE_TEXT:
                    return

    asyncio.run(read_the_text_and_leave())


CHAT_STREAM = {"model": "gpt-4o", "messages": MESSAGES, "stream": True}
WHOLE_TEXT_CASES = {
    "chat, usage not asked": ("/v1/chat/completions", CHAT_STREAM, chat_text),
    "chat, usage asked": (
        "/v1/chat/completions",
        {**CHAT_STREAM, "stream_options": {"include_usage": True}},
        chat_text,
    ),
    "chat, two choices": (
        "/v1/chat/completions", {**CHAT_STREAM, "n": 2}, last_choice_text,
    ),
    "responses": (
        "/v1/responses", {"model": "gpt-4o", "input": PROMPT, "stream": True}, responses_text,
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(WHOLE_TEXT_CASES))
def test_a_stream_left_once_its_text_is_whole_is_charged_what_upstream_bills(
    gateway: ServerThread, upstream: ServerThread, store: redis.Redis, name: str
) -> None:
    """A client that leaves once it has the whole text, before what closes it: chat's chunks
    with each choice's `finish_reason`, after which only the usage comes (the gateway asks for
    it); the Responses API's events closing the text, its item, then the response with its
    usage. They say upstream generated all it will: the gateway reads on to the usage and
    charges the bill, not the text and a margin for what upstream might still generate."""
    httpx.delete(f"{upstream.url}/_sim/bill")
    path, body, text_of = WHOLE_TEXT_CASES[name]
    leave_once_the_text_is_whole(gateway, path, body, text_of)
    bill, charged = settled(gateway, upstream, store)
    assert 0 < bill == charged, (bill, charged)


def test_a_stream_cut_after_its_finish_reason_is_charged_what_upstream_bills(
    gateway: ServerThread, upstream: ServerThread, store: redis.Redis
) -> None:
    """A stream upstream resets after the chunk with its `finish_reason`, before its usage:
    upstream had generated all it would, the text that arrived; no margin for more."""
    httpx.delete(f"{upstream.url}/_sim/bill")
    # One word: the reset strikes before the last frame, the usage chunk.
    headers = {
        "authorization": f"Bearer {key_of(TEAM)}", "x-sim-answer": "Hello.",
        "x-sim-fault": "reset",
    }  # fmt: skip
    body = {"model": "gpt-4o", "messages": MESSAGES, "stream": True}
    answer = httpx.post(
        f"{gateway.url}/v1/chat/completions", json=body, headers=headers, timeout=30
    )
    assert '"finish_reason":"stop"' in answer.text and "upstream_truncated" in answer.text
    bill, charged = settled(gateway, upstream, store)
    assert 0 < bill == charged, (bill, charged)


@pytest.mark.parametrize("usage_asked", [False, True], ids=["usage not asked", "usage asked"])
def test_a_legacy_completion_stream_is_relayed_as_it_comes_and_charged_its_usage(
    gateway: ServerThread, upstream: ServerThread, store: redis.Redis, usage_asked: bool
) -> None:
    """A streamed legacy completion is relayed chunk by chunk (its first chunk reaches the
    client while upstream still streams) and charged the usage its last chunk reports: the
    bill, exactly. The gateway asks for that chunk; a client that did not never sees it. It
    had been read whole, relayed at its end and charged its hold."""
    httpx.delete(f"{upstream.url}/_sim/bill")
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key_of(TEAM), max_retries=0)
    asked = {"stream_options": {"include_usage": True}} if usage_asked else {}
    chunks = []
    busy_at_first = False
    for chunk in client.completions.create(
        model="gpt-3.5-turbo-instruct", **LEGACY, **asked,  # type: ignore[arg-type]
        extra_headers={"x-sim-chunk-interval-ms": "20"},
    ):  # fmt: skip
        if not chunks:
            busy_at_first = upstream.requests_in_flight() == 1
        chunks.append(chunk)
    assert busy_at_first
    assert {chunk.object for chunk in chunks} == {"text_completion"}
    assert "".join(choice.text for chunk in chunks for choice in chunk.choices).strip()
    usage_chunks = [chunk for chunk in chunks if not chunk.choices]
    assert len(usage_chunks) == (1 if usage_asked else 0)
    bill, charged = settled(gateway, upstream, store)
    assert 0 < bill == charged < hold(Case("completions", "gpt-3.5-turbo-instruct", {}, None))
