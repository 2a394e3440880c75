"""Pass-through paths (`passthrough.allow`, `charge: usage`) on a real redis-server: what a call
costs is unknown until it answers, so it holds what its entry says one may cost (`hold_usd`),
is refused when the team's budget cannot cover that, is settled to the usage it reports, and
is charged the hold when its answer is lost after upstream took it: a whole answer given up on,
a stream cut before its usage, a caller that left."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import orjson
import pytest
import redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from gateway.admission.pricing import cost_micros
from gateway.config import AllowedPath, Usd
from gateway.wire.usage import Usage
from tests.conftest import SIM_KEY, GatewayFactory, ServerThread, base_config
from tests.redis.admission.test_end_to_end import spend
from tests.redis.endpoints.teams import key_of, teams_yaml
from tests.redis.test_faults import wait_for

TEAM = "runner"
RUNS = "/v1/threads/thread_1/runs"
HOLD = 50_000  # micro-dollars: what the entry says one run may cost
RUN_USAGE = {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
EDGE_PAGE = b"<html><head><title>504 Gateway Time-out</title></head><body>cloudflare</body></html>"


class Runs:
    """An upstream of thread runs that answers with usage, or (`x-run: lost`) takes a minute,
    longer than the gateway waits, or (`x-run: queued`) answers at once with the run queued,
    its usage not yet known, as OpenAI creates one; streamed (`x-run: cut`), its connection
    drops after the run's first event, (`x-run: paced`) its events come slowly, the usage
    last, or (`x-run: paused`) it ends waiting for tool outputs, its usage untold; with
    `x-run: unknown` (whole) or `unknown-stream` it reports its usage for a model snapshot no
    config prices; with `x-run: edge` its front end answers its own HTML 504 page, having
    stopped waiting for the run (which goes on, and is billed). `calls` counts the runs asked
    for, `bodies` keeps them."""

    def __init__(self) -> None:
        self.calls = 0
        self.bodies: list[bytes] = []

    async def run(self, request: Request) -> Response:
        self.calls += 1
        self.bodies.append(await request.body())
        how = request.headers.get("x-run")
        if how == "lost":
            await asyncio.sleep(60)
        if how == "edge":
            return Response(EDGE_PAGE, status_code=504, media_type="text/html")
        model = "gpt-4o-2024-08-06"
        if how in ("unknown", "unknown-stream"):
            model = "gpt-4o-2027-01-01"  # a snapshot the gateway has no price for
        if how in ("cut", "paced", "paused", "unknown-stream"):
            return StreamingResponse(_run_events(model, how), media_type="text/event-stream")
        if how == "queued":
            queued = {"id": "run_1", "object": "thread.run", "status": "queued", "model": model}
            return JSONResponse({**queued, "usage": None})
        return JSONResponse(
            {"id": "run_1", "object": "thread.run", "model": model, "usage": RUN_USAGE}
        )


async def _run_events(model: str, how: str) -> AsyncIterator[bytes]:
    run = {"id": "run_1", "object": "thread.run", "model": model, "usage": None}
    yield b"event: thread.run.created\ndata: " + orjson.dumps(run) + b"\n\n"
    if how == "cut":
        raise RuntimeError("the connection drops")
    if how == "paused":
        paused = {**run, "status": "requires_action"}
        yield b"event: thread.run.requires_action\ndata: " + orjson.dumps(paused) + b"\n\n"
        yield b"event: done\ndata: [DONE]\n\n"
        return
    for _ in range(50 if how == "paced" else 0):
        await asyncio.sleep(0.1)
        yield b"event: thread.run.step.delta\ndata: {}\n\n"
    done = {**run, "usage": RUN_USAGE}
    yield b"event: thread.run.completed\ndata: " + orjson.dumps(done) + b"\n\n"


@pytest.fixture
def runs() -> Iterator[tuple[ServerThread, Runs]]:
    upstream = Runs()
    app = Starlette(routes=[Route("/v1/threads/{thread_id}/runs", upstream.run, methods=["POST"])])
    with ServerThread(app) as server:
        yield server, upstream


Serve = Callable[..., ServerThread]


@pytest.fixture
def serve(
    start_gateway: GatewayFactory,
    redis_server: str,
    tmp_path: Path,
    runs: tuple[ServerThread, Runs],
) -> Serve:
    """Start a gateway letting runs through to `runs` with `hold` micro-dollars held a run, for
    team `TEAM` (with a `budget`, if given)."""

    def start(hold: int = HOLD, budget: int | None = None) -> ServerThread:
        teams = tmp_path / "teams.yaml"
        team = {"tier": "tier-5"}
        if budget is not None:
            team["budget_usd"] = f"{budget / 1_000_000:.6f}"
        teams.write_text(teams_yaml({TEAM: team}))
        entry = AllowedPath("POST", "/v1/threads/{id}/runs", "usage", hold_usd=Usd(hold))
        return start_gateway(
            base_config(OPENAI_BASE_URL=f"{runs[0].url}/v1", OPENAI_API_KEY=SIM_KEY),
            upstream={"first_byte_timeout_s": 0.3, "forward_header_prefixes": ("x-run",)},
            redis={"url": redis_server},
            admission={"teams_file": str(teams)},
            passthrough={"allow": (entry,)},
        )

    return start


def run(gateway: ServerThread, how: str = "", stream: bool = False) -> httpx.Response:
    """A run (streamed, if `stream`); `how` is the upstream's `x-run`."""
    sent = {"authorization": f"Bearer {key_of(TEAM)}", "x-run": how}
    body = {"assistant_id": "asst_1", **({"stream": True} if stream else {})}
    return httpx.post(f"{gateway.url}{RUNS}", json=body, headers=sent)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("hold", [HOLD, 0], ids=["held", "no hold"])
