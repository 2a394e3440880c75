"""Fault injection against a real redis-server and the simulated upstream.

Each test breaks one thing under load and then audits the ledger in Redis (`audit`): every
client request got exactly one final answer, the upstream calls each made are visible in the
simulator's request log, every hold is settled (or expired), the team's spend equals what ran to
the micro-dollar, and every key the team's admission wrote will expire.

Scenarios: Redis killed with SIGKILL and restarted on the same port and data; Redis frozen with
SIGSTOP then SIGCONT; upstream 429 / 500 / first-byte timeout / connection reset / in-stream
error; clients that leave mid-stream or while a non-streamed call waits. SIGTERM of a gateway
under load is `tests/redis/runtime/test_shutdown.py` (same audit, on a gateway subprocess).

Expected spend is the sum of `cost_micros(price, usage)` over the usage the answers reported
(streams ask `stream_options.include_usage` and read the usage chunk). A stream cut short by the
upstream is charged by the gateway's stream meter: the prompt (counted as upstream counts it)
plus the tokens of the text generated, all of which reached the client, so that is exact too.
A stream the *client* left is bounded: at least what the client read, at most the whole answer
(the gateway may have relayed a chunk or two more than the client read before it noticed).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis

from gateway.admission.pricing import cost_micros, worst_case_micros
from gateway.config import AdmissionConfig, Config, SimulatorConfig
from gateway.simulator import create_simulator
from gateway.wire import tokens
from gateway.wire.usage import Usage, usage_from
from tests.conftest import (
    CLIENT_KEY,
    SIM_KEY,
    GatewayFactory,
    ServerThread,
    base_config,
    free_port,
    scrape,
    start_redis_server,
)
from tests.redis.admission.test_end_to_end import usage_by
from tests.redis.endpoints.teams import billed

pytestmark = pytest.mark.redis

TEAM = "test"  # conftest's teams file: team `test`, tier 5, key CLIENT_KEY
PRICE = base_config().models["gpt-4o"].price
MAX_OUTPUT = base_config().models["gpt-4o"].max_output
HELLO = [{"role": "user", "content": "Say hello to the gateway."}]
PROMPT = tokens.count_messages(HELLO)
LONG_ANSWER = " ".join(["word"] * 200)


# -- servers ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sim() -> Iterator[ServerThread]:
    """This module's own simulated upstream, with a request log long enough for its loads."""
    with ServerThread(create_simulator(SimulatorConfig(request_log=5000))) as server:
        yield server


@pytest.fixture
def upstream(sim: ServerThread) -> ServerThread:
    httpx.delete(f"{sim.url}/_sim/requests")
    return sim


def config_for(sim: ServerThread) -> Config:
    return base_config(OPENAI_BASE_URL=f"{sim.url}/v1", OPENAI_API_KEY=SIM_KEY)


class RedisProcess:
    """A redis-server on a fixed port and data directory, so it can be killed and restarted
    with its data: AOF with fsync on every write, so whatever it acknowledged survives SIGKILL."""

    def __init__(self, tmp: Path) -> None:
        self.dir = tmp
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None, "redis-server is not installed"
        self.proc = subprocess.Popen(
            [
                binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.dir),
            ],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                if redis.Redis(port=self.port, socket_timeout=0.5).ping():
                    return
            except (redis.RedisError, OSError):
                pass
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.02)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.kill()


