"""Retries, circuit breakers, deployments and fallbacks, end to end over real sockets: a dead
port stands in for a failing upstream, simulators for healthy ones."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest

from gateway.app import create_app
from gateway.config import Config, DeploymentConfig, SimulatorConfig
from gateway.simulator import create_simulator
from tests.conftest import (
    CLIENT_KEY,
    SIM_KEY,
    GatewayFactory,
    ServerThread,
    base_config,
    chat_scope,
    cut_at_its_headers,
    free_port,
    scrape,
)
from tests.redis.endpoints.teams import key_of, teams_yaml

HELLO = [{"role": "user", "content": "Hello there"}]


def config_with(upstream_url: str, **deployments: str) -> Config:
    """The shipped config on `upstream_url`; o1-preview served by `deployments` (name -> URL)
    and falling back to o1-mini."""
    config = base_config(OPENAI_BASE_URL=upstream_url, OPENAI_API_KEY=SIM_KEY)
    models = dict(config.models)
    models["o1-preview"] = dataclasses.replace(
        models["o1-preview"],
        deployments={name: DeploymentConfig(base_url=url) for name, url in deployments.items()},
        fallbacks=("o1-mini",),
    )
    return dataclasses.replace(config, models=models)


def metric(server: ServerThread, prefix: str) -> float:
    text = scrape(server.url)
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)
    )


def sdk(server: ServerThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=CLIENT_KEY, max_retries=0)


def test_falls_back_when_a_model_keeps_failing_and_charges_what_ran(
    start_gateway: GatewayFactory, simulator: ServerThread
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    server = start_gateway(
        config_with(f"{simulator.url}/v1", broken=dead),
        upstream={"retry_backoff_s": 0.01, "breaker_failures": 100},
    )
    raw = sdk(server).chat.completions.with_raw_response.create(model="o1-preview", messages=HELLO)  # type: ignore[arg-type]
    assert raw.parse().model == "o1-mini-2024-09-12"
    assert raw.headers["x-gateway-fallback"] == "o1-preview -> o1-mini (upstream_unreachable)"
    assert metric(server, 'gateway_upstream_retries_total{model="o1-preview"}') == 2
    assert metric(server, "gateway_upstream_fallbacks_total{") == 1
    # Only o1-mini ran, so only o1-mini was charged.
    assert (
        metric(server, 'gateway_spend_microdollars_total{endpoint="chat",model="o1-preview"') == 0
    )
    assert metric(server, 'gateway_spend_microdollars_total{endpoint="chat",model="o1-mini"') > 0


def test_an_open_circuit_sends_requests_to_the_fallback_at_once_and_a_probe_closes_it(
    start_gateway: GatewayFactory, simulator: ServerThread
) -> None:
    port = free_port()
    server = start_gateway(
        config_with(f"{simulator.url}/v1", flaky=f"http://127.0.0.1:{port}/v1"),
        upstream={"retries": 0, "breaker_failures": 2, "breaker_cooldown_s": 0.5},
    )
    client = sdk(server)
    reasons = []
    for _ in range(4):
        raw = client.chat.completions.with_raw_response.create(model="o1-preview", messages=HELLO)  # type: ignore[arg-type]
        reasons.append(raw.headers["x-gateway-fallback"])
    # Two failures open the circuit; then o1-preview is not even tried.
    assert reasons[:2] == ["o1-preview -> o1-mini (upstream_unreachable)"] * 2
    assert reasons[2:] == ["o1-preview -> o1-mini (circuit open)"] * 2
    # The upstream recovers; after the cooldown one probe goes through and closes the circuit.
    with ServerThread(create_simulator(SimulatorConfig()), port=port):
        time.sleep(0.6)
        for _ in range(3):
            raw = client.chat.completions.with_raw_response.create(
                model="o1-preview", messages=HELLO
            )  # type: ignore[arg-type]
            assert raw.parse().model == "o1-preview-2024-09-12"
            assert "x-gateway-fallback" not in raw.headers


def test_retries_honour_retry_after_and_give_the_answer_back_when_tries_run_out(
    start_gateway: GatewayFactory, simulator: ServerThread
) -> None:
    server = start_gateway(upstream={"forward_header_prefixes": ("x-sim-",), "retries": 2})
    client = sdk(server).with_options(
        default_headers={"x-sim-fault": "429", "x-sim-retry-after": "0.2"}
    )
    started = time.monotonic()
    with pytest.raises(openai.RateLimitError):  # gpt-4o has no fallback: upstream's 429 returns
        client.chat.completions.create(model="gpt-4o", messages=HELLO)  # type: ignore[arg-type]
    assert time.monotonic() - started >= 0.4  # two waits of the upstream's 0.2 s
    assert metric(server, 'gateway_upstream_retries_total{model="gpt-4o"}') == 2
    # A retry-after beyond upstream.retry_after_max_s is not waited for.
    client = sdk(server).with_options(
        default_headers={"x-sim-fault": "429", "x-sim-retry-after": "60"}
    )
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-4o", messages=HELLO)  # type: ignore[arg-type]
    assert metric(server, 'gateway_upstream_retries_total{model="gpt-4o"}') == 2  # no new retry


def test_retries_never_outlast_the_clients_deadline(
    start_gateway: GatewayFactory, simulator: ServerThread
) -> None:
    server = start_gateway(
        upstream={"forward_header_prefixes": ("x-sim-",), "retries": 5, "retry_backoff_s": 1.0}
    )
    # The SDK says how long it waits (x-stainless-timeout): 0.3 s leaves no room for a retry
    # (the first wait is at least half of retry_backoff_s).
    answer = httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"model": "gpt-4o", "messages": HELLO},
        headers={
            "Authorization": f"Bearer {CLIENT_KEY}", "x-sim-fault": "503",
            "x-stainless-timeout": "0.3",
        },
    )  # fmt: skip
    assert answer.status_code == 503
    assert metric(server, 'gateway_upstream_retries_total{model="gpt-4o"}') == 0


@pytest.fixture
def two_simulators() -> Iterator[tuple[ServerThread, ServerThread]]:
    with (
        ServerThread(create_simulator(SimulatorConfig(request_log=100))) as a,
        ServerThread(create_simulator(SimulatorConfig(request_log=100))) as b,
    ):
        yield a, b


def test_deployments_share_the_load(
    start_gateway: GatewayFactory, two_simulators: tuple[ServerThread, ServerThread]
) -> None:
    a, b = two_simulators
    server = start_gateway(config_with(f"{a.url}/v1", east=f"{a.url}/v1", west=f"{b.url}/v1"))
    client = sdk(server)
    for _ in range(6):
        assert client.chat.completions.create(model="o1-preview", messages=HELLO)  # type: ignore[arg-type]

    def served(sim: ServerThread) -> int:
        log: list[dict[str, Any]] = httpx.get(f"{sim.url}/_sim/requests").json()["data"]
        return sum(1 for entry in log if entry.get("path") == "/v1/chat/completions")

    assert served(a) == 3 and served(b) == 3


def test_a_successful_answer_lost_after_its_headers_is_not_retried(
    start_gateway: GatewayFactory, simulator: ServerThread
) -> None:
    # `reset` drops the connection after a 200's headers: upstream generated (and bills) the
    # answer, so the gateway does not ask for a second one; the client hears of it.
    server = start_gateway(
        upstream={"forward_header_prefixes": ("x-sim-",), "retries": 2, "retry_backoff_s": 0.01}
    )
    client = sdk(server).with_options(default_headers={"x-sim-fault": "reset"}, max_retries=0)
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="gpt-4o", messages=HELLO)  # type: ignore[arg-type]
    assert info.value.status_code == 502 and info.value.code == "upstream_truncated"
    assert metric(server, 'gateway_upstream_retries_total{model="gpt-4o"}') == 0


def sim_calls(sim: ServerThread, path: str = "/v1/chat/completions") -> int:
    log: list[dict[str, Any]] = httpx.get(f"{sim.url}/_sim/requests").json()["data"]
    return sum(1 for entry in log if entry.get("path") == path)


def test_one_sdk_call_against_an_upstream_always_429_costs_only_the_gateways_tries(
    start_gateway: GatewayFactory, two_simulators: tuple[ServerThread, ServerThread]
) -> None:
    upstream, _ = two_simulators
    config = base_config(OPENAI_BASE_URL=f"{upstream.url}/v1", OPENAI_API_KEY=SIM_KEY)
    server = start_gateway(config, upstream={"forward_header_prefixes": ("x-sim-",), "retries": 2})
    # The SDK's own retries left at its default (2): without the contract, 3 x 3 upstream calls.
    client = openai.OpenAI(
        base_url=f"{server.url}/v1", api_key=CLIENT_KEY,
        default_headers={"x-sim-fault": "429", "x-sim-retry-after": "0.05"},
    )  # fmt: skip
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="gpt-4o", messages=HELLO)  # type: ignore[arg-type]
    assert info.value.response.headers["x-should-retry"] == "false"
    assert sim_calls(upstream) == 3  # the first try and the gateway's two retries


class Scripted:
    """An upstream answering every chat call with the status it is set to."""

    def __init__(self) -> None:
        self.status = 400
        self.calls = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.calls += 1
        body = orjson.dumps({"error": {"message": "no", "type": "invalid_request_error"}})
        await send({"type": "http.response.start", "status": self.status,
                    "headers": [(b"content-type", b"application/json")]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})


def test_a_callers_bad_requests_never_open_the_breaker_and_an_open_one_says_when_to_retry(
    start_gateway: GatewayFactory,
) -> None:
    scripted = Scripted()
    with ServerThread(scripted) as upstream:
        config = base_config(OPENAI_BASE_URL=f"{upstream.url}/v1", OPENAI_API_KEY=SIM_KEY)
        server = start_gateway(
            config, upstream={"retries": 0, "breaker_failures": 2, "breaker_cooldown_s": 30}
        )
        client = sdk(server)
        for _ in range(6):  # upstream refuses the request itself: no sign of ill health
            with pytest.raises(openai.BadRequestError):
                client.chat.completions.create(model="gpt-4o", messages=HELLO)  # type: ignore[arg-type]
        assert scripted.calls == 6
        scripted.status = 500
        for _ in range(2):
            with pytest.raises(openai.InternalServerError):
                client.chat.completions.create(model="gpt-4o", messages=HELLO)  # type: ignore[arg-type]
        with pytest.raises(openai.APIStatusError) as info:  # open: not even tried
            client.chat.completions.create(model="gpt-4o", messages=HELLO)  # type: ignore[arg-type]
        assert scripted.calls == 8
        answer = info.value.response
        assert answer.status_code == 503 and info.value.code == "upstream_circuit_open"
        assert 1 <= int(answer.headers["retry-after"]) <= 30
        assert answer.headers["x-should-retry"] == "true"  # the SDK waits the retry-after


class Refusing:
    """An upstream answering every chat call 503 with the headers it is set to send."""

    def __init__(self, headers: list[tuple[bytes, bytes]]) -> None:
        self.headers = headers
        self.calls = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.calls += 1
        body = orjson.dumps({"error": {"message": "busy", "type": "server_error"}})
        headers = [(b"content-type", b"application/json"), *self.headers]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})


@pytest.mark.parametrize(
    ("header", "calls"),
    [
        # A date past what a calendar holds: a wait longer than any, so not waited for.
        ((b"retry-after", b"Mon, 01 Jan 99999 00:00:00 GMT"), 1),
        # Not a number of seconds anyone can wait: the gateway's own backoff.
        ((b"retry-after-ms", b"nan"), 3),
        ((b"retry-after", b"NaN"), 3),
    ],
)
def test_an_unreadable_retry_after_is_the_upstreams_answer_never_a_gateway_error(
    start_gateway: GatewayFactory, header: tuple[bytes, bytes], calls: int
) -> None:
    refusing = Refusing([header])
    with ServerThread(refusing) as upstream:
        config = base_config(OPENAI_BASE_URL=f"{upstream.url}/v1", OPENAI_API_KEY=SIM_KEY)
        # On uvloop, as `o1-gateway serve` runs: it refuses to sleep for NaN seconds.
        server = start_gateway(config, "uvloop", upstream={"retries": 2, "retry_backoff_s": 0.01})
        with pytest.raises(openai.APIStatusError) as info:
            sdk(server).chat.completions.create(model="gpt-4o", messages=HELLO)  # type: ignore[arg-type]
        assert info.value.status_code == 503, info.value.response.text
        assert refusing.calls == calls


class Faulty:
    """The simulator with knobs (`x-sim-fault: reset`, say) set on every chat call: a
    deployment that fails the same way each time."""

    def __init__(self, **knobs: str) -> None:
        self.knobs = [(f"x-sim-{k}".encode(), v.encode()) for k, v in knobs.items()]
        self.calls = 0
        self.app = create_simulator(SimulatorConfig())

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/v1/chat/completions":
            self.calls += 1
            scope = {**scope, "headers": [*scope["headers"], *self.knobs]}
        await self.app(scope, receive, send)


# Three chunks of every stream, then the connection dropped; or a stall after the first one,
# past the gateway's read timeout.
CUTS = {"reset": {"fault": "reset"}, "stall": {"chunk-interval-ms": "3000"}}


def falling_back(upstream_url: str, deployment_url: str) -> Config:
    """gpt-4o served by one deployment at `deployment_url`, falling back to gpt-4o-mini."""
    config = base_config(OPENAI_BASE_URL=upstream_url, OPENAI_API_KEY=SIM_KEY)
    models = dict(config.models)
    models["gpt-4o"] = dataclasses.replace(
        models["gpt-4o"],
        deployments={"only": DeploymentConfig(base_url=deployment_url)},
        fallbacks=("gpt-4o-mini",),
    )
    return dataclasses.replace(config, models=models)


def streamed(client: openai.OpenAI) -> tuple[str, str | None]:
    """One streamed chat call: the model that answered, and the fallback header."""
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o",
        messages=HELLO,
        stream=True,  # type: ignore[arg-type]
    ) as raw:
        models = {
            orjson.loads(line[6:]).get("model", "error")
            for line in raw.iter_lines()
            if line.startswith("data: {")
        }
        return ",".join(sorted(models)), raw.headers.get("x-gateway-fallback")


@pytest.mark.parametrize("cut", sorted(CUTS))
def test_a_deployment_that_cuts_every_stream_opens_its_circuit_and_a_stream_probe_counts_at_its_end(
    start_gateway: GatewayFactory, simulator: ServerThread, cut: str
) -> None:
    faulty = Faulty(**CUTS[cut])
    with ServerThread(faulty) as deployment:
        server = start_gateway(
            falling_back(f"{simulator.url}/v1", f"{deployment.url}/v1"),
            upstream={
                "retries": 0, "breaker_failures": 2, "breaker_cooldown_s": 0.5,
                "read_timeout_s": 0.5,
            },
        )  # fmt: skip
        client = sdk(server)
        for _ in range(2):  # cut mid-way: the client gets the error event
            assert streamed(client) == ("error,gpt-4o-2024-08-06", None)
        # Two failures in a row: the healthy fallback takes the traffic, the cutting
        # deployment is not tried.
        assert streamed(client) == (
            "gpt-4o-mini-2024-07-18",
            "gpt-4o -> gpt-4o-mini (circuit open)",
        )
        assert faulty.calls == 2
        # After the cooldown, one probe: a stream cut again opens the circuit again.
        time.sleep(0.6)
        assert streamed(client) == ("error,gpt-4o-2024-08-06", None)
        assert streamed(client)[0] == "gpt-4o-mini-2024-07-18"
        assert faulty.calls == 3
        # It recovers: the next probe streams to its end and closes the circuit.
        faulty.knobs = []
        time.sleep(0.6)
        for _ in range(3):
            assert streamed(client) == ("gpt-4o-2024-08-06", None)
        assert faulty.calls == 6


@pytest.mark.parametrize("fault", ["reset", "error-object"])
def test_a_deployment_whose_whole_answers_fail_after_their_headers_opens_its_circuit(
    start_gateway: GatewayFactory, simulator: ServerThread, fault: str
) -> None:
    faulty = Faulty(fault="reset") if fault == "reset" else ErrorIn200()
    with ServerThread(faulty) as deployment:
        server = start_gateway(
            falling_back(f"{simulator.url}/v1", f"{deployment.url}/v1"),
            upstream={"retries": 0, "breaker_failures": 2, "breaker_cooldown_s": 30},
        )
        client = sdk(server)
        for _ in range(2):
            with pytest.raises(openai.APIStatusError) as info:
                client.chat.completions.create(model="gpt-4o", messages=HELLO)  # type: ignore[arg-type]
            assert info.value.status_code == 502
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=HELLO)  # type: ignore[arg-type]
        assert raw.parse().model == "gpt-4o-mini-2024-07-18"
        assert raw.headers["x-gateway-fallback"] == "gpt-4o -> gpt-4o-mini (circuit open)"
        assert faulty.calls == 2


class ErrorIn200:
    """A front end answering every chat call 200 with OpenAI's error object."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.calls += 1
        body = orjson.dumps({"error": {"message": "overloaded", "type": "server_error"}})
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})


