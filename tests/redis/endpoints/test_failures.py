"""Failure paths audited for the gateway's two promises (no team spends past its budget, every
dollar upstream bills is charged), on a real redis-server, over real sockets.

The upstream is the simulator behind `Mangler`, which breaks its answers where the simulator's
own fault knobs cannot: a 200 that is no JSON, an answer without `usage`, a first try that fails
and a second that succeeds. After each failure the team's hold is settled (nothing held), the
charge follows one rule per kind of ending, the client gets an OpenAI-shaped error (a terminal
event once a stream has started) and the metrics count the failure:

- a stream broken mid-way: the prompt and the text generated, as the stream meter counts them
  (upstream's own error event), and `left_stream_margin_tokens` more when the stream is cut (a
  reset, a stall past `read_timeout_s`), upstream going on until it notices;
- a whole answer cut off, unreadable, or without `usage` (chat, the Responses API, faked o1
  streams before and after their grace period): the hold, never less than upstream bills;
- an upstream error (429, OpenAI's own 5xx): nothing, whatever the retries; a 5xx without
  OpenAI's error object (a front end's HTML page, which may stand where an answer the model
  finished and billed should have come): as a call lost after its write (below), not retried;
- a whole answer the gateway stops waiting for after its request was sent (a timeout, a reset
  before any answer; chat, Responses, faked streams, emulated tool calls): upstream finishes and
  bills it, so it is tried once, never sent to a fallback, and charged its hold; a stream given
  up on before it began is tried once too (a retry would be billed again, past the hold),
  charged its prompt and the margin (upstream may have read it), within its hold; a request
  that reached no one is retried and charged nothing, as is a client that leaves while the
  gateway waits to retry a try upstream answered with an error.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
import redis

from gateway.admission.pricing import completions_worst_case, cost_micros, worst_case_micros
from gateway.config import SimulatorConfig
from gateway.endpoints.governed import Cost, worst_case
from gateway.simulator import create_simulator
from gateway.wire import tokens
from gateway.wire.usage import Usage
from tests.conftest import SIM_KEY, GatewayFactory, ServerThread, base_config, free_port, scrape
from tests.redis.admission.test_end_to_end import spend
from tests.redis.endpoints.teams import billed, joined, key_of, teams_yaml
from tests.redis.test_faults import wait_for

TEAM = "audited"
CONFIG = base_config()
PROMPT = "Say hello to the gateway, please."
MESSAGES = [{"role": "user", "content": PROMPT}]
LONG_ANSWER = " ".join(["word"] * 200)


# The `x-mangle` modes that say the body is encoded as it is not.
ENCODED = ("gzip", "br")
# The frames of a stream `x-mangle: end-early` relays before it ends the stream.
FRAMES_BEFORE_END = 6
# The output tokens `x-mangle: huge-usage` says an answer used.
HUGE = 10**17
# What `x-mangle: error-200` answers with a 200.
ERROR_200 = orjson.dumps(
    {"error": {"message": "overloaded", "type": "server_error", "param": None, "code": None}}
)


class Mangler:
    """The simulator, with its answers broken as the request's `x-mangle` header asks:

    - `not-json`: a 200's body replaced by an HTML page;
    - `error-200`: a 200's body (whole or a stream's) replaced by OpenAI's error object, sent as
      JSON, as a proxy in front of the API may answer;
    - `reset-mid-event`: a stream cut after its first `FRAMES_BEFORE_END` frames and half of
      the next;
    - `stall-body`: half of a 200's body sent, then nothing more for a minute (or until the
      gateway leaves);
    - `end-early`: a stream ended cleanly after its first `FRAMES_BEFORE_END` frames, without its
      last event (chat's usage and `[DONE]`, the Responses API's `response.completed`); the
      simulator stops there (its client left);
    - `gzip`, `br`: the body as it is, said to be so encoded (a corrupt gzip body; a coding
      the gateway cannot read), as a misconfigured front end might send it;
    - `no-usage`: `usage` taken out of a JSON answer and out of a stream's events;
    - `huge-usage`: a JSON answer's output tokens said to be `HUGE`, a count no call reaches
      (nor Redis can add);
    - `fail-once-429`, `fail-once-500`: the first call of an `x-mangle-id` answered with that
      error (a 429 with `retry-after: 0.05`), later ones by the simulator;
    - `reset-once`: the first call of an `x-mangle-id` cut off after half its body;
    - `think-once`: the first call of an `x-mangle-id` a stream whose first token takes a minute
      (billed its prompt once its client leaves), later ones by the simulator;
    - `chatter-once`: the first call of an `x-mangle-id` answered with chatter where emulation
      asked for a tool call (later ones follow the instructions, as the simulator does);
    - `chatter-then-stall`: the same first call; later ones wait a minute before answering;
    - `chatter-then-no-usage`: the same first call; later ones as `no-usage`;
    - `redirect-302`, `redirect-307`: answered by a front end's redirect to another host, with
      its HTML page, the simulator never asked.

    `calls` counts the calls of each `x-mangle-id`.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.calls: Counter[str] = Counter()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        mode = headers.get(b"x-mangle", b"").decode()
        call_id = headers.get(b"x-mangle-id", b"").decode()
        self.calls[call_id] += 1
        first = self.calls[call_id] == 1
        if mode == "chatter-then-no-usage" and not first:
            mode = "no-usage"
        if first and mode.startswith("fail-once-"):
            await self.fail(send, int(mode.rsplit("-", 1)[1]))
            return
        if mode.startswith("redirect-"):
            await self.redirect(send, int(mode.rsplit("-", 1)[1]))
            return
        if first and mode in ("chatter-once", "chatter-then-stall", "chatter-then-no-usage"):
            chatter = base64.b64encode(b"I would rather chat about the weather.")
            scope = {**scope, "headers": [*scope["headers"], (b"x-sim-answer-b64", chatter)]}
        elif mode == "chatter-then-stall":
            scope = {**scope, "headers": [*scope["headers"], (b"x-sim-latency-ms", b"60000")]}
        if first and mode == "think-once":
            scope = {**scope, "headers": [*scope["headers"], (b"x-sim-ttft-ms", b"60000")]}
        if mode in (
            "not-json",
            "error-200",
            "end-early",
            "reset-mid-event",
            "stall-body",
            "no-usage",
            "huge-usage",
            *ENCODED,
        ) or (first and mode == "reset-once"):
            await self.app(scope, receive, self.mangled(send, mode, receive))
            return
        await self.app(scope, receive, send)

    @staticmethod
    async def fail(send: Any, status: int) -> None:
        kind = "rate_limit_exceeded" if status == 429 else "server_error"
        body = orjson.dumps({"error": {"message": kind, "type": kind, "param": None, "code": kind}})
        head = [(b"content-type", b"application/json"), (b"retry-after-ms", b"50")]
        await send({"type": "http.response.start", "status": status, "headers": head})
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    async def redirect(send: Any, status: int) -> None:
        head = [
            (b"content-type", b"text/html"),
            (b"location", b"https://login.example.com/sso?next=/v1/chat/completions"),
        ]
        await send({"type": "http.response.start", "status": status, "headers": head})
        await send({"type": "http.response.body", "body": b"<html>Moved</html>"})

    @staticmethod
    def mangled(send: Any, mode: str, receive: Any) -> Any:
        answered: list[bool] = []

        async def mangle(message: Any) -> None:
            if message["type"] == "http.response.start":
                # The body changes length: sent chunked instead.
                kept = [(k, v) for k, v in message["headers"] if k != b"content-length"]
                if mode == "error-200":
                    kept = [(k, v) for k, v in kept if k != b"content-type"]
                    kept.append((b"content-type", b"application/json"))
                if mode in ENCODED:
                    kept.append((b"content-encoding", mode.encode()))
                message = {**message, "headers": kept}
            elif mode in ENCODED:
                pass  # the body as it is
            elif mode == "error-200":
                if not answered:  # the rest of the simulator's answer goes nowhere
                    answered.append(True)
                    await send({**message, "body": ERROR_200, "more_body": False})
                return
            elif mode == "reset-mid-event" and message.get("body"):
                answered.append(True)
                if len(answered) > FRAMES_BEFORE_END:
                    half = message["body"][: len(message["body"]) // 2]
                    await send({**message, "body": half, "more_body": True})
                    raise ConnectionResetError("the mangler cut the event")
            elif mode == "end-early":
                answered.append(True)
                if len(answered) > FRAMES_BEFORE_END:
                    await send({**message, "body": b"", "more_body": False})
                    raise ConnectionResetError("the stream is over")
            elif message["type"] == "http.response.body" and message.get("body"):
                body = message["body"]
                if mode == "not-json":
                    body = b"<html><body>An error occurred.</body></html>"
                elif mode == "reset-once":
                    await send({**message, "body": body[: len(body) // 2], "more_body": True})
                    raise ConnectionResetError("the mangler cut the answer")
                elif mode == "stall-body":
                    await send({**message, "body": body[: len(body) // 2], "more_body": True})
                    await asyncio.wait_for(left(receive), 60)
                    raise ConnectionResetError("the gateway left")
                elif body.startswith(b"{"):
                    whole = orjson.loads(body)
                    usage = whole.pop("usage", None)
                    if mode == "huge-usage" and isinstance(usage, dict):
                        output = (
                            "output_tokens" if "output_tokens" in usage else "completion_tokens"
                        )
                        whole["usage"] = {**usage, output: HUGE}
                    body = orjson.dumps(whole)
                else:
                    body = body.replace(b'"usage":{', b'"usage_left_out":{')
                message = {**message, "body": body}
            await send(message)

        return mangle


async def left(receive: Any) -> None:
    """Until the client leaves."""
    while (await receive())["type"] != "http.disconnect":
        pass


class Cutter:
    """A hop in front of the mangled simulator that loses every answer: each request is passed
    on whole, and once the simulator has it (`arrived` counts up) the connection to the gateway
    is reset before any byte of an answer, and the one to the simulator closed (to the
    simulator, its client left)."""

    def __init__(self, target: ServerThread, arrived: Callable[[], int]) -> None:
        self.target = target.port
        self.arrived = arrived
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def cut(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()  # a connection opened and closed without a request
            return
        lines = (line.partition(b":") for line in head.split(b"\r\n"))
        length = next((int(v) for k, _, v in lines if k.lower() == b"content-length"), 0)
        request = head + await reader.readexactly(length)
        before = self.arrived()
        _, upstream = await asyncio.open_connection("127.0.0.1", self.target)
        upstream.write(request)
        for _ in range(1000):  # up to 10 s
            if self.arrived() > before:
                break
            await asyncio.sleep(0.01)
        writer.transport.abort()  # a reset: the request was sent, no answer will come
        upstream.close()

    async def _listen(self) -> asyncio.Server:
        return await asyncio.start_server(self.cut, "127.0.0.1", self.port)

    def __enter__(self) -> Cutter:
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(self._listen(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def mangler() -> Iterator[tuple[ServerThread, Mangler]]:
    app = Mangler(create_simulator(SimulatorConfig()))
    with ServerThread(app) as server:
        yield server, app


@pytest.fixture(scope="module")
def cutter(mangler: tuple[ServerThread, Mangler]) -> Iterator[Cutter]:
    server, app = mangler
    with Cutter(server, lambda: sum(app.calls.values())) as cut:
        yield cut


@pytest.fixture
def upstream(mangler: tuple[ServerThread, Mangler]) -> ServerThread:
    server, app = mangler
    app.calls.clear()
    httpx.delete(f"{server.url}/_sim/bill")
    return server


@pytest.fixture
def calls(mangler: tuple[ServerThread, Mangler]) -> Counter[str]:
    return mangler[1].calls


@pytest.fixture
def store(redis_server: str) -> redis.Redis:
    return redis.Redis.from_url(redis_server)


Serve = Callable[..., ServerThread]


@pytest.fixture
def serve(
    start_gateway: GatewayFactory, upstream: ServerThread, redis_server: str, tmp_path: Path
) -> Serve:
    """Start a gateway in front of the mangled simulator, passing the knobs on, for team
    `TEAM` (with a `budget`, if given) on `redis_server`; no retries unless `wiring` (its
    upstream section) says so."""

    def start(
        wiring: dict[str, Any] | None = None,
        budget: int | None = None,
        limits: str | None = None,
        fallbacks: dict[str, tuple[str, ...]] | None = None,
        **sections: Any,
    ) -> ServerThread:
        teams = tmp_path / "teams.yaml"
        team = {"tier": "tier-5"}
        if budget is not None:  # micro-dollars
            team["budget_usd"] = f"{budget / 1_000_000:.6f}"
        if limits is not None:  # the team's own, in YAML's flow style
            team["limits"] = limits
        teams.write_text(teams_yaml({TEAM: team}))
        config = base_config(OPENAI_BASE_URL=f"{upstream.url}/v1", OPENAI_API_KEY=SIM_KEY)
        own = {"forward_header_prefixes": ("x-sim-", "x-mangle"), "retries": 0, **(wiring or {})}
        config = dataclasses.replace(config, upstream=dataclasses.replace(config.upstream, **own))
        if fallbacks:  # the models' own, replaced
            models = {
                name: dataclasses.replace(model, fallbacks=fallbacks[name])
                if name in fallbacks else model
                for name, model in config.models.items()
            }  # fmt: skip
            config = dataclasses.replace(config, models=models)
        return start_gateway(
            config, redis={"url": redis_server}, admission={"teams_file": str(teams)}, **sections
        )

    return start


def client(gateway: ServerThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key_of(TEAM), max_retries=0)


def request(api: str, model: str, stream: bool) -> tuple[str, dict[str, Any]]:
    if api == "chat":
        return "/v1/chat/completions", {"model": model, "messages": MESSAGES, "stream": stream}
    return "/v1/responses", {"model": model, "input": PROMPT, "stream": stream, "store": False}


def post(
    gateway: ServerThread, api: str, model: str, stream: bool, **headers: str
) -> httpx.Response:
    path, body = request(api, model, stream)
    sent = {"authorization": f"Bearer {key_of(TEAM)}"}
    sent.update({name.replace("_", "-"): value for name, value in headers.items()})
    return httpx.post(f"{gateway.url}{path}", json=body, headers=sent, timeout=30)


def hold(model: str) -> int:
    """The worst case the gateway holds for `PROMPT` on `model` (and charges when an answer
    does not say what it cost)."""
    config = CONFIG.models[model]
    return worst_case_micros(config.price, tokens.count_messages(MESSAGES), config.max_output)


def generated(model: str, text: str) -> int:
    """What the prompt and `text` cost: a stream's charge when it reports no usage."""
    usage = Usage(tokens.count_messages(MESSAGES), tokens.count_text(text))
    return cost_micros(CONFIG.models[model].price, usage)


def upstream_errors(gateway: ServerThread) -> dict[str, float]:
    """`gateway_upstream_errors_total` by code."""
    found: dict[str, float] = {}
    for line in scrape(gateway.url).splitlines():
        if line.startswith("gateway_upstream_errors_total{"):
            code = line.split('code="', 1)[1].split('"', 1)[0]
            found[code] = float(line.rsplit(" ", 1)[1])
    return found


@dataclasses.dataclass
class Events:
    """A streamed answer as the client read it."""

    data: list[Any]  # each event's JSON data ("[DONE]" as a string)
    kinds: list[str]  # each event's `event:` line ("" where it has none)

    @property
    def text(self) -> str:
        out = []
        for event in self.data:
            if not isinstance(event, dict):
                continue
            if event.get("type") == "response.output_text.delta":
                out.append(event["delta"])
            for choice in event.get("choices") or ():
                out.append(choice["delta"].get("content") or "")
        return "".join(out)


def events_of(answer: httpx.Response) -> Events:
    data: list[Any] = []
    kinds: list[str] = []
    for block in answer.text.split("\n\n"):
        lines = [line for line in block.split("\n") if line and not line.startswith(":")]
        if not lines:
            continue
        kind = next((line[7:] for line in lines if line.startswith("event: ")), "")
        payload = "".join(line[6:] for line in lines if line.startswith("data: "))
        data.append(payload if payload == "[DONE]" else orjson.loads(payload))
        kinds.append(kind)
    return Events(data, kinds)


def assert_ends_in_error(api: str, events: Events, code: str) -> None:
    """The stream's terminal error in the shape its API has: chat's `data: {"error": ...}`;
    the Responses API's `error` event with the error object (the SDKs raise on it), then
    `response.failed` with no usage."""
    if api == "chat":
        assert events.data[-1]["error"]["code"] == code, events.data[-1]
        assert "[DONE]" not in events.data
        return
    error, failed = events.data[-2], events.data[-1]
    assert events.kinds[-2:] == ["error", "response.failed"], events.kinds
    assert error["type"] == "error" and error["error"]["code"] == code, error
    assert failed["type"] == "response.failed"
    assert failed["sequence_number"] == error["sequence_number"] + 1
    assert failed["response"]["status"] == "failed" and failed["response"]["usage"] is None
    numbers = [event["sequence_number"] for event in events.data]
    assert numbers == list(range(len(numbers))), numbers


# -- 1. a stream broken mid-way ---------------------------------------------------------------------

BREAKS = {  # how upstream breaks the stream: (its knobs, the code the client and metrics see)
    "reset": ({"x-sim-fault": "reset"}, "upstream_truncated"),
    "stall": ({"x-sim-chunk-interval-ms": "5000"}, "upstream_timeout"),
    "error event": ({"x-sim-fault": "stream-error"}, "upstream_stream_error"),
    # Cut in the middle of an event.
    "mid-event reset": ({"x-mangle": "reset-mid-event"}, "upstream_truncated"),
    # Ended cleanly, its last event never sent: as good as cut.
    "ended early": ({"x-mangle": "end-early"}, "upstream_truncated"),
}


@pytest.mark.parametrize("api", ["chat", "responses"])
@pytest.mark.parametrize("how", sorted(BREAKS))
def test_a_native_stream_broken_mid_way_ends_in_an_error_and_is_charged_what_it_generated(
    serve: Serve,
    upstream: ServerThread,
    store: redis.Redis,
    api: str,
    how: str,
) -> None:
    """Upstream's own error event ends its stream: what it carried. A stall or a reset is a
    stream the gateway stops: upstream may have generated more than arrived, and goes on until
    it notices, so what arrived and `left_stream_margin_tokens`, no less than upstream bills."""
    gateway = serve(wiring={"read_timeout_s": 0.5})
    knobs, code = BREAKS[how]
    answer = post(gateway, api, "gpt-4o", True, x_sim_answer=LONG_ANSWER, **_knobs(knobs))
    assert answer.status_code == 200
    events = events_of(answer)
    if how == "error event":  # upstream's own event, relayed as it came
        last = events.data[-1]
        assert last["error"] if api == "chat" else last["type"] == "response.failed"
    else:
        assert_ends_in_error(api, events, code)
    assert len(events.text) < len(LONG_ANSWER)
    margin = 0 if how == "error event" else CONFIG.admission.left_stream_margin_tokens
    usage = Usage(tokens.count_messages(MESSAGES), tokens.count_text(events.text) + margin)
    charged = min(cost_micros(CONFIG.models["gpt-4o"].price, usage), hold("gpt-4o"))
    assert spend(store, TEAM) == (charged, 0)
    billed_at_most(upstream, charged)
    assert upstream_errors(gateway) == {code: 1}


def test_a_chat_stream_passed_on_as_it_came_and_cut_mid_event_ends_in_an_error(
    serve: Serve, upstream: ServerThread, store: redis.Redis
) -> None:
    """A client that asked for the usage chunk gets upstream's events as they came: half an
    event cut off is not passed on, so the gateway's error event reads as one."""
    gateway = serve()
    body = {
        "model": "gpt-4o", "messages": MESSAGES, "stream": True,
        "stream_options": {"include_usage": True},
    }  # fmt: skip
    sent = {"authorization": f"Bearer {key_of(TEAM)}", "x-sim-answer": LONG_ANSWER}
    sent["x-mangle"] = "reset-mid-event"
    answer = httpx.post(f"{gateway.url}/v1/chat/completions", json=body, headers=sent, timeout=30)
    events = events_of(answer)
    assert_ends_in_error("chat", events, "upstream_truncated")
    assert 0 < len(events.text) < len(LONG_ANSWER)
    assert spend(store, TEAM)[1] == 0


@pytest.mark.parametrize("how", ["reset", "stall", "ended early"])
def test_a_background_stream_broken_mid_way_is_charged_the_usage_upstream_reports_at_its_end(
    serve: Serve, upstream: ServerThread, store: redis.Redis, how: str
) -> None:
    """A background response runs to its end upstream whatever becomes of its stream, and is
    billed whole: once the stream breaks, the follower charges the usage the response reports
    when it ended (as for a background call answered whole), not the worst case."""
    gateway = serve(wiring={"read_timeout_s": 0.5}, responses={"poll_s": 0.1})
    knobs, code = BREAKS[how]
    sent = {"authorization": f"Bearer {key_of(TEAM)}", "x-sim-answer": LONG_ANSWER, **knobs}
    body = {"model": "gpt-4o", "input": PROMPT, "stream": True, "background": True}
    answer = httpx.post(f"{gateway.url}/v1/responses", json=body, headers=sent, timeout=30)
    assert_ends_in_error("responses", events_of(answer), code)
    wait_for(lambda: spend(store, TEAM)[1] == 0, 10, "the follower to settle the hold")
    assert spend(store, TEAM) == (billed(upstream), 0)
    assert 0 < billed(upstream) < hold("gpt-4o")


@pytest.mark.parametrize("api", ["chat", "responses"])
@pytest.mark.parametrize("mangle", ENCODED)
def test_a_native_stream_its_encoding_does_not_decode_is_charged_its_hold(
    serve: Serve, upstream: ServerThread, store: redis.Redis, api: str, mangle: str
) -> None:
    """Refused at its headers (a coding the gateway cannot read): a 502. Failing at its first
    bytes (a corrupt gzip body): an error event. Either way, what upstream sent cannot be read,
    nor how much it generated: the hold, never less than upstream bills."""
    gateway = serve()
    answer = post(gateway, api, "gpt-4o", True, x_mangle=mangle, x_sim_answer=LONG_ANSWER)
    if mangle == "br":
        assert answer.status_code == 502
        assert answer.json()["error"]["code"] == "upstream_encoding"
    else:  # nothing of it was read: the error is all the client gets
        assert answer.status_code == 200
        (error,) = events_of(answer).data
        assert error["error"]["code"] == "upstream_encoding"
    assert spend(store, TEAM) == (hold("gpt-4o"), 0)
    wait_for(lambda: upstream.requests_in_flight() == 0, 10, "the simulator to stop the stream")
    assert 0 < billed(upstream) <= hold("gpt-4o")
    assert upstream_errors(gateway) == {"upstream_encoding": 1}


def _knobs(headers: dict[str, str]) -> dict[str, str]:
    return {name.replace("-", "_"): value for name, value in headers.items()}


def test_the_responses_sdk_raises_on_a_native_stream_the_gateway_ends(
    serve: Serve, upstream: ServerThread
) -> None:
    gateway = serve()
    stream = client(gateway).responses.create(
        model="gpt-4o", input=PROMPT, stream=True, extra_headers={"x-sim-fault": "reset"}
    )
    with pytest.raises(openai.APIError) as info:
        for _ in stream:
            pass
    assert "cut off" in info.value.message


# -- 2. a whole answer cut off, unreadable or without usage: the hold ---------------------------------

# (api, model, stream): every way a request is served. o1-mini cannot stream: its streams are
# faked from one whole answer; the Responses API is translated to chat for it.
PATHS = [
    (api, model, stream)
    for api in ("chat", "responses")
    for model in ("gpt-4o", "o1-mini")
    for stream in (False, True)
]
# The paths that read a whole answer.
WHOLE = [(api, model, stream) for api, model, stream in PATHS if model == "o1-mini" or not stream]
GRACE = {"status_grace_s": 0.05, "keepalive_s": 0.05}
# A model that thinks past the grace period: its faked stream has begun (a 200) when it answers.
THINKS = {"x_sim_latency_ms": "400"}


def whole_ids() -> list[str]:
    return [f"{api}-{model}-{'stream' if stream else 'json'}" for api, model, stream in WHOLE]


# How a 200 is made unreadable (`x-mangle`), and the code the client then gets.
UNREADABLE_BY = {
    "not-json": "upstream_invalid_answer",
    "error-200": "upstream_invalid_answer",
    "gzip": "upstream_encoding",
    "br": "upstream_encoding",
}
# Each path, and each faked stream again past its grace period (`late`).
UNREADABLE = [(*path, False) for path in WHOLE] + [(*path, True) for path in WHOLE if path[2]]


@pytest.mark.parametrize(
    ("api", "model", "stream", "late"),
    UNREADABLE,
    ids=[
        f"{name}{'-late' if late else ''}"
        for name, (*_, late) in zip(
            whole_ids() + [f"{api}-{model}-stream" for api, model, stream in WHOLE if stream],
            UNREADABLE,
            strict=True,
        )
    ],
)
@pytest.mark.parametrize(("mangle", "code"), sorted(UNREADABLE_BY.items()))
def test_an_unreadable_answer_is_a_502_charged_its_hold(
    serve: Serve,
    upstream: ServerThread,
    store: redis.Redis,
    api: str,
    model: str,
    stream: bool,
    late: bool,
    mangle: str,
    code: str,
) -> None:
    """A 200 that is no JSON, or whose body its encoding does not decode: upstream generated
    and bills it, nobody can read it."""
    gateway = serve(compat=GRACE)
    answer = post(gateway, api, model, stream, x_mangle=mangle, **(THINKS if late else {}))
    if late:  # the client has its 200: the error comes as the stream's last event
        assert answer.status_code == 200
        events = events_of(answer)
        # Chat's last event is the error; a Responses stream's error comes before `failed`.
        said = (events.data[-1].get("error") or events.data[-2]["error"])["code"]
        assert said == code, events.data[-2:]
    else:
        assert answer.status_code == 502
        assert answer.json()["error"]["code"] == code
        assert answer.headers["content-type"] == "application/json"
    assert billed(upstream) > 0
    assert spend(store, TEAM) == (hold(model), 0)
    assert upstream_errors(gateway) == {code: 1}


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_a_stream_answered_with_an_error_object_is_a_502_charged_its_hold(
    serve: Serve, upstream: ServerThread, store: redis.Redis, api: str
) -> None:
    """A stream asked for, a 200 JSON error object answered (a proxy's): not an empty stream
    (chat's was swallowed whole) nor the object as an event stream no SDK reads, but the
    unreadable answer's 502, charged as one."""
    gateway = serve()
    answer = post(gateway, api, "gpt-4o", True, x_mangle="error-200")
    assert answer.status_code == 502
    assert answer.json()["error"]["code"] == "upstream_invalid_answer"
    assert "overloaded" in answer.json()["error"]["message"]
    assert spend(store, TEAM) == (hold("gpt-4o"), 0)
    assert upstream_errors(gateway) == {"upstream_invalid_answer": 1}


@pytest.mark.parametrize("mangle", ENCODED)
def test_a_governed_answer_its_encoding_does_not_decode_is_a_502_charged_its_hold(
    serve: Serve, upstream: ServerThread, store: redis.Redis, mangle: str
) -> None:
    """Embeddings (as every endpoint of the table): the same 502, the same hold."""
    gateway = serve()
    payload = {"model": "text-embedding-3-small", "input": ["hello", "world"]}
    sent = {"authorization": f"Bearer {key_of(TEAM)}", "x-mangle": mangle}
    answer = httpx.post(f"{gateway.url}/v1/embeddings", json=payload, headers=sent, timeout=30)
    assert answer.status_code == 502
    assert answer.json()["error"]["code"] == "upstream_encoding"
    held = worst_case(Cost.EMBEDDINGS, payload, CONFIG.models["text-embedding-3-small"])[2]
    assert spend(store, TEAM) == (held, 0)
    assert 0 < billed(upstream) <= held


AUDIO_STREAMS = {  # an audio event stream: how it is asked for
    "speech": {
        "json": {
            "model": "gpt-4o-mini-tts", "voice": "alloy", "input": LONG_ANSWER,
            "stream_format": "sse",
        },
    },
    "transcription": {
        "data": {"model": "gpt-4o-transcribe", "stream": "true"},
        "files": {"file": ("a.wav", b"\x00" * 48_000)},
    },
}  # fmt: skip


@pytest.mark.parametrize("endpoint", sorted(AUDIO_STREAMS))
@pytest.mark.parametrize("how", ["ended early", "reset"])
def test_an_audio_stream_cut_short_ends_in_an_error_and_is_charged_its_hold(
    serve: Serve, upstream: ServerThread, store: redis.Redis, endpoint: str, how: str
) -> None:
    """Speech and transcription event streams: one that stops before its done event (a reset,
    or ended cleanly) ends in the gateway's error event, never just stops; its usage never
    came, so it is charged its hold, never less than upstream bills."""
    gateway = serve()
    sent = {"authorization": f"Bearer {key_of(TEAM)}", **BREAKS[how][0]}
    path = "/v1/audio/speech" if endpoint == "speech" else "/v1/audio/transcriptions"
    asked = AUDIO_STREAMS[endpoint]
    answer = httpx.post(f"{gateway.url}{path}", headers=sent, timeout=30, **asked)
    assert answer.status_code == 200
    events = events_of(answer)
    assert events.data[-1]["error"]["code"] == "upstream_truncated", events.kinds
    spent, held = spend(store, TEAM)
    assert held == 0 and spent >= billed(upstream) > 0
    assert upstream_errors(gateway) == {"upstream_truncated": 1}


GOVERNED = {  # a governed endpoint answering JSON: its path, a request, how it is held
    "embeddings": (
        "/v1/embeddings", {"model": "text-embedding-3-small", "input": ["hello"]}, Cost.EMBEDDINGS
    ),
    "completions": (
        "/v1/completions", {"model": "gpt-3.5-turbo-instruct", "prompt": PROMPT}, Cost.COMPLETIONS
    ),
    "images": (
        "/v1/images/generations", {"model": "dall-e-2", "prompt": PROMPT, "size": "256x256"},
        Cost.IMAGES,
    ),
}  # fmt: skip


@pytest.mark.parametrize("endpoint", sorted(GOVERNED))
@pytest.mark.parametrize("mangle", ["reset-once", "stall-body"])
def test_a_governed_answer_cut_off_after_its_headers_is_charged_its_hold(
    serve: Serve, upstream: ServerThread, store: redis.Redis, endpoint: str, mangle: str
) -> None:
    """Upstream made the answer and bills it: one lost after its headers (a reset, a stall
    past `read_timeout_s`) is a 502 or 504 charged its hold, never nothing."""
    gateway = serve(wiring={"read_timeout_s": 0.5})
    path, payload, cost = GOVERNED[endpoint]
    sent = {"authorization": f"Bearer {key_of(TEAM)}", "x-mangle": mangle, "x-mangle-id": mangle}
    answer = httpx.post(f"{gateway.url}{path}", json=payload, headers=sent, timeout=30)
    assert answer.status_code in (502, 504)
    model = payload["model"]
    assert billed(upstream) > 0
    assert spend(store, TEAM) == (worst_case(cost, payload, CONFIG.models[model])[2], 0)


@pytest.mark.parametrize("endpoint", sorted(GOVERNED))
def test_a_governed_answer_that_is_an_error_object_is_a_502_charged_its_hold(
    serve: Serve, upstream: ServerThread, store: redis.Redis, endpoint: str
) -> None:
    """A 200 whose body is OpenAI's error object (a proxy's) is no answer a client can read:
    the unreadable answer's 502, not the error object with a 200, charged as one."""
    gateway = serve()
    path, payload, cost = GOVERNED[endpoint]
    sent = {"authorization": f"Bearer {key_of(TEAM)}", "x-mangle": "error-200"}
    answer = httpx.post(f"{gateway.url}{path}", json=payload, headers=sent, timeout=30)
    assert answer.status_code == 502
    assert answer.json()["error"]["code"] == "upstream_invalid_answer"
    model = payload["model"]
    assert spend(store, TEAM) == (worst_case(cost, payload, CONFIG.models[model])[2], 0)
    assert upstream_errors(gateway) == {"upstream_invalid_answer": 1}


@pytest.mark.parametrize(("api", "model", "stream"), WHOLE, ids=whole_ids())
def test_a_whole_answer_without_usage_is_charged_its_hold(
    serve: Serve,
    upstream: ServerThread,
    store: redis.Redis,
    api: str,
    model: str,
    stream: bool,
) -> None:
    gateway = serve(compat=GRACE)
    for late in (False, True) if stream else (False,):
        answer = post(gateway, api, model, stream, x_mangle="no-usage", **(THINKS if late else {}))
        assert answer.status_code == 200
        assert spend(store, TEAM) == ((1 + late) * hold(model), 0)
    assert 0 < billed(upstream) < hold(model)


@pytest.mark.parametrize(("api", "model", "stream"), WHOLE, ids=whole_ids())
def test_a_whole_answer_whose_usage_is_no_count_is_charged_its_hold(
    serve: Serve, store: redis.Redis, api: str, model: str, stream: bool
) -> None:
    """Output tokens no call reaches (and Redis cannot add): the usage says nothing believable
    of the cost, so the hold, as for an answer without one; its settle had failed in Redis
    after releasing the hold, and each retry released it again (the team's held spend below
    zero, room past its budget), the answer never charged."""
    gateway = serve(compat=GRACE)
    answer = post(gateway, api, model, stream, x_mangle="huge-usage")
    assert answer.status_code == 200
    assert spend(store, TEAM) == (hold(model), 0)


def test_a_whole_answer_cut_off_after_the_grace_period_is_charged_its_hold(
    serve: Serve,
    store: redis.Redis,
) -> None:
    """The faked stream has begun: the client gets the error as an event, and is charged as a
    client whose call failed before the grace period is (a 502, charged the hold)."""
    gateway = serve(compat=GRACE)
    for late in (False, True):
        answer = post(
            gateway, "chat", "o1-mini", True, x_sim_fault="reset", **(THINKS if late else {})
        )
        if late:
            assert answer.status_code == 200
            assert events_of(answer).data[-1]["error"]["code"] == "upstream_truncated"
        else:
            assert answer.status_code == 502
        assert spend(store, TEAM) == ((1 + late) * hold("o1-mini"), 0)
    assert upstream_errors(gateway) == {"upstream_truncated": 2}


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_a_faked_stream_whose_upstream_stalls_ends_in_an_error_and_is_charged_its_hold(
    serve: Serve,
    upstream: ServerThread,
    store: redis.Redis,
    api: str,
) -> None:
    """No answer within `first_byte_timeout_s` after the client's 200 began: the client's
    stream ends in the 504's error, and the metrics count it. The whole answer it was faked
    from goes on upstream and is billed (the simulator finishes it once the gateway leaves),
    so the team is charged the hold, never less than that bill."""
    gateway = serve(wiring={"first_byte_timeout_s": 0.3}, compat=GRACE,
    )  # fmt: skip
    answer = post(gateway, api, "o1-mini", True, x_sim_fault="timeout")
    assert answer.status_code == 200
    events = events_of(answer)
    if api == "chat":
        assert events.data[-1]["error"]["code"] == "upstream_timeout"
    else:  # translated: chat's error becomes the Responses API's failure
        assert events.kinds[-1] == "response.failed"
        assert events.data[-1]["response"]["error"]["code"] == "upstream_timeout"
    assert spend(store, TEAM) == (hold("o1-mini"), 0)
    wait_for(lambda: billed(upstream) > 0, 10, "the bill of the answer left behind")
    assert billed(upstream) <= hold("o1-mini")
    assert upstream_errors(gateway) == {"upstream_timeout": 1}


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_a_native_stream_without_usage_is_charged_what_it_generated(
    serve: Serve,
    store: redis.Redis,
    api: str,
) -> None:
    """Chat and the Responses API alike: the stream meter counts the text that went by."""
    gateway = serve()
    answer = post(gateway, api, "gpt-4o", True, x_mangle="no-usage", x_sim_answer=LONG_ANSWER)
    assert answer.status_code == 200
    assert events_of(answer).text == LONG_ANSWER
    assert spend(store, TEAM) == (generated("gpt-4o", LONG_ANSWER), 0)


def test_a_legacy_completion_stream_without_usage_is_charged_its_text(
    serve: Serve, upstream: ServerThread, store: redis.Redis
) -> None:
    """A streamed legacy completion whose usage chunk never comes: its prompt and the text that
    went by, as a chat stream (it had been charged its hold); never less than upstream bills."""
    gateway = serve()
    body = {"model": "gpt-3.5-turbo-instruct", "prompt": PROMPT, "max_tokens": 300, "stream": True}
    headers = {"authorization": f"Bearer {key_of(TEAM)}", "x-mangle": "no-usage"}
    answer = httpx.post(f"{gateway.url}/v1/completions", json=body, headers=headers, timeout=30)
    assert answer.status_code == 200 and answer.text.endswith("data: [DONE]\n\n")
    events = [event for event in events_of(answer).data if isinstance(event, dict)]
    text = "".join(choice["text"] for event in events for choice in event["choices"])
    model = CONFIG.models["gpt-3.5-turbo-instruct"]
    prompt, _ = completions_worst_case(body, model)
    charged = cost_micros(model.price, Usage(prompt, tokens.count_text(text)))
    assert text and spend(store, TEAM) == (charged, 0)
    assert 0 < billed(upstream) <= charged


def test_a_legacy_completion_stream_given_up_on_before_it_began_is_charged_its_prompt(
    serve: Serve, upstream: ServerThread, store: redis.Redis
) -> None:
    """A call that goes once, to the default upstream (a legacy completion), given up on after
    its request was sent: its prompt, which upstream read (it bills it), and the margin, as a
    model's stream try. It had been charged nothing."""
    gateway = serve(wiring={"first_byte_timeout_s": 0.3})
    body = {"model": "gpt-3.5-turbo-instruct", "prompt": PROMPT, "max_tokens": 300, "stream": True}
    headers = {"authorization": f"Bearer {key_of(TEAM)}", "x-sim-ttft-ms": "60000"}
    answer = httpx.post(f"{gateway.url}/v1/completions", json=body, headers=headers, timeout=30)
    assert answer.status_code == 504 and answer.json()["error"]["code"] == "upstream_timeout"
    model = CONFIG.models["gpt-3.5-turbo-instruct"]
    prompt, _ = completions_worst_case(body, model)
    charged = cost_micros(model.price, Usage(prompt, CONFIG.admission.left_stream_margin_tokens))
    wait_for(lambda: spend(store, TEAM)[1] == 0, 10, "the call's charge")
    assert spend(store, TEAM) == (charged, 0)
    billed_at_most(upstream, charged)


# -- 3. upstream errors: OpenAI's shape, never charged, never twice ----------------------------------


@pytest.mark.parametrize(("api", "model", "stream"), PATHS)
def test_a_proxy_error_page_reaches_the_client_as_an_openai_error(
    serve: Serve,
    store: redis.Redis,
    api: str,
    model: str,
    stream: bool,
) -> None:
    """Cloudflare's HTML 502 page, as OpenAI's edge sends it: the SDK reads a 502 error. A bad
    gateway says the API was not reached (unlike a timeout page, section 5): retried, and
    charged nothing."""
    gateway = serve()
    sdk = client(gateway)
    faulty: Any = {"x-sim-fault": "502"}
    with pytest.raises(openai.InternalServerError) as info:
        if api == "chat":
            sdk.chat.completions.create(
                model=model, messages=MESSAGES, stream=stream, extra_headers=faulty
            )  # type: ignore[call-overload]
        else:
            sdk.responses.create(model=model, input=PROMPT, stream=stream, extra_headers=faulty)  # type: ignore[call-overload]
    assert info.value.status_code == 502
    assert info.value.code == "upstream_error"
    assert spend(store, TEAM) == (0, 0)


@pytest.mark.parametrize("status", [302, 307])
@pytest.mark.parametrize(("api", "model", "stream"), PATHS)
def test_a_redirect_from_a_front_end_is_a_502_and_never_charged(
    serve: Serve,
    store: redis.Redis,
    status: int,
    api: str,
    model: str,
    stream: bool,
) -> None:
    """A front end (an SSO proxy, a moved host) redirects instead of passing the call on: the
    gateway follows no redirects, the upstream never saw the call, and bills nothing."""
    gateway = serve()
    answer = post(gateway, api, model, stream, x_mangle=f"redirect-{status}")
    assert answer.status_code == 502, answer.text
    error = answer.json()["error"]
    assert error["type"] == "upstream_error" and error["code"] == "upstream_redirect"
    assert answer.headers["x-should-retry"] == "false"  # the same call is redirected again
    assert "location" not in answer.headers
    assert spend(store, TEAM) == (0, 0)


@pytest.mark.parametrize("fault", ["502", "edge-504"])
def test_a_proxy_error_page_after_the_grace_period_is_an_openai_error_event(
    serve: Serve,
    store: redis.Redis,
    fault: str,
) -> None:
    gateway = serve(compat=GRACE)
    answer = post(gateway, "chat", "o1-mini", True, x_sim_fault=fault, **THINKS)
    assert answer.status_code == 200
    error = events_of(answer).data[-1]["error"]
    assert error["code"] == "upstream_error" and error["type"] == "upstream_error"
    if fault == "502":  # the API not reached: nothing billed
        assert spend(store, TEAM) == (0, 0)
        # Its 200 says nothing of the failure: the metrics do, once, by upstream's status.
        assert upstream_errors(gateway) == {"upstream_502": 1}
        return
    # A timeout page: a whole answer lost after its write (it may stand where one billed is).
    wait_for(lambda: spend(store, TEAM)[1] == 0, 10, "the call's charge")
    assert spend(store, TEAM) == (hold("o1-mini"), 0)
    assert upstream_errors(gateway) == {"upstream_error": 1}


@pytest.mark.parametrize("status", [429, 500])
@pytest.mark.parametrize(("api", "model", "stream"), PATHS)
def test_a_failed_try_retried_is_charged_once_what_upstream_billed(
    serve: Serve,
    upstream: ServerThread,
    calls: Counter[str],
    store: redis.Redis,
    status: int,
    api: str,
    model: str,
    stream: bool,
) -> None:
    """The first try fails (a 429 with `retry-after-ms: 50`, a 500), the retry answers."""
    gateway = serve(wiring={"retries": 2, "retry_backoff_s": 0.01},
    )  # fmt: skip
    mangle = {"x_mangle": f"fail-once-{status}", "x_mangle_id": f"{api}-{model}-{stream}"}
    answer = post(gateway, api, model, stream, **mangle)
    assert answer.status_code == 200
    assert calls[mangle["x_mangle_id"]] == 2
    assert spend(store, TEAM) == (billed(upstream), 0)


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_a_request_that_falls_back_takes_one_request_of_its_teams_limit(
    serve: Serve, calls: Counter[str], store: redis.Redis, api: str
) -> None:
    """o1-preview answers 500 and each request falls back to o1-mini (the shipped config): the
    client made one request, taken once from the team's requests per minute, however many
    models tried it; each model's own limit counts the try it made."""
    gateway = serve(limits="{requests_per_minute: 2}")
    for n in range(2):
        mangle = {"x_mangle": "fail-once-500", "x_mangle_id": f"fallback-{api}-{n}"}
        answer = post(gateway, api, "o1-preview", False, **mangle)
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-gateway-fallback"] == "o1-preview -> o1-mini (500)"
        assert calls[mangle["x_mangle_id"]] == 2
        assert answer.headers["x-ratelimit-limit-requests"] == "2"
        assert answer.headers["x-ratelimit-remaining-requests"] == str(1 - n)
    refused = post(gateway, api, "o1-preview", False)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert spend(store, TEAM)[1] == 0


@pytest.mark.parametrize("status", [429, 500])
def test_an_upstream_error_left_to_the_client_is_openais_and_never_charged(
    serve: Serve,
    store: redis.Redis,
    status: int,
) -> None:
    gateway = serve()
    for api, model, stream in [("chat", "gpt-4o", True), ("responses", "gpt-4o", False)]:
        answer = post(gateway, api, model, stream, x_mangle=f"fail-once-{status}", x_mangle_id=api)
        assert answer.status_code == status
        assert answer.json()["error"]["type"] in ("rate_limit_exceeded", "server_error")
        if status == 429:
            assert answer.headers["retry-after-ms"] == "50"
    assert spend(store, TEAM) == (0, 0)


def test_a_whole_answer_lost_after_its_headers_is_not_retried_and_is_charged_its_hold(
    serve: Serve,
    upstream: ServerThread,
    calls: Counter[str],
    store: redis.Redis,
) -> None:
    """Upstream generated the answer and bills it: a retry would be a second answer billed and
    the first charged to nobody. The client gets the failure (its SDK may try again, a new
    request charged on its own)."""
    gateway = serve(wiring={"retries": 2, "retry_backoff_s": 0.01})
    answer = post(gateway, "chat", "gpt-4o", False, x_mangle="reset-once", x_mangle_id="lost")
    assert answer.status_code == 502 and calls["lost"] == 1
    assert answer.json()["error"]["code"] == "upstream_truncated"
    charged, held = spend(store, TEAM)
    assert held == 0 and charged == hold("gpt-4o") >= billed(upstream)


WEATHER = {"type": "function", "function": {
    "name": "get_weather", "parameters": {"type": "object", "properties": {}},
}}  # fmt: skip


def repaired(gateway: ServerThread, mangle: str) -> None:
    """An o1 call with a tool required whose first answer chatters (`x-mangle`), repaired."""
    body = {"model": "o1-preview", "messages": MESSAGES, "tools": [WEATHER],
            "tool_choice": "required"}  # fmt: skip
    sent = {"authorization": f"Bearer {key_of(TEAM)}", "x-mangle": mangle,
            "x-mangle-id": mangle}  # fmt: skip
    answer = httpx.post(f"{gateway.url}/v1/chat/completions", json=body, headers=sent, timeout=30)
    assert answer.status_code == 200
    assert answer.json()["choices"][0]["message"]["tool_calls"]


def test_an_emulated_answer_repaired_is_charged_both_calls(
    serve: Serve, upstream: ServerThread, calls: Counter[str], store: redis.Redis
) -> None:
    """o1 emulates tools by prompting; an answer that broke the format is asked again. Both
    calls are billed: the team pays both, not only the one whose answer the client gets."""
    repaired(serve(), "chatter-once")
    assert calls["chatter-once"] == 2
    charged, held = spend(store, TEAM)
    # The usages are summed before pricing: a micro-dollar of rounding apart from the bill.
    assert held == 0 and abs(charged - billed(upstream)) <= 1


def test_an_emulated_answer_whose_repair_says_no_usage_is_charged_its_hold(
    serve: Serve, upstream: ServerThread, calls: Counter[str], store: redis.Redis
) -> None:
    """The repair's answer does not say what it cost: both calls are charged the hold, which
    the repair was capped to fit in. The first call's usage alone had been charged, the
    repair upstream billed charged to nobody."""
    repaired(serve(), "chatter-then-no-usage")
    assert calls["chatter-then-no-usage"] == 2
    charged, held = spend(store, TEAM)
    assert held == 0 and charged > billed(upstream) > 0


# -- 4. clients that leave ---------------------------------------------------------------------------


@pytest.mark.parametrize("cached", [False, True], ids=["uncached", "cached"])
@pytest.mark.parametrize("api", ["chat", "responses"])
def test_a_client_leaving_before_the_stream_begins_is_charged_its_prompt(
    serve: Serve,
    upstream: ServerThread,
    store: redis.Redis,
    api: str,
    cached: bool,
) -> None:
    """Upstream stops a stream whose client left: the prompt it read, and what it may generate
    before it notices (`left_stream_margin_tokens`); no call left going. So is a cacheable
    stream that no identical request waits for, and nothing of it is kept."""
    gateway = serve()
    path, body = request(api, "gpt-4o", True)
    headers = {"authorization": f"Bearer {key_of(TEAM)}", "x-sim-latency-ms": "60000"}
    if cached:
        headers["x-gateway-cache"] = "on"

    async def leave() -> None:
        async with httpx.AsyncClient(timeout=30) as http:
            call = asyncio.create_task(
                http.post(f"{gateway.url}{path}", json=body, headers=headers)
            )
            await asyncio.to_thread(
                wait_for, lambda: upstream.requests_in_flight() > 0, 10, "the upstream call"
            )
            await gone(call)

    asyncio.run(leave())
    assert spend(store, TEAM) == (left_before_it_began("gpt-4o"), 0)
    wait_for(
        lambda: upstream.requests_in_flight() == 0 and gateway.requests_in_flight() == 0,
        10,
        "no request left running",
    )
    assert _bill_requests(upstream) == 0 and not store.keys("gw:cache:*:e")
    assert _open_streams(gateway) == 0


async def gone(call: asyncio.Task[httpx.Response]) -> None:
    """The client gives up on `call` before its answer came: httpx drops the connection."""
    assert not call.done()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call


def identical(
    http: httpx.AsyncClient, url: str, body: dict[str, Any], headers: dict[str, str], count: int
) -> list[asyncio.Task[httpx.Response]]:
    """`count` requests identical to a leader's, sent at once (they wait for its call)."""
    return [asyncio.create_task(http.post(url, json=body, headers=headers)) for _ in range(count)]


def paced_cached(answer: str) -> dict[str, str]:
    """The headers of a cacheable request of `TEAM` whose answer, `answer`, streams a chunk
    every 20 ms."""
    return {
        "authorization": f"Bearer {key_of(TEAM)}",
        "x-gateway-cache": "on",
        "x-sim-answer": answer,
        "x-sim-chunk-interval-ms": "20",
    }


def _open_streams(gateway: ServerThread) -> float:
    line = next(
        line for line in scrape(gateway.url).splitlines() if line.startswith("gateway_open_streams")
    )
    return float(line.rsplit(" ", 1)[1])


@pytest.mark.parametrize(
    ("api", "where"), [("chat", "here"), ("responses", "here"), ("chat", "another replica")]
)
def test_a_leader_leaving_mid_stream_reads_on_for_its_waiters(
    serve: Serve,
    upstream: ServerThread,
    store: redis.Redis,
    api: str,
    where: str,
) -> None:
    """Identical cacheable requests: the first leads the upstream call, three wait for it, on
    its replica or on another (polling Redis). The leader's client leaves after its first
    chunk: the stream is read on to its end for the waiters (else each would call upstream
    alone), kept, and their hit. One upstream call, charged whole to the leader, as upstream
    bills it."""
    gateway = serve()
    waiting = gateway if where == "here" else serve()
    path, body = request(api, "gpt-4o", True)
    headers = paced_cached(LONG_ANSWER)

    async def scenario() -> tuple[str, list[httpx.Response], httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as http:
            async with http.stream(
                "POST", f"{gateway.url}{path}", json=body, headers=headers
            ) as leader:
                assert leader.headers["x-gateway-cache"] == "miss"
                lines = leader.aiter_lines()
                first = await anext(lines)
                waiters = identical(http, f"{waiting.url}{path}", body, headers, 3)
                await joined(waiting, TEAM, 3, None if waiting is gateway else store)
            # The leader's client has left (the stream closed its connection).
            waited = await asyncio.gather(*waiters)
            after = await http.post(f"{gateway.url}{path}", json=body, headers=headers)
            return first, waited, after

    first, waited, after = asyncio.run(scenario())
    assert first.startswith("data: " if api == "chat" else "event: ")
    for answer in waited:
        events = events_of(answer)
        assert answer.status_code == 200 and events.text == LONG_ANSWER
        last = events.data[-1] if api == "chat" else events.kinds[-1]
        assert last == ("[DONE]" if api == "chat" else "response.completed")
        assert answer.headers["x-gateway-cache"] == "hit"
    assert after.headers["x-gateway-cache"] == "hit"
    assert events_of(after).text == LONG_ANSWER
    wait_for(lambda: upstream.requests_in_flight() == 0, 10, "the upstream call to end")
    assert _bill_requests(upstream) == 1
    # The leader paid for the whole answer upstream made, the hits nothing
    # (`cache.charge_fraction` 0).
    charged, held = spend(store, TEAM)
    assert held == 0 and charged == billed(upstream)
    assert _open_streams(gateway) == 0


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_a_leader_leaving_a_faked_stream_keeps_its_answer_for_its_waiters(
    serve: Serve,
    upstream: ServerThread,
    store: redis.Redis,
    api: str,
) -> None:
    """o1-mini cannot stream: its stream is faked from one whole answer, which upstream
    finishes and bills whoever leaves. Its client leaving while the model thinks, with three
    identical requests waiting: that answer is their hit, not thrown away while each calls
    upstream (and is billed) again. One upstream call, charged whole to the leader."""
    gateway = serve(compat={"status_grace_s": 0.05, "keepalive_s": 0.05})
    path, body = request(api, "o1-mini", True)
    headers = {
        "authorization": f"Bearer {key_of(TEAM)}",
        "x-gateway-cache": "on",
        "x-sim-answer": LONG_ANSWER,
        "x-sim-latency-ms": "1000",
    }

    async def scenario() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as http:
            async with http.stream(
                "POST", f"{gateway.url}{path}", json=body, headers=headers
            ) as leader:
                assert leader.headers["x-gateway-cache"] == "miss"
                # A keep-alive (the Responses API's opens with `response.created`).
                lines = leader.aiter_lines()  # kept: a line iterator dropped closes the stream
                first = await anext(lines)
                assert first.startswith(":" if api == "chat" else "event: response.created")
                waiters = identical(http, f"{gateway.url}{path}", body, headers, 3)
                await joined(gateway, TEAM, 3)
            # The leader's client has left while the model thinks.
            return await asyncio.gather(*waiters)

    waited = asyncio.run(scenario())
    for answer in waited:
        events = events_of(answer)
        assert answer.status_code == 200 and events.text == LONG_ANSWER
        last = events.data[-1] if api == "chat" else events.kinds[-1]
        assert last == ("[DONE]" if api == "chat" else "response.completed")
        assert answer.headers["x-gateway-cache"] == "hit"
    wait_for(lambda: upstream.requests_in_flight() == 0, 10, "the upstream call to end")
    assert _bill_requests(upstream) == 1
    wait_for(lambda: spend(store, TEAM)[1] == 0, 10, "the leader's charge")
    assert spend(store, TEAM) == (billed(upstream), 0)
    assert _open_streams(gateway) == 0


def test_a_leader_leaving_a_fallbacks_stream_stops_it_and_frees_its_waiters_at_once(
    serve: Serve,
    upstream: ServerThread,
    calls: Counter[str],
    store: redis.Redis,
) -> None:
    """gpt-4o answers 500 and the leader's stream is its fallback's, gpt-4o-mini's: an answer
    never kept for gpt-4o. Its waiters cannot have it: they go their own way at once (not
    after its whole stream), and its client leaving stops it, as any stream nobody waits for
    (charged what was generated), rather than read on to its end for nobody."""
    gateway = serve(fallbacks={"gpt-4o": ("gpt-4o-mini",)})
    path, body = request("chat", "gpt-4o", True)
    headers = {
        **paced_cached(LONG_ANSWER),
        "x-mangle": "fail-once-500",
        "x-mangle-id": "leader-fallback",
    }

    async def scenario() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as http:
            async with http.stream(
                "POST", f"{gateway.url}{path}", json=body, headers=headers
            ) as leader:
                assert leader.headers["x-gateway-fallback"].startswith("gpt-4o -> gpt-4o-mini")
                await anext(leader.aiter_lines())
                waiters = identical(http, f"{gateway.url}{path}", body, headers, 2)
                # They wait for no answer that may be kept: each calls gpt-4o at once.
                await asyncio.to_thread(
                    wait_for, lambda: calls["leader-fallback"] == 4, 2, "the waiters' calls"
                )
            return await asyncio.gather(*waiters)

    waited = asyncio.run(scenario())
    for answer in waited:
        assert answer.status_code == 200 and events_of(answer).text == LONG_ANSWER
        assert answer.headers["x-gateway-cache"] == "miss"
        assert events_of(answer).data[-2]["model"].startswith("gpt-4o-2024")
    wait_for(lambda: upstream.requests_in_flight() == 0, 10, "the upstream calls to end")
    charged, held = spend(store, TEAM)
    mini = generated("gpt-4o-mini", LONG_ANSWER)
    # The waiters paid their whole answers; the leader, stopped, less than its whole one.
    assert held == 0 and 2 * generated("gpt-4o", LONG_ANSWER) < charged
    assert charged < 2 * generated("gpt-4o", LONG_ANSWER) + mini
    assert _open_streams(gateway) == 0


def test_a_leader_leaving_mid_stream_alone_stops_it(
    serve: Serve,
    upstream: ServerThread,
    store: redis.Redis,
) -> None:
    """A cacheable stream nobody waits for, whose client leaves after its first chunk, is
    stopped as any other (charged what was generated), and its partial answer not kept."""
    gateway = serve()
    path, body = request("chat", "gpt-4o", True)
    headers = paced_cached(LONG_ANSWER)

    async def scenario() -> httpx.Response:
        async with httpx.AsyncClient(timeout=30) as http:
            async with http.stream(
                "POST", f"{gateway.url}{path}", json=body, headers=headers
            ) as leader:
                await anext(leader.aiter_lines())
            wait_for(lambda: upstream.requests_in_flight() == 0, 10, "the upstream call to end")
            return await http.post(f"{gateway.url}{path}", json=body, headers=headers)

    after = asyncio.run(scenario())
    assert after.headers["x-gateway-cache"] == "miss"
    assert events_of(after).text == LONG_ANSWER
    charged, held = spend(store, TEAM)
    whole = generated("gpt-4o", LONG_ANSWER)
    # The first paid for what it generated before it stopped (short of the whole), the second
    # for its whole answer.
    assert held == 0 and whole < charged < 2 * whole
    assert _open_streams(gateway) == 0


@pytest.mark.parametrize("where", ["here", "another replica"])
def test_a_leader_leaving_after_its_only_waiter_left_stops_it(
    serve: Serve,
    upstream: ServerThread,
    store: redis.Redis,
    where: str,
) -> None:
    """A request waiting for a leader's stream (here, or polling from another replica) whose
    client leaves waits no more: it no longer counts among the waiters (nor marks the key
    awaited in Redis, once its last mark has lapsed). The leader's client leaving next finds
    nobody waiting, and its stream is stopped (charged what was generated), not read on to its
    end for nobody."""
    gateway = serve()
    waiting = gateway if where == "here" else serve()
    answer = " ".join(["word"] * 1000)  # 20 s at its pace: stopped long before its end
    path, body = request("chat", "gpt-4o", True)
    headers = paced_cached(answer)
    cache = waiting.server.config.app.state.gateway.cache

    def waiter_gone() -> bool:
        return cache.waiting(TEAM) == 0 and not store.keys(f"gw:cache:*:p:{TEAM}")

    async def scenario() -> None:
        async with (
            httpx.AsyncClient(timeout=30) as http,
            http.stream("POST", f"{gateway.url}{path}", json=body, headers=headers) as leader,
        ):
            lines = leader.aiter_lines()  # kept: a line iterator dropped closes the stream
            await anext(lines)
            async with httpx.AsyncClient(timeout=30) as leaving:
                (waiter,) = identical(leaving, f"{waiting.url}{path}", body, headers, 1)
                await joined(waiting, TEAM, 1, None if waiting is gateway else store)
                waiter.cancel()  # the client gives up: its connection is dropped
                await asyncio.gather(waiter, return_exceptions=True)
            await asyncio.to_thread(wait_for, waiter_gone, 10, "the waiter to count no more")
        # The leader's client has left (the stream closed its connection).

    asyncio.run(scenario())
    wait_for(lambda: upstream.requests_in_flight() == 0, 10, "the upstream call to end")
    wait_for(lambda: spend(store, TEAM)[1] == 0, 10, "the leader's charge")
    charged, _ = spend(store, TEAM)
    assert 0 < charged < generated("gpt-4o", answer) / 2
    assert _bill_requests(upstream) == 1
    assert _open_streams(gateway) == 0


# A leader leaving before its answer began: (api, model, stream, where its waiters are). gpt-4o's
# streams are stopped when their client leaves; o1-mini's are faked from one whole answer.
LEFT_EARLY = [
    ("chat", "gpt-4o", True, "here"),
    ("chat", "gpt-4o", True, "another replica"),
    ("responses", "gpt-4o", True, "here"),
    ("chat", "gpt-4o", False, "here"),
    ("responses", "gpt-4o", False, "another replica"),
    ("chat", "o1-mini", True, "here"),
    ("responses", "o1-mini", True, "another replica"),
]


def _answer_text(api: str, stream: bool, answer: httpx.Response) -> str:
    if stream:
        return events_of(answer).text
    whole = answer.json()
    if api == "chat":
        return str(whole["choices"][0]["message"]["content"])
    return "".join(part["text"] for item in whole["output"] for part in item.get("content") or ())


@pytest.mark.parametrize(
    ("api", "model", "stream", "where"),
    LEFT_EARLY,
    ids=[
        f"{api}-{model}-{'stream' if stream else 'whole'}-{where}"
        for api, model, stream, where in LEFT_EARLY
    ],
)
def test_a_leader_leaving_before_its_answer_began_calls_once_for_its_waiters(
    serve: Serve,
    upstream: ServerThread,
    calls: Counter[str],
    store: redis.Redis,
    api: str,
    model: str,
    stream: bool,
    where: str,
) -> None:
    """The leader's client leaves while upstream has not answered yet (no headers, no first
    chunk), three identical requests of its team waiting, here or on another replica: the call
    goes on for them, its answer is kept and is their hit, rather than each calling upstream
    alone once the leader's call is stopped. One upstream call, charged whole to the leader, as
    upstream bills it."""
    # A faked stream's client leaves within its grace period (no 200 sent yet).
    compat = {"status_grace_s": 30.0}
    gateway = serve(compat=compat)
    waiting = gateway if where == "here" else serve(compat=compat)
    path, body = request(api, model, stream)
    call_id = f"left-early-{api}-{model}-{stream}-{where}"
    headers = {
        "authorization": f"Bearer {key_of(TEAM)}",
        "x-gateway-cache": "on",
        "x-sim-answer": LONG_ANSWER,
        # Upstream answers after the waiters have joined and the leader has left: seconds to
        # spare on a busy host, which each case waits out.
        "x-sim-latency-ms": "5000",
        "x-mangle-id": call_id,
    }

    async def scenario() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as http:
            leader = asyncio.create_task(
                http.post(f"{gateway.url}{path}", json=body, headers=headers)
            )
            await asyncio.to_thread(
                wait_for, lambda: calls[call_id] == 1, 10, "the leader's upstream call"
            )
            waiters = identical(http, f"{waiting.url}{path}", body, headers, 3)
            await joined(waiting, TEAM, 3, None if waiting is gateway else store)
            await gone(leader)  # upstream has not answered yet
            return await asyncio.gather(*waiters)

    waited = asyncio.run(scenario())
    wait_for(lambda: upstream.requests_in_flight() == 0, 10, "the upstream call to end")
    assert (calls[call_id], _bill_requests(upstream)) == (1, 1)
    for answer in waited:
        assert answer.status_code == 200
        assert _answer_text(api, stream, answer) == LONG_ANSWER
        assert answer.headers["x-gateway-cache"] == "hit"
    # The leader paid for the whole answer upstream made, the hits nothing.
    wait_for(lambda: spend(store, TEAM)[1] == 0, 10, "the leader's charge")
    assert spend(store, TEAM) == (billed(upstream), 0)
    assert _open_streams(gateway) == 0


# -- 5. calls the gateway gives up on after their request was sent -----------------------------------

# How the gateway loses the answer of a request that reached upstream: (status, code). Upstream
# takes a minute to answer; the gateway stops waiting after `first_byte_timeout_s`, or the
# `Cutter` resets its connection as soon as the simulator has the request.
GIVEN_UP = {"timeout": (504, "upstream_timeout"), "reset": (502, "upstream_unreachable")}
SLOW = {"x_sim_latency_ms": "60000"}


@dataclasses.dataclass
class Losing:
    """A gateway, with retries on, that loses the answers of requests sent upstream (`GIVEN_UP`
    says how); the status and code its clients then get."""

    gateway: ServerThread
    status: int
    code: str


@pytest.fixture(params=sorted(GIVEN_UP))
def losing(serve: Serve, cutter: Cutter, request: pytest.FixtureRequest) -> Losing:
    how: str = request.param
    lose = {"first_byte_timeout_s": 0.3} if how == "timeout" else {"base_url": f"{cutter.url}/v1"}
    gateway = serve(wiring={"retries": 2, "retry_backoff_s": 0.01, **lose})
    return Losing(gateway, *GIVEN_UP[how])


def billed_at_most(simulator: ServerThread, charged: int, calls: int = 1) -> None:
    """Once the simulator has billed the `calls` the gateway left behind (it answers them to
    nobody), its bill is no more than what the team was `charged`."""
    wait_for(lambda: _bill_requests(simulator) == calls, 10, "the bill of the calls left behind")
    assert 0 < billed(simulator) <= charged


def _bill_requests(simulator: ServerThread) -> int:
    """How many calls the simulator billed."""
    lines = httpx.get(f"{simulator.url}/_sim/bill").json()["by_key"].get(SIM_KEY, {})
    return sum(line["detail"].get("requests", 0) for line in lines.get("lines", ()))


def retried(gateway: ServerThread) -> float:
    """`gateway_upstream_retries_total`, all models."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in scrape(gateway.url).splitlines()
        if line.startswith("gateway_upstream_retries_total{")
    )


@pytest.mark.parametrize(("api", "model", "stream"), WHOLE, ids=whole_ids())
def test_a_whole_answer_given_up_on_after_it_was_sent_is_asked_once_and_charged_its_hold(
    losing: Losing,
    upstream: ServerThread,
    calls: Counter[str],
    store: redis.Redis,
    api: str,
    model: str,
    stream: bool,
) -> None:
    """Upstream finishes a whole answer whoever waits, and bills it: a retry would be a second
    bill that the hold does not cover. The one call is charged its hold, never less than the
    simulator's bill, which comes once the gateway has left."""
    answer = post(losing.gateway, api, model, stream, x_mangle_id="given-up", **SLOW)
    assert answer.status_code == losing.status
    assert answer.json()["error"]["code"] == losing.code
    assert "x-should-retry" not in answer.headers  # not retried: the client may, held anew
    assert calls["given-up"] == 1 and retried(losing.gateway) == 0
    assert spend(store, TEAM) == (hold(model), 0)
    billed_at_most(upstream, hold(model))
    assert upstream_errors(losing.gateway) == {losing.code: 1}


# How long upstream takes over a stream's first token: before its model begins (its bill is
# nothing yet), or while it reads the prompt and thinks (its bill is the prompt).
BEGINS = {"queued": SLOW, "thinking": {"x_sim_ttft_ms": "60000"}}


@pytest.mark.parametrize("begins", sorted(BEGINS))
@pytest.mark.parametrize("api", ["chat", "responses"])
def test_a_stream_given_up_on_before_it_began_is_not_retried_and_charged_its_prompt(
    losing: Losing,
    upstream: ServerThread,
    calls: Counter[str],
    store: redis.Redis,
    api: str,
    begins: str,
) -> None:
    """Upstream stops a stream whose reader left, and bills what it generated by then: its
    prompt, once it read it. So a stream given up on after its request was sent is charged as
    a stream its client left before it began (its prompt and `left_stream_margin_tokens`),
    and is not retried: each retry would be billed so again, past the call's hold (it had
    been retried twice, charged three prompts). The SDK's own retry is a new request, held on
    its own."""
    answer = post(losing.gateway, api, "gpt-4o", True, x_mangle_id="stream", **BEGINS[begins])
    assert answer.status_code == losing.status
    assert answer.json()["error"]["code"] == losing.code
    assert "x-should-retry" not in answer.headers  # the client's to retry, as it would
    assert calls["stream"] == 1 and retried(losing.gateway) == 0
    charged = left_before_it_began("gpt-4o")
    assert spend(store, TEAM) == (charged, 0)
    wait_for(lambda: upstream.requests_in_flight() == 0, 10, "the simulator to stop the stream")
    if begins == "thinking":
        billed_at_most(upstream, charged)
    else:
        assert billed(upstream) == 0


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_a_team_whose_budget_is_one_holds_worth_ends_within_it_when_its_streams_are_given_up_on(
    serve: Serve, upstream: ServerThread, calls: Counter[str], store: redis.Redis, api: str
) -> None:
    """The first promise, where lost tries could break it: a team whose budget is exactly one
    call's hold (an answer of at most `left_stream_margin_tokens`: a try given up on is all
    of it), its stream given up on before it began, with two retries allowed. The call goes
    once and is charged within its hold; its client's retry is refused before upstream. The
    team had been charged three prompts and margins, past its budget."""
    path, body = request(api, "gpt-4o", True)
    body["max_tokens" if api == "chat" else "max_output_tokens"] = 16
    prompt = tokens.count_messages(MESSAGES)
    budget = worst_case_micros(CONFIG.models["gpt-4o"].price, prompt, 16)
    assert budget < 3 * left_before_it_began("gpt-4o")  # three lost tries would be past it
    gateway = serve(
        wiring={"retries": 2, "retry_backoff_s": 0.01, "first_byte_timeout_s": 0.3},
        budget=budget,
    )
    sent = {"authorization": f"Bearer {key_of(TEAM)}", "x-mangle-id": "budget"}
    sent["x-sim-ttft-ms"] = BEGINS["thinking"]["x_sim_ttft_ms"]
    for _ in range(2):  # the SDK's try, and its retry
        answer = httpx.post(f"{gateway.url}{path}", json=body, headers=sent, timeout=30)
        assert answer.status_code in (429, 504)
    charged, held = spend(store, TEAM)
    assert held == 0 and 0 < charged <= budget
    assert answer.status_code == 429 and calls["budget"] == 1
    billed_at_most(upstream, charged)


def left_before_it_began(model: str) -> int:
    """What a stream of `PROMPT` its client left before it began is charged: the prompt, and
    what upstream may generate before it notices."""
    margin = CONFIG.admission.left_stream_margin_tokens
    return cost_micros(CONFIG.models[model].price, Usage(tokens.count_messages(MESSAGES), margin))


def margin_micros(model: str) -> int:
    """What `left_stream_margin_tokens` of output cost on `model`."""
    margin = CONFIG.admission.left_stream_margin_tokens
    return cost_micros(CONFIG.models[model].price, Usage(0, margin))


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_a_stream_given_up_on_then_answered_to_the_clients_retry_is_charged_both_calls(
    serve: Serve, upstream: ServerThread, calls: Counter[str], store: redis.Redis, api: str
) -> None:
    """The first try's first token takes a minute: the gateway gives up on it after its
    request was sent (upstream bills the prompt it read) and fails the call, which the
    client retries (as the SDKs do a 504), and that answers. The team is charged the answer's
    usage and the first call as a stream left before it began: no less than the bill, no more
    than the bill and the margin."""
    gateway = serve(wiring={"retries": 1, "retry_backoff_s": 0.01, "first_byte_timeout_s": 0.3})
    first = post(gateway, api, "gpt-4o", True, x_mangle="think-once", x_mangle_id="twice")
    assert first.status_code == 504 and retried(gateway) == 0
    answer = post(gateway, api, "gpt-4o", True, x_mangle="think-once", x_mangle_id="twice")
    assert answer.status_code == 200 and events_of(answer).text
    assert calls["twice"] == 2
    wait_for(lambda: _bill_requests(upstream) == 2, 10, "the bill of both calls")
    wait_for(lambda: spend(store, TEAM)[1] == 0, 10, "the calls' charges")
    margin = margin_micros("gpt-4o")
    charged = spend(store, TEAM)[0]
    # The bill and the charge differ by the margin charged for the first call, give or take a
    # micro-dollar of rounding each.
    assert billed(upstream) <= charged <= billed(upstream) + margin + 2


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_a_client_leaving_during_a_retrys_back_off_is_charged_nothing(
    serve: Serve, upstream: ServerThread, store: redis.Redis, api: str
) -> None:
    """Upstream answers each try 429, asking for a 15 s wait; the client leaves while the
    gateway waits to retry. Upstream billed no try (each an error answer), so nothing is
    charged: it had been charged the prompt and `left_stream_margin_tokens`, as a stream its
    client left after its request was sent."""
    gateway = serve(wiring={"retries": 2})
    knobs = {"x-sim-fault": "429", "x-sim-retry-after": "15"}

    async def leave() -> None:
        sdk = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=key_of(TEAM), max_retries=0)
        async with sdk:
            if api == "chat":
                create: Any = sdk.chat.completions.create(
                    model="gpt-4o", messages=MESSAGES, stream=True, extra_headers=knobs
                )  # type: ignore[call-overload]
            else:
                create = sdk.responses.create(
                    model="gpt-4o", input=PROMPT, stream=True, store=False, extra_headers=knobs
                )
            call = asyncio.create_task(create)
            await asyncio.to_thread(
                wait_for, lambda: retried(gateway) == 1, 10, "the gateway waiting to retry"
            )
            assert not call.done()
            call.cancel()  # the SDK drops the connection
            with pytest.raises(asyncio.CancelledError):
                await call

    asyncio.run(leave())
    wait_for(lambda: gateway.requests_in_flight() == 0, 10, "the request to end")
    wait_for(lambda: spend(store, TEAM)[1] == 0, 10, "the hold to be settled")
    assert spend(store, TEAM) == (0, 0)
    assert _bill_requests(upstream) == 0 and retried(gateway) == 1


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_a_reasoning_models_stream_given_up_on_after_it_was_sent_is_asked_once_and_charged_its_hold(
    losing: Losing, upstream: ServerThread, calls: Counter[str], store: redis.Redis, api: str
) -> None:
    """A model that reasons bills the reasoning it did, which only a stream's usage counts, so
    its stream is billed whole whoever leaves it (the gateway reads it to its end): given up on
    after its request was sent, it is a whole answer given up on. A retry would be a second
    bill, the first charged to nobody; the one call is charged its hold."""
    # The model (released in 2026) thinks for 2 s before its first token, which brings the
    # stream's headers: upstream bills the thinking done when the gateway left.
    thinks = {"x_sim_ttft_ms": "2000", "x_sim_today": "2026-10-01"}
    answer = post(losing.gateway, api, "gpt-6-luna", True, x_mangle_id="reasons", **thinks)
    assert answer.status_code == losing.status
    assert answer.json()["error"]["code"] == losing.code
    assert calls["reasons"] == 1 and retried(losing.gateway) == 0
    assert spend(store, TEAM) == (hold("gpt-6-luna"), 0)
    billed_at_most(upstream, hold("gpt-6-luna"))


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_request_that_reached_no_one_is_retried_and_not_charged(
    serve: Serve, store: redis.Redis, stream: bool
) -> None:
    """Nothing listens where the upstream should be: no try reached upstream, whole answer or
    stream, so each is retried and nothing is charged."""
    dead = f"http://127.0.0.1:{free_port()}/v1"
    gateway = serve(wiring={"base_url": dead, "retries": 2, "retry_backoff_s": 0.01})
    answer = post(gateway, "chat", "gpt-4o", stream)
    assert answer.status_code == 502 and answer.json()["error"]["code"] == "upstream_unreachable"
    assert retried(gateway) == 2
    assert spend(store, TEAM) == (0, 0)


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_a_stream_given_up_on_then_answered_by_a_fallback_is_charged_both_bills(
    serve: Serve, upstream: ServerThread, calls: Counter[str], store: redis.Redis, api: str
) -> None:
    """gpt-4o's first token takes a minute; the gateway gives up on its stream after the
    request was sent (upstream bills the prompt it read) and falls back to gpt-4o-mini, held
    on its own, which answers. Upstream billed two calls, and the team is charged both: the
    lost try within its own hold (its prompt and the margin), the fallback its usage; no less
    than the bill, no more than the bill and the margin."""
    gateway = serve(
        wiring={"retries": 2, "retry_backoff_s": 0.01, "first_byte_timeout_s": 0.3},
        fallbacks={"gpt-4o": ("gpt-4o-mini",)},
    )
    answer = post(gateway, api, "gpt-4o", True, x_mangle="think-once", x_mangle_id="lost-then-mini")
    assert answer.status_code == 200 and events_of(answer).text
    assert answer.headers["x-gateway-fallback"] == "gpt-4o -> gpt-4o-mini (upstream_timeout)"
    assert calls["lost-then-mini"] == 2 and retried(gateway) == 0
    wait_for(lambda: _bill_requests(upstream) == 2, 10, "the bill of both calls")
    wait_for(lambda: spend(store, TEAM)[1] == 0, 10, "the calls' charges")
    charged = spend(store, TEAM)[0]
    assert billed(upstream) <= charged <= billed(upstream) + margin_micros("gpt-4o") + 2


def test_a_whole_answer_given_up_on_does_not_fall_back(
    serve: Serve, upstream: ServerThread, calls: Counter[str], store: redis.Redis
) -> None:
    """o1-preview falls back to o1-mini when it fails (the shipped config), but not once its
    request was sent: the fallback's answer would be a second bill."""
    gateway = serve(wiring={"first_byte_timeout_s": 0.3})
    answer = post(gateway, "chat", "o1-preview", False, x_mangle_id="no-fallback", **SLOW)
    assert answer.status_code == 504 and "x-gateway-fallback" not in answer.headers
    assert calls["no-fallback"] == 1
    assert spend(store, TEAM) == (hold("o1-preview"), 0)
    billed_at_most(upstream, hold("o1-preview"))


@pytest.mark.parametrize("stalls", ["first", "repair"])
def test_an_emulated_call_given_up_on_is_charged_its_hold_and_both_calls_fit_in_it(
    serve: Serve,
    upstream: ServerThread,
    calls: Counter[str],
    store: redis.Redis,
    stalls: str,
) -> None:
    """Tools emulated on o1-preview: the first call, or the repair after an answer that broke
    the format, stalls past `first_byte_timeout_s`. Neither is asked again; the request is
    charged its hold, which the repair was capped to fit in: never less than both bills."""
    gateway = serve(wiring={"first_byte_timeout_s": 0.3, "retries": 2})
    weather = {"type": "function", "function": {
        "name": "get_weather", "parameters": {"type": "object", "properties": {}},
    }}  # fmt: skip
    body = {"model": "o1-preview", "messages": MESSAGES, "tools": [weather],
            "tool_choice": "required"}  # fmt: skip
    sent = {"authorization": f"Bearer {key_of(TEAM)}", "x-mangle-id": "emulated"}
    sent |= (
        {"x-sim-latency-ms": "60000"} if stalls == "first" else {"x-mangle": "chatter-then-stall"}
    )
    answer = httpx.post(f"{gateway.url}/v1/chat/completions", json=body, headers=sent, timeout=30)
    assert answer.status_code == 504 and answer.json()["error"]["code"] == "upstream_timeout"
    assert calls["emulated"] == (1 if stalls == "first" else 2)
    charged, held = spend(store, TEAM)
    assert held == 0 and charged >= hold("o1-preview")  # the tools' instructions add to it
    billed_at_most(upstream, charged, calls["emulated"])


def test_a_budget_holds_when_upstream_bills_what_the_gateway_gave_up_on(
    serve: Serve, upstream: ServerThread, calls: Counter[str], store: redis.Redis
) -> None:
    """A team with one and a half holds of budget: its call given up on is charged one hold
    (and billed once, not three times); its next is refused before upstream; what upstream
    billed never exceeds what the team was charged, nor that the budget."""
    budget = hold("gpt-4o") * 3 // 2
    gateway = serve(wiring={"first_byte_timeout_s": 0.3, "retries": 2}, budget=budget)
    first = post(gateway, "chat", "gpt-4o", False, x_mangle_id="first", **SLOW)
    assert first.status_code == 504 and calls["first"] == 1
    second = post(gateway, "chat", "gpt-4o", False, x_mangle_id="second")
    assert second.status_code == 429 and calls["second"] == 0
    assert second.json()["error"]["code"] == "request_over_budget"
    charged, held = spend(store, TEAM)
    assert held == 0 and charged == hold("gpt-4o") <= budget
    billed_at_most(upstream, charged)


def test_a_governed_call_given_up_on_is_charged_its_hold(
    losing: Losing, upstream: ServerThread, calls: Counter[str], store: redis.Redis
) -> None:
    """Embeddings (as every endpoint of the table) answer whole and go once: given up on after
    the request was sent, the call is charged its hold, never less than upstream bills."""
    payload = {"model": "text-embedding-3-small", "input": ["hello", "world"]}
    sent = {"authorization": f"Bearer {key_of(TEAM)}", "x-mangle-id": "embeddings"}
    sent["x-sim-latency-ms"] = SLOW["x_sim_latency_ms"]
    url = f"{losing.gateway.url}/v1/embeddings"
    answer = httpx.post(url, json=payload, headers=sent, timeout=30)
    assert answer.status_code == losing.status
    assert answer.json()["error"]["code"] == losing.code
    assert calls["embeddings"] == 1
    model = CONFIG.models["text-embedding-3-small"]
    held = worst_case(Cost.EMBEDDINGS, payload, model)[2]
    assert spend(store, TEAM) == (held, 0)
    billed_at_most(upstream, held)


def lost_charge(model: str, stream: bool) -> int:
    """What a call of `PROMPT` lost after its write is charged: a whole answer (o1-mini's
    streams are faked from one), its hold; a stream, as one left before it began."""
    return left_before_it_began(model) if stream and model != "o1-mini" else hold(model)


EDGE = {"x_sim_fault": "edge-504"}


@pytest.mark.parametrize("path", PATHS, ids=[f"{a}-{m}-{s}" for a, m, s in PATHS])
def test_a_front_ends_own_5xx_page_is_not_retried_and_charged_as_a_call_lost(
    serve: Serve,
    upstream: ServerThread,
    calls: Counter[str],
    store: redis.Redis,
    path: tuple[str, str, bool],
) -> None:
    """OpenAI's edge stops waiting and answers its own HTML 504 page, while the model goes on:
    a whole answer finished and billed, a stream billed its prompt. The page is no error of
    OpenAI's, which it bills nothing for: the call is neither retried (the retry would be
    billed again) nor sent to the client's retry (`x-should-retry: false`), and is charged as
    a call lost after its write, never less than the bill. It had been retried twice, the
    SDK told to retry it, and charged nothing: three bills of which none was charged."""
    api, model, stream = path
    gateway = serve(wiring={"retries": 2, "retry_backoff_s": 0.01})
    answer = post(gateway, api, model, stream, x_mangle_id="edge", **EDGE)
    assert answer.status_code == 504, answer.text
    assert answer.json()["error"]["code"] == "upstream_error"
    assert answer.headers["x-should-retry"] == "false"
    assert calls["edge"] == 1 and retried(gateway) == 0
    charged = lost_charge(model, stream)
    wait_for(lambda: spend(store, TEAM)[1] == 0, 10, "the call's charge")
    assert spend(store, TEAM) == (charged, 0)
    billed_at_most(upstream, charged)
    assert upstream_errors(gateway) == {"upstream_error": 1}


def test_a_front_ends_own_5xx_page_does_not_fall_back(
    serve: Serve, upstream: ServerThread, calls: Counter[str], store: redis.Redis
) -> None:
    """o1-preview falls back to o1-mini when it fails (the shipped config), but not when the
    edge's page may stand where its billed answer should be."""
    gateway = serve()
    answer = post(gateway, "chat", "o1-preview", False, x_mangle_id="edge-no-fallback", **EDGE)
    assert answer.status_code == 504 and "x-gateway-fallback" not in answer.headers
    assert calls["edge-no-fallback"] == 1
    assert spend(store, TEAM) == (hold("o1-preview"), 0)
    billed_at_most(upstream, hold("o1-preview"))


@pytest.mark.parametrize("stream", [False, True], ids=["embeddings", "completion stream"])
def test_a_governed_call_a_front_end_answered_with_its_page_is_charged_as_one_lost(
    serve: Serve, upstream: ServerThread, store: redis.Redis, stream: bool
) -> None:
    """Calls that go once, to the default upstream: embeddings (whole: the hold) and a legacy
    completion stream (its prompt and the margin), where each had been charged nothing."""
    gateway = serve()
    sent = {"authorization": f"Bearer {key_of(TEAM)}", "x-sim-fault": "edge-504"}
    if stream:
        path = "/v1/completions"
        body: dict[str, Any] = {
            "model": "gpt-3.5-turbo-instruct", "prompt": PROMPT, "max_tokens": 300, "stream": True
        }  # fmt: skip
        model = CONFIG.models["gpt-3.5-turbo-instruct"]
        prompt, _ = completions_worst_case(body, model)
        margin = CONFIG.admission.left_stream_margin_tokens
        charged = cost_micros(model.price, Usage(prompt, margin))
    else:
        path, body = "/v1/embeddings", {"model": "text-embedding-3-small", "input": ["hello"]}
        charged = worst_case(Cost.EMBEDDINGS, body, CONFIG.models["text-embedding-3-small"])[2]
    answer = httpx.post(f"{gateway.url}{path}", json=body, headers=sent, timeout=30)
    assert answer.status_code == 504 and answer.json()["error"]["code"] == "upstream_error"
    assert answer.headers["x-should-retry"] == "false"
    wait_for(lambda: spend(store, TEAM)[1] == 0, 10, "the call's charge")
    assert spend(store, TEAM) == (charged, 0)
    billed_at_most(upstream, charged)


def test_a_stored_emulated_answer_repaired_lists_once(
    serve: Serve, upstream: ServerThread, calls: Counter[str]
) -> None:
    """With `store: true`, the call whose answer broke the format is stored upstream too: it
    is none of the client's completions, so its team lists only the one it was answered."""
    gateway = serve()
    upstream_view = openai.OpenAI(base_url=f"{upstream.url}/v1", api_key=SIM_KEY, max_retries=0)
    before = {c.id for c in upstream_view.chat.completions.list()}
    weather = {"type": "function", "function": {
        "name": "get_weather", "parameters": {"type": "object", "properties": {}},
    }}  # fmt: skip
    client = openai.OpenAI(
        base_url=f"{gateway.url}/v1", api_key=key_of(TEAM), max_retries=0,
        default_headers={"x-mangle": "chatter-once", "x-mangle-id": "stored-repair"},
    )  # fmt: skip
    answer = client.chat.completions.create(
        model="o1-preview", messages=MESSAGES, tools=[weather], tool_choice="required",  # type: ignore[list-item]
        store=True,
    )  # fmt: skip
    assert answer.choices[0].message.tool_calls
    assert calls["stored-repair"] == 3  # the call, its repair, the first one's stored copy deleted
    assert [c.id for c in client.chat.completions.list()] == [answer.id]
    # Nor is it kept upstream, under the gateway's key, where no team can reach it.
    assert {c.id for c in upstream_view.chat.completions.list()} - before == {answer.id}


@pytest.mark.parametrize("fault", ["500", "503"])
def test_upstreams_own_5xx_passed_on_is_counted_as_an_upstream_error(
    serve: Serve, store: redis.Redis, fault: str
) -> None:
    """An upstream failing with its own 5xx (after the gateway's retries) is what the
    `GatewayUpstreamFailing` alert watches for: counted by its status, as the failures the
    gateway answers for itself are; nothing charged."""
    gateway = serve(wiring={"retries": 1})
    answer = post(gateway, "chat", "gpt-4o", False, x_sim_fault=fault)
    assert answer.status_code == int(fault)
    assert upstream_errors(gateway) == {f"upstream_{fault}": 1}  # once, not per try
    assert spend(store, TEAM) == (0, 0)