@pytest.fixture
def persistent_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def plain_redis(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    proc, url = start_redis_server(str(tmp_path))
    yield proc, url
    os.kill(proc.pid, signal.SIGCONT)  # in case a test left it frozen
    proc.kill()
    proc.wait()


def gateway_on(
    start_gateway: GatewayFactory, sim: ServerThread, redis_url: str, **upstream: Any
) -> ServerThread:
    return start_gateway(
        config_for(sim),
        redis={"url": redis_url, "timeout_s": 0.3},
        admission={"budgets_on_redis_error": "open"},
        upstream={"forward_header_prefixes": ("x-sim-",), **upstream},
    )


# -- clients ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class Outcome:
    """One client request's final answer."""

    tag: str
    stream: bool
    status: int = 0  # 0: no HTTP answer at all (transport error or the client left)
    usage: Usage | None = None
    text: str = ""  # streams: the content the client read
    error: Any = None  # an error body, or an in-stream error event
    done: bool = False  # streams: `data: [DONE]` arrived
    started: float = 0.0
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


async def chat(
    client: httpx.AsyncClient,
    url: str,
    tag: str,
    *,
    stream: bool = False,
    headers: dict[str, str] | None = None,
    messages: list[dict[str, str]] = HELLO,
    read_chunks: int | None = None,
) -> Outcome:
    """One chat call tagged `x-sim-tag` (forwarded upstream, ignored by the simulator, so the
    request log says which client request each upstream call belongs to)."""
    body: dict[str, Any] = {"model": "gpt-4o", "messages": messages}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    sent = {"authorization": f"Bearer {CLIENT_KEY}", "x-sim-tag": tag, **(headers or {})}
    out = Outcome(tag, stream, started=time.monotonic())
    try:
        async with client.stream(
            "POST", f"{url}/v1/chat/completions", json=body, headers=sent
        ) as answer:
            out.status, out.headers = answer.status_code, dict(answer.headers)
            if not stream or answer.status_code != 200:
                content = await answer.aread()
                payload = orjson.loads(content)
                out.usage = usage_from(payload.get("usage"))
                out.error = payload.get("error")
                return out
            chunks = 0
            async for line in answer.aiter_lines():
                if not line.startswith("data: "):
                    continue
                if line == "data: [DONE]":
                    out.done = True
                    continue
                event = orjson.loads(line[6:])
                if "error" in event:
                    out.error = event["error"]
                if event.get("usage"):
                    out.usage = usage_from(event["usage"])
                for choice in event.get("choices") or ():
                    out.text += choice.get("delta", {}).get("content") or ""
                chunks += 1
                if read_chunks is not None and chunks >= read_chunks:
                    break  # the client leaves: closing the response drops the connection
    except httpx.HTTPError as exc:
        out.error = repr(exc)
    return out


def new_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=200))


def cost_of(outcomes: list[Outcome]) -> int:
    """What the answers that reported usage cost."""
    total = 0
    for out in outcomes:
        if out.status == 200 and out.usage is not None:
            total += cost_micros(PRICE, out.usage)
    return total


def upstream_calls(sim: ServerThread) -> Counter[str]:
    """Upstream chat calls per client request (by x-sim-tag), from the simulator's log."""
    log = httpx.get(f"{sim.url}/_sim/requests").json()["data"]
    return Counter(
        entry["headers"].get("x-sim-tag", "")
        for entry in log
        if entry["path"] == "/v1/chat/completions"
    )


def metric(server: ServerThread, prefix: str) -> float:
    text = scrape(server.url)
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)
    )


def answered(server: ServerThread) -> float:
    """Chat requests the gateway finished (each counted once, whatever its status)."""
    return metric(server, 'gateway_requests_total{endpoint="chat"') or metric(
        server, "gateway_requests_total{"
    )


# -- the audit ---------------------------------------------------------------------------------------


def month() -> str:
    return datetime.now(UTC).strftime("%Y-%m")