def test_one_teams_requests_upstream_fails_on_do_not_shut_the_deployment_for_another(
    start_gateway: GatewayFactory, simulator: ServerThread, tmp_path: Any
) -> None:
    """Upstream may answer 500 to what a request asks, every time it is asked: one team
    sending such requests must not open the circuit for every other team (a denial of service
    with an ordinary key). A second team failing in the same streak, as in an outage, does."""
    teams = tmp_path / "teams.yaml"
    teams.write_text(teams_yaml({"hostile": {"tier": "tier-5"}, "bystander": {"tier": "tier-5"}}))
    server = start_gateway(
        admission={"teams_file": str(teams)},
        upstream={
            "forward_header_prefixes": ("x-sim-",), "retries": 0, "breaker_failures": 2,
            "breaker_cooldown_s": 30,
        },
    )  # fmt: skip
    clients = {
        team: openai.OpenAI(base_url=f"{server.url}/v1", api_key=key_of(team), max_retries=0)
        for team in ("hostile", "bystander")
    }

    def ask(team: str, failing: bool = False) -> Any:
        headers = {"x-sim-fault": "500"} if failing else {}
        return clients[team].chat.completions.create(
            model="gpt-4o",
            messages=HELLO,
            extra_headers=headers,  # type: ignore[arg-type]
        )

    assert ask("bystander")
    for _ in range(5):
        with pytest.raises(openai.InternalServerError):
            ask("hostile", failing=True)
    assert ask("bystander")  # still closed: the bystander is served
    with pytest.raises(openai.InternalServerError):
        ask("hostile", failing=True)
    with pytest.raises(openai.InternalServerError):  # the bystander's call fails too: an outage
        ask("bystander", failing=True)
    with pytest.raises(openai.APIStatusError) as info:
        ask("bystander")
    assert info.value.status_code == 503 and info.value.code == "upstream_circuit_open"