def test_a_pass_through_call_lost_after_it_was_sent_is_charged_its_entrys_hold(
    serve: Serve, runs: tuple[ServerThread, Runs], store: redis.Redis, hold: int, stream: bool
) -> None:
    """Upstream took the run, the gateway stopped waiting: asked once, charged the hold,
    whether it was asked to stream or not (a run goes on upstream whoever reads it; with no
    hold configured, nothing: the limit of a path whose cost nobody declared)."""
    answer = run(serve(hold), "lost", stream)
    assert answer.status_code == 504 and answer.json()["error"]["code"] == "upstream_timeout"
    assert runs[1].calls == 1
    assert spend(store, TEAM) == (hold, 0)


def test_a_pass_through_call_its_front_end_answered_with_its_own_page_is_charged_its_hold(
    serve: Serve, runs: tuple[ServerThread, Runs], store: redis.Redis
) -> None:
    """A 504 without OpenAI's error object: the front end stopped waiting for the run, which
    may go on and be billed. Charged the hold, as a call lost after it was sent, and the
    client told not to repeat it; it had been charged nothing."""
    answer = run(serve(), "edge")
    assert answer.status_code == 504 and answer.json()["error"]["code"] == "upstream_error"
    assert answer.headers["x-should-retry"] == "false"
    assert runs[1].calls == 1
    assert spend(store, TEAM) == (HOLD, 0)


def test_a_pass_through_call_answered_is_charged_its_usage_not_its_hold(
    serve: Serve, store: redis.Redis
) -> None:
    assert run(serve()).status_code == 200
    price = base_config().models["gpt-4o"].price
    assert spend(store, TEAM) == (cost_micros(price, Usage(100, 20)), 0)


def test_a_team_whose_budget_cannot_cover_the_hold_is_refused_before_upstream(
    serve: Serve, runs: tuple[ServerThread, Runs], store: redis.Redis
) -> None:
    answer = run(serve(budget=HOLD // 2))
    assert answer.status_code == 429
    assert answer.json()["error"]["code"] == "request_over_budget"
    assert runs[1].calls == 0 and spend(store, TEAM) == (0, 0)


def test_a_json_body_goes_through_as_the_gateway_read_it(
    serve: Serve, runs: tuple[ServerThread, Runs]
) -> None:
    """Its ids were checked as the gateway read it: a key given twice reaches upstream once, as
    its last value; a body that says it is JSON and is not (NaN, which some parsers take) is
    refused, its strings unchecked."""
    gateway, upstream = serve(), runs[1]
    sent = {"authorization": f"Bearer {key_of(TEAM)}", "content-type": "application/json"}
    text = b'{"assistant_id":"asst_1","assistant_id":"asst_2"}'
    answer = httpx.post(f"{gateway.url}{RUNS}", content=text, headers=sent)
    assert answer.status_code == 200, answer.text
    assert upstream.bodies[-1] == b'{"assistant_id":"asst_2"}'
    bad = httpx.post(f"{gateway.url}{RUNS}", content=b'{"assistant_id":NaN}', headers=sent)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_json"
    assert upstream.calls == 1


@pytest.mark.parametrize("how", ["cut", "left", "left before the answer"])
def test_a_pass_through_call_that_never_says_what_it_cost_is_charged_its_entrys_hold(
    serve: Serve, runs: tuple[ServerThread, Runs], store: redis.Redis, how: str
) -> None:
    """Upstream took the run, then its stream broke before its usage, or the caller left (while
    it streamed, or before it answered): the run goes on upstream whoever reads it, and nothing
    says what it cost. Its hold, not what the events that went by amount to."""
    gateway = serve()
    sent = {"authorization": f"Bearer {key_of(TEAM)}", "x-run": "cut" if how == "cut" else ""}
    body = {"assistant_id": "asst_1", "stream": True}
    if how == "cut":
        answer = httpx.post(f"{gateway.url}{RUNS}", json=body, headers=sent)
        assert answer.status_code == 200 and "upstream_truncated" in answer.text
    elif how == "left":
        sent["x-run"] = "paced"
        with httpx.stream("POST", f"{gateway.url}{RUNS}", json=body, headers=sent) as answer:
            assert answer.status_code == 200
            next(answer.iter_lines())  # the run began; the caller leaves
    else:
        sent["x-run"] = "lost"
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{gateway.url}{RUNS}", json=body, headers=sent, timeout=0.15)
    wait_for(lambda: gateway.requests_in_flight() == 0, 5, "the gateway to end the call")
    wait_for(lambda: spend(store, TEAM)[1] == 0, 5, "the call to be settled")
    assert spend(store, TEAM) == (HOLD, 0)
    assert runs[1].calls == 1


@pytest.mark.parametrize("how", ["queued", "paused", "unknown", "unknown-stream"])
def test_a_pass_through_answer_that_says_nothing_of_its_cost_is_charged_its_entrys_hold(
    serve: Serve, runs: tuple[ServerThread, Runs], store: redis.Redis, how: str
) -> None:
    """A run created whole answers queued, and a streamed one may stop to wait for tool
    outputs: upstream runs (and bills) it, the answer's usage is null. Or its usage names a
    snapshot newer than the config, which the gateway has no price for. Its hold, not
    nothing."""
    gateway = serve()
    sent = {"authorization": f"Bearer {key_of(TEAM)}", "x-run": how}
    body = {"assistant_id": "asst_1", "stream": how in ("paused", "unknown-stream")}
    answer = httpx.post(f"{gateway.url}{RUNS}", json=body, headers=sent)
    assert answer.status_code == 200
    wait_for(lambda: spend(store, TEAM)[1] == 0, 5, "the call to be settled")
    assert spend(store, TEAM) == (HOLD, 0)
    assert runs[1].calls == 1