def audit(
    redis_url: str,
    team: str,
    expected_spend_micros: int | tuple[int, int],
    wait_s: float = 15.0,
) -> int:
    """The ledger after a fault, once settles have landed (polled up to `wait_s`).

    Spend equals `expected_spend_micros` exactly (or lies within it when it is a (low, high)
    pair), nothing is held, no hold is open, and every key of the team's admission expires (the
    team and key records are meant to stay). Returns the spend.
    """
    store = redis.Redis.from_url(redis_url)
    base, period = f"{{t:{team}}}", month()
    deadline = time.monotonic() + wait_s
    while True:
        spend = int(store.get(f"{base}:spend:{period}") or 0)
        held = int(store.get(f"{base}:held:{period}") or 0)
        holds = [h.decode() for h in store.zrange(f"{base}:holds", 0, -1)]
        open_holds = [h for h in holds if store.hget(f"{base}:hold:{h}", "s") in (None, b"open")]
        if isinstance(expected_spend_micros, tuple):
            right = expected_spend_micros[0] <= spend <= expected_spend_micros[1]
        else:
            right = spend == expected_spend_micros
        # Settles of requests admitted without Redis have no hold to watch: wait for the spend.
        if (held == 0 and not open_holds and right) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert held == 0, f"{held} micro-dollars still held"
    assert not open_holds, f"holds never settled: {open_holds}"
    if isinstance(expected_spend_micros, tuple):
        low, high = expected_spend_micros
        assert low <= spend <= high, (low, spend, high)
    else:
        assert spend == expected_spend_micros, (spend, expected_spend_micros)
    immortal = [
        key
        for key in store.scan_iter(f"{base}*")
        # -1: no expiry (-2: expired between the scan and this look; short-lived buckets do)
        if key not in (f"{base}:team".encode(), f"{base}:keys".encode()) and store.pttl(key) == -1
    ]
    assert not immortal, f"keys without expiry: {immortal}"
    store.close()
    return spend


def hold_ids(redis_url: str, team: str = TEAM) -> int:
    return redis.Redis.from_url(redis_url).zcard(f"{{t:{team}}}:holds")


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


# -- 1. Redis killed and restarted --------------------------------------------------------------------


def test_redis_sigkill_mid_load_then_restart_loses_no_charge(
    start_gateway: GatewayFactory, upstream: ServerThread, persistent_redis: RedisProcess
) -> None:
    """Requests in flight when Redis dies and requests while it is dead are all served (rate
    limits and, for this test, budgets fail open); after a restart on the same port and data
    (AOF, fsync always) the gateway admits against Redis again without a restart of its own, and
    the settles that waited land: spend is everything that ran."""
    gw = gateway_on(start_gateway, upstream, persistent_redis.url)

    async def scenario() -> tuple[list[Outcome], list[Outcome], list[Outcome]]:
        async with new_client() as client:
            slow = {"x-sim-latency-ms": "600"}
            in_flight = [
                asyncio.create_task(chat(client, gw.url, f"a{i}", stream=i % 2 == 0, headers=slow))
                for i in range(12)
            ]
            # All twelve admitted (their holds are in Redis) and waiting on the upstream.
            await asyncio.to_thread(
                wait_for, lambda: hold_ids(persistent_redis.url) == 12, 5, "12 holds"
            )
            persistent_redis.kill()
            down = await asyncio.gather(
                *(chat(client, gw.url, f"b{i}", stream=i % 2 == 1) for i in range(8))
            )
            ready = (await client.get(f"{gw.url}/readyz")).json()
            assert ready["checks"]["redis"] is False
            first = await asyncio.gather(*in_flight)
            await asyncio.to_thread(persistent_redis.start)
            await asyncio.to_thread(
                wait_for, lambda: metric(gw, "gateway_redis_up") == 1, 5, "gateway_redis_up 1"
            )
            degraded = metric(gw, "gateway_admission_degraded_total")
            after = await asyncio.gather(
                *(chat(client, gw.url, f"c{i}", stream=i % 2 == 0) for i in range(6))
            )
            # Admitted against Redis again: none of these decided without it.
            assert metric(gw, "gateway_admission_degraded_total") == degraded
            return first, list(down), list(after)

    first, down, after = asyncio.run(scenario())
    everything = first + down + after
    assert [o.status for o in everything] == [200] * 26, [(o.tag, o.status) for o in everything]
    assert all(o.usage is not None for o in everything)
    assert all(o.done for o in everything if o.stream)
    assert metric(gw, 'gateway_admission_degraded_total{outcome="fail_open"}') >= 8
    assert metric(gw, 'gateway_redis_errors_total{op="settle"}') >= 20  # settles waited
    audit(persistent_redis.url, TEAM, cost_of(everything))
    assert upstream_calls(upstream) == Counter({o.tag: 1 for o in everything})
    assert answered(gw) == 26
    # The after-restart requests were admitted against Redis: their holds are in its index.
    store = redis.Redis.from_url(persistent_redis.url)
    assert usage_by(store, TEAM, "model")["gpt-4o"]["requests"] >= 12 + 6