@pytest.mark.anyio
async def test_a_stream_probe_cancelled_before_its_body_frees_the_probe_and_its_place(
    simulator: ServerThread, teams_file: Path
) -> None:
    config = falling_back(f"{simulator.url}/v1", f"{simulator.url}/v1")
    config = dataclasses.replace(
        config,
        admission=dataclasses.replace(config.admission, teams_file=str(teams_file)),
        upstream=dataclasses.replace(config.upstream, breaker_failures=1, breaker_cooldown_s=0.01),
    )
    app = create_app(config)
    async with app.router.lifespan_context(app):
        gw = app.state.gateway
        (target,) = gw.dispatch.targets("gpt-4o")
        target.breaker.failure(time.perf_counter())  # open: the next call after the cooldown
        await asyncio.sleep(0.02)  # probes it
        await cut_at_its_headers(
            app, {"model": "gpt-4o", "stream": True, "messages": HELLO}, CLIENT_KEY
        )
        # The probe told nothing of the deployment's health: the next call may probe it.
        assert target.in_flight == 0
        assert gw.dispatch.available("gpt-4o")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            answer = await client.post(
                "/v1/chat/completions",
                json={"model": "gpt-4o", "stream": True, "messages": HELLO},
                headers={"authorization": f"Bearer {CLIENT_KEY}"},
            )
        assert answer.status_code == 200
        assert "x-gateway-fallback" not in answer.headers  # the deployment took it
        assert target.breaker.state == "closed"