# -- 2. Redis frozen ------------------------------------------------------------------------------------


def test_redis_sigstop_under_load_fails_open_fast_and_settles_after_sigcont(
    start_gateway: GatewayFactory,
    upstream: ServerThread,
    plain_redis: tuple[subprocess.Popen[bytes], str],
) -> None:
    """A frozen Redis accepts connections and never answers: each call to it times out
    (redis.timeout_s) and the request fails open rather than wait for it; after SIGCONT the
    commands it had queued run (late admits and settles, which hold ids make idempotent) and the
    ledger is exact."""
    proc, url = plain_redis
    gw = gateway_on(start_gateway, upstream, url)
    frozen: list[float] = []  # [stopped at, continued at]

    async def scenario() -> list[Outcome]:
        outcomes: list[Outcome] = []
        async with new_client() as client:
            # Warm: the key is known and the pool has connections before the freeze.
            outcomes.append(await chat(client, gw.url, "warm"))
            stop_at = time.monotonic() + 3.2

            async def worker(n: int) -> None:
                i = 0
                while time.monotonic() < stop_at:
                    outcomes.append(await chat(client, gw.url, f"w{n}-{i}", stream=i % 2 == 1))
                    i += 1
                    await asyncio.sleep(0.02)

            async def freeze() -> None:
                await asyncio.sleep(0.5)
                os.kill(proc.pid, signal.SIGSTOP)
                frozen.append(time.monotonic())
                await asyncio.sleep(2.0)
                os.kill(proc.pid, signal.SIGCONT)
                frozen.append(time.monotonic())

            await asyncio.gather(freeze(), *(worker(n) for n in range(6)))
        return outcomes

    outcomes = asyncio.run(scenario())
    assert all(o.status == 200 for o in outcomes), [(o.tag, o.status, o.error) for o in outcomes]
    during = [o for o in outcomes if frozen[0] + 0.05 < o.started < frozen[1] - 0.7]
    assert len(during) >= 6
    # Every request in the freeze gave up on Redis (a timeout, not a wait for SIGCONT) and was
    # served anyway. How long that made them (a timeout or two) is a latency bound that depends on
    # the machine's pace, so it is not asserted here.
    assert metric(gw, 'gateway_redis_errors_total{op="admit"}') >= len(during)
    assert metric(gw, 'gateway_admission_degraded_total{outcome="fail_open"}') >= len(during)
    audit(url, TEAM, cost_of(outcomes))
    assert upstream_calls(upstream) == Counter({o.tag: 1 for o in outcomes})
    assert answered(gw) == len(outcomes)


# -- 3. upstream faults ----------------------------------------------------------------------------------

UPSTREAM_FAULTS = {  # fault: (status the client gets, upstream tries of a whole answer, a stream's)
    "429": (429, 3, 3),
    "500": (500, 3, 3),
    # No answer within `first_byte_timeout_s` of the request's write: upstream goes on with a
    # whole answer and bills it, and with a stream until it notices its reader gone, so
    # neither is asked again (a second bill would be past the call's hold).
    "timeout": (504, 1, 1),
    # The edge's own 504 page while the model goes on (a whole answer billed in full, a
    # stream its prompt): no error of OpenAI's, so as a timeout.
    "edge-504": (504, 1, 1),
}


@pytest.mark.parametrize("fault", sorted(UPSTREAM_FAULTS))
def test_upstream_failures_are_retried_and_charged_only_what_upstream_may_bill(
    start_gateway: GatewayFactory,
    upstream: ServerThread,
    redis_server: str,
    fault: str,
) -> None:
    """Errors upstream answered are retried and never charged. A whole answer the gateway gave
    up waiting for is neither: it is charged its hold, never less than upstream then bills. A
    stream given up on so is not retried either, and is charged as a stream left before it
    began (its prompt, which upstream may have read, and `left_stream_margin_tokens`)."""
    gw = gateway_on(
        start_gateway, upstream, redis_server,
        retries=2, retry_backoff_s=0.01, retry_backoff_max_s=0.05, first_byte_timeout_s=0.3,
        breaker_failures=100,
    )  # fmt: skip
    status, whole_tries, stream_tries = UPSTREAM_FAULTS[fault]
    faulty = {"x-sim-fault": fault, "x-sim-retry-after": "0.1"}
    httpx.delete(f"{upstream.url}/_sim/bill")

    async def scenario() -> list[Outcome]:
        async with new_client() as client:
            return list(
                await asyncio.gather(
                    chat(client, gw.url, "bad-json", headers=faulty),
                    chat(client, gw.url, "bad-stream", stream=True, headers=faulty),
                    chat(client, gw.url, "good-json"),
                    chat(client, gw.url, "good-stream", stream=True),
                )
            )

    outcomes = asyncio.run(scenario())
    got = {o.tag: o.status for o in outcomes}
    assert got == {"bad-json": status, "bad-stream": status, "good-json": 200, "good-stream": 200}
    assert upstream_calls(upstream) == Counter(
        {"bad-json": whole_tries, "bad-stream": stream_tries, "good-json": 1, "good-stream": 1}
    )
    retries = whole_tries + stream_tries - 2
    assert metric(gw, 'gateway_upstream_retries_total{model="gpt-4o"}') == retries
    good = cost_of(outcomes)
    if whole_tries > 1:
        audit(redis_server, TEAM, good)  # only the good ones
        assert billed(upstream) == good
    else:
        margin = AdmissionConfig().left_stream_margin_tokens
        given_up = cost_micros(PRICE, Usage(PROMPT, margin))
        held = worst_case_micros(PRICE, PROMPT, MAX_OUTPUT)
        spend = audit(redis_server, TEAM, good + held + given_up)
        # Upstream answers the call it was left with, to nobody, and bills it.
        wait_for(lambda: billed(upstream) > good, 10, "the bill of the call left waiting")
        assert billed(upstream) < spend
    assert answered(gw) == 4


def test_upstream_reset_mid_answer_is_a_502_charged_its_hold(
    start_gateway: GatewayFactory, upstream: ServerThread, redis_server: str
) -> None:
    """`reset` on a non-streamed call: headers and half the body, then the connection drops.
    The answer was generated (and billed upstream) but its usage never came: its hold."""
    gw = gateway_on(start_gateway, upstream, redis_server, retries=2, retry_backoff_s=0.01)

    async def scenario() -> list[Outcome]:
        async with new_client() as client:
            return list(
                await asyncio.gather(
                    chat(client, gw.url, "reset", headers={"x-sim-fault": "reset"}),
                    chat(client, gw.url, "good"),
                )
            )

    bad, good = asyncio.run(scenario())
    assert good.status == 200
    assert bad.status == 502, (bad.status, bad.error)
    calls = upstream_calls(upstream)
    # Read whole before anything reaches the client, a cut answer may be retried.
    assert calls["good"] == 1 and 1 <= calls["reset"] <= 3
    assert metric(gw, 'gateway_upstream_retries_total{model="gpt-4o"}') == calls["reset"] - 1
    hold = worst_case_micros(PRICE, tokens.count_messages(HELLO), MAX_OUTPUT)
    audit(redis_server, TEAM, cost_of([good]) + hold)
    assert answered(gw) == 2