class StallingJson:
    """A front end answering every chat call 200 with JSON headers, then no more of its body."""

    def __init__(self) -> None:
        self.answered = asyncio.Event()  # set on the test's loop, from the server's thread
        self.loop: asyncio.AbstractEventLoop | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})  # fmt: skip
        await send({"type": "http.response.body", "body": b'{"id": ', "more_body": True})
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self.answered.set)
        while (await receive())["type"] != "http.disconnect":  # until the gateway hangs up
            pass


@pytest.mark.anyio
async def test_a_probe_whose_client_leaves_while_its_answer_is_read_tells_no_success(
    simulator: ServerThread, teams_file: Path
) -> None:
    stalling = StallingJson()
    stalling.loop = asyncio.get_running_loop()
    with ServerThread(stalling) as deployment:
        config = falling_back(f"{simulator.url}/v1", f"{deployment.url}/v1")
        config = dataclasses.replace(
            config,
            admission=dataclasses.replace(config.admission, teams_file=str(teams_file)),
            upstream=dataclasses.replace(
                config.upstream, retries=0, breaker_failures=1, breaker_cooldown_s=0.01
            ),
        )
        app = create_app(config)
        async with app.router.lifespan_context(app):
            (target,) = app.state.gateway.dispatch.targets("gpt-4o")
            target.breaker.failure(time.perf_counter())  # open: the next call probes it
            await asyncio.sleep(0.02)
            body = orjson.dumps({"model": "gpt-4o", "stream": True, "messages": HELLO})
            messages = [{"type": "http.request", "body": body, "more_body": False}]
            statuses: list[int] = []

            async def receive() -> dict[str, Any]:
                if messages:
                    return messages.pop()
                await stalling.answered.wait()
                return {"type": "http.disconnect"}  # the client leaves mid-answer

            async def send(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    statuses.append(message["status"])

            await asyncio.wait_for(app(chat_scope(app, CLIENT_KEY), receive, send), 10)
            assert statuses == [499]
            # The deployment never finished an answer: the probe tells nothing of its health.
            breaker = target.breaker
            assert breaker.state == "half_open" and breaker.allows(time.perf_counter())
            assert target.in_flight == 0