@pytest.mark.parametrize("fault", ["reset", "stream-error"])
def test_a_stream_broken_mid_way_is_charged_for_what_was_generated(
    start_gateway: GatewayFactory, upstream: ServerThread, redis_server: str, fault: str
) -> None:
    """Three chunks reach the client, then the upstream drops the connection or sends an error
    event. Nothing is retried (the client has its 200), the client sees an in-stream error, and
    the charge is the prompt plus the generated text, as the stream meter counts it; a stream
    cut (a reset) also `left_stream_margin_tokens`, what upstream may generate before it
    notices, as for a stream the gateway closed."""
    gw = gateway_on(start_gateway, upstream, redis_server, retries=2, retry_backoff_s=0.01)
    headers = {"x-sim-fault": fault, "x-sim-answer": LONG_ANSWER}

    async def scenario() -> list[Outcome]:
        async with new_client() as client:
            return list(
                await asyncio.gather(
                    chat(client, gw.url, "broken", stream=True, headers=headers),
                    chat(client, gw.url, "good", stream=True),
                )
            )

    broken, good = asyncio.run(scenario())
    assert good.status == 200 and good.done and good.usage is not None
    assert broken.status == 200 and not broken.done and broken.usage is None
    assert broken.error is not None, broken
    assert broken.text and len(broken.text) < len(LONG_ANSWER)
    margin = AdmissionConfig().left_stream_margin_tokens if fault == "reset" else 0
    generated = Usage(tokens.count_messages(HELLO), tokens.count_text(broken.text) + margin)
    audit(redis_server, TEAM, cost_of([good]) + cost_micros(PRICE, generated))
    assert upstream_calls(upstream) == Counter({"broken": 1, "good": 1})
    assert metric(gw, 'gateway_upstream_retries_total{model="gpt-4o"}') == 0
    assert answered(gw) == 2


# -- 4. clients that leave ---------------------------------------------------------------------------------


def simulator_busy(sim: ServerThread) -> int:
    """Requests the simulator is still working on (uvicorn's per-request tasks)."""
    return sum(1 for task in list(sim.server.server_state.tasks) if not task.done())


def test_a_client_leaving_mid_stream_stops_the_upstream_and_pays_what_was_generated(
    start_gateway: GatewayFactory, upstream: ServerThread, redis_server: str
) -> None:
    gw = gateway_on(start_gateway, upstream, redis_server)
    # 200 words at 50 ms a chunk: ~10 s if nobody stopped it.
    headers = {"x-sim-chunk-interval-ms": "50", "x-sim-answer": LONG_ANSWER}

    async def scenario() -> tuple[Outcome, Outcome]:
        async with new_client() as client:
            good = await chat(client, gw.url, "good", stream=True)
            left = await chat(client, gw.url, "left", stream=True, headers=headers, read_chunks=5)
            # Long before the answer's ~10 s: the upstream stream was cancelled, not run to its end.
            await asyncio.to_thread(
                wait_for, lambda: simulator_busy(upstream) == 0, 3, "the upstream call to stop"
            )
            return good, left

    good, left = asyncio.run(scenario())
    assert left.status == 200 and not left.done and left.text
    prompt = tokens.count_messages(HELLO)
    read = cost_micros(PRICE, Usage(prompt, tokens.count_text(left.text)))
    whole = cost_micros(PRICE, Usage(prompt, tokens.count_text(LONG_ANSWER)))
    # Charged for what was generated: at least what the client read, far less than the answer.
    spend = audit(redis_server, TEAM, (cost_of([good]) + read, cost_of([good]) + whole))
    assert spend - cost_of([good]) < whole / 2
    wait_for(lambda: metric(gw, "gateway_open_streams") == 0, 2, "no open stream")
    assert upstream_calls(upstream) == Counter({"good": 1, "left": 1})
    wait_for(lambda: answered(gw) == 2, 2, "both requests logged")


def test_a_client_leaving_a_waiting_call_is_charged_the_answer_upstream_billed(
    start_gateway: GatewayFactory, upstream: ServerThread, redis_server: str
) -> None:
    """README: upstream finishes and bills a whole answer whoever waits for it, so a caller that
    leaves a non-streamed call is charged that answer: the gateway reads it to the end."""
    gw = gateway_on(start_gateway, upstream, redis_server)
    messages = [{"role": "user", "content": "Think about this for a long while, then answer."}]

    async def scenario() -> tuple[Outcome, Outcome]:
        async with new_client() as client:
            good = await chat(client, gw.url, "good")
            task = asyncio.create_task(
                chat(
                    client, gw.url, "left", messages=messages, headers={"x-sim-latency-ms": "1500"}
                )
            )
            # By its log, not by busy tasks: the simulator may still be finishing "good".
            await asyncio.to_thread(
                wait_for, lambda: upstream_calls(upstream)["left"] == 1, 3, "the upstream call"
            )
            task.cancel()  # the client gives up: httpx drops the connection
            with pytest.raises(asyncio.CancelledError):
                await task
            # The same question answered in full: what the call that was left cost upstream.
            same = await chat(client, gw.url, "same", messages=messages)
            return good, same

    good, same = asyncio.run(scenario())
    audit(redis_server, TEAM, cost_of([good, same, same]))
    assert upstream_calls(upstream) == Counter({"good": 1, "left": 1, "same": 1})
    wait_for(lambda: answered(gw) == 3, 5, "every request logged")


# -- 4. Redis frozen after the upstream call went out --------------------------------------------

BILLED_WHILE_FROZEN = {
    # A stored chat completion: its owner is recorded before the answer leaves.
    "chat-store": ("/v1/chat/completions", {"model": "gpt-4o", "messages": HELLO, "store": True}),
    # Responses on o1-mini, served by translation: the gateway stores the response itself.
    "responses": ("/v1/responses", {"model": "o1-mini", "input": "Say hello."}),
    "responses-stream": ("/v1/responses", {"model": "o1-mini", "input": "Hi.", "stream": True}),
}


@pytest.mark.parametrize("ask", sorted(BILLED_WHILE_FROZEN))
def test_an_answer_upstream_billed_while_redis_froze_reaches_its_client(
    start_gateway: GatewayFactory,
    upstream: ServerThread,
    plain_redis: tuple[subprocess.Popen[bytes], str],
    ask: str,
) -> None:
    """Redis freezes while upstream works on an admitted call: the answer upstream billed still
    reaches the client (never a 500 its SDK would send again, billed again), and its charge
    lands once Redis is back. What the gateway could not record meanwhile (the stored
    response, the owner of a stored completion) is logged and lost."""
    proc, url = plain_redis
    gw = gateway_on(start_gateway, upstream, url)
    httpx.delete(f"{upstream.url}/_sim/bill")
    path, body = BILLED_WHILE_FROZEN[ask]
    headers = {"authorization": f"Bearer {CLIENT_KEY}", "x-sim-latency-ms": "1200"}
    with ThreadPoolExecutor(1) as pool:
        sent = pool.submit(httpx.post, f"{gw.url}{path}", json=body, headers=headers, timeout=30)
        time.sleep(0.5)  # admitted; upstream is working on it
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            answer = sent.result(timeout=25)
        finally:
            os.kill(proc.pid, signal.SIGCONT)
    assert answer.status_code == 200, answer.text
    if body.get("stream"):
        assert "event: response.completed" in answer.text
    audit(url, TEAM, billed(upstream))


def test_a_request_redis_must_answer_for_is_a_503_while_it_is_away(
    start_gateway: GatewayFactory,
    upstream: ServerThread,
    plain_redis: tuple[subprocess.Popen[bytes], str],
) -> None:
    """Continuing a stored response needs Redis (whose response it is, what context it
    brings): while Redis does not answer, the request is refused before anything goes
    upstream with the 503 an SDK retries, never a 500."""
    proc, url = plain_redis
    gw = gateway_on(start_gateway, upstream, url)
    headers = {"authorization": f"Bearer {CLIENT_KEY}"}
    first = httpx.post(
        f"{gw.url}/v1/responses", json={"model": "gpt-4o", "input": "Hi."}, headers=headers
    )
    assert first.status_code == 200, first.text
    body = {"model": "gpt-4o", "input": "And?", "previous_response_id": first.json()["id"]}
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        answer = httpx.post(f"{gw.url}/v1/responses", json=body, headers=headers, timeout=30)
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"]["code"] == "store_unavailable"
