"""The simulator ASGI app in-process: endpoints, headers, keys, knobs, request log, cache."""

from __future__ import annotations

import base64
import itertools
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import orjson
import pytest

from gateway.config import SimulatorConfig
from gateway.simulator import SimulatedReset, Simulator, create_simulator
from gateway.wire import sse

KEY = "sk-simulated-upstream"
AUTH = {"authorization": f"Bearer {KEY}"}
HELLO = [{"role": "user", "content": "Say hello to the gateway."}]
CHAT = {"model": "gpt-4o", "messages": HELLO}
RATE_HEADERS = [
    "x-ratelimit-limit-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
]

pytestmark = pytest.mark.anyio


def client_for(app: Simulator) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim")


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(create_simulator(SimulatorConfig(), seed=1)) as c:
        yield c


def error_body(
    message: str,
    param: str | None = None,
    code: str | None = None,
    type_: str = "invalid_request_error",
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def sse_events(text: str) -> list[str]:
    assert text.endswith("\n\n")
    events = text[:-2].split("\n\n")
    assert all(event.startswith("data: ") for event in events)
    return [event[len("data: ") :] for event in events]


class Recorder:
    """Drive the ASGI callable directly to see every `send` and when it happened."""

    def __init__(self) -> None:
        self.messages: list[tuple[float, dict[str, Any]]] = []

    async def send(self, message: dict[str, Any]) -> None:
        self.messages.append((time.monotonic(), message))

    @property
    def bodies(self) -> list[bytes]:
        return [m["body"] for _, m in self.messages if m["type"] == "http.response.body"]

    @property
    def start(self) -> dict[str, Any]:
        return self.messages[0][1]


async def call(
    app: Simulator,
    body: dict[str, Any] | None,
    headers: dict[str, str] | None = None,
    path: str = "/v1/chat/completions",
    method: str = "POST",
    disconnect_after: float | None = None,
) -> Recorder:
    payload = orjson.dumps(body) if body is not None else b""
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": payload, "more_body": False}
        await anyio.sleep(disconnect_after if disconnect_after is not None else 3600)
        return {"type": "http.disconnect"}

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [(k.encode(), v.encode()) for k, v in {**AUTH, **(headers or {})}.items()],
    }
    recorder = Recorder()
    await app(scope, receive, recorder.send)
    return recorder


# -- chat completions --------------------------------------------------------------------------


async def test_completion_and_openai_headers(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/chat/completions", json=CHAT, headers=AUTH)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    assert re.fullmatch(r"req_[0-9a-f]{32}", resp.headers["x-request-id"])
    assert resp.headers["openai-processing-ms"].isdigit()
    assert resp.headers["openai-version"] == "2020-10-01"
    assert resp.headers["x-ratelimit-limit-requests"] == "10000"
    assert resp.headers["x-ratelimit-limit-tokens"] == "30000000"
    assert resp.headers["x-ratelimit-remaining-requests"] == "9999"
    body = resp.json()
    assert re.fullmatch(r"chatcmpl-[A-Za-z0-9]{29}", body["id"])
    assert body["model"] == "gpt-4o-2024-08-06"
    assert abs(body["created"] - time.time()) < 5
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    # estimated input plus no max tokens
    assert int(resp.headers["x-ratelimit-remaining-tokens"]) == 30_000_000 - usage["prompt_tokens"]


async def test_rate_headers_count_per_key() -> None:
    # Small limits replenish slowly (1 token/ms), so two back-to-back calls show their cost.
    app = create_simulator(SimulatorConfig(rpm_limit=60, tpm_limit=60_000))
    body = {**CHAT, "max_tokens": 1000}
    async with client_for(app) as c:
        first = await c.post("/v1/chat/completions", json=body, headers=AUTH)
        second = await c.post("/v1/chat/completions", json=body, headers=AUTH)
    assert first.headers["x-ratelimit-limit-requests"] == "60"
    assert first.headers["x-ratelimit-remaining-requests"] == "59"
    assert second.headers["x-ratelimit-remaining-requests"] == "58"
    cost = 1000 + first.json()["usage"]["prompt_tokens"]
    assert first.headers["x-ratelimit-remaining-tokens"] == str(60_000 - cost)
    assert 60_000 - 2 * cost <= int(second.headers["x-ratelimit-remaining-tokens"]) < 60_000 - cost
    # 2 of 60 requests per minute come back in about 2 s; about 2 * cost tokens in 2 s.
    assert re.fullmatch(r"1\.9\d*s|2s", second.headers["x-ratelimit-reset-requests"])
    assert re.fullmatch(r"\d(\.\d+)?s", second.headers["x-ratelimit-reset-tokens"])


@pytest.mark.parametrize(
    "model", ["gpt-4o", "gpt-4o-mini", "o1-preview", "o1-mini", "o1-mini-2024-09-12"]
)
async def test_every_model_answers_with_its_snapshot(client: httpx.AsyncClient, model: str) -> None:
    resp = await client.post("/v1/chat/completions", json={**CHAT, "model": model}, headers=AUTH)
    assert resp.status_code == 200
    assert (
        resp.json()["model"]
        == {
            "gpt-4o": "gpt-4o-2024-08-06",
            "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
            "o1-preview": "o1-preview-2024-09-12",
            "o1-mini": "o1-mini-2024-09-12",
            "o1-mini-2024-09-12": "o1-mini-2024-09-12",
        }[model]
    )


async def test_o1_refusal_has_exact_status_and_body(client: httpx.AsyncClient) -> None:
    body = {"model": "o1-preview", "messages": [{"role": "system", "content": "Be brief."}, *HELLO]}
    resp = await client.post("/v1/chat/completions", json=body, headers=AUTH)
    assert resp.status_code == 400
    assert resp.json() == error_body(
        "Unsupported value: 'messages[0].role' does not support 'system' with this model.",
        "messages[0].role",
        "unsupported_value",
    )
    assert all(name in resp.headers for name in RATE_HEADERS)
    tools = {
        "model": "o1-mini",
        "messages": HELLO,
        "tools": [{"type": "function", "function": {"name": "f"}}],
    }
    resp = await client.post("/v1/chat/completions", json=tools, headers=AUTH)
    assert resp.status_code == 404 and resp.json()["error"]["message"].startswith(
        "tools is not supported"
    )


async def test_unknown_model_is_404(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/chat/completions", json={**CHAT, "model": "gpt-5"}, headers=AUTH)
    assert resp.status_code == 404
    assert resp.json() == error_body(
        "The model `gpt-5` does not exist or you do not have access to it.", code="model_not_found"
    )


async def test_invalid_json_is_400(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/chat/completions", content=b'{"model": ', headers=AUTH)
    assert resp.status_code == 400
    assert resp.json()["error"]["message"].startswith(
        "We could not parse the JSON body of your request."
    )
    resp = await client.post("/v1/chat/completions", json=[1, 2], headers=AUTH)
    assert resp.status_code == 400


async def test_stream_sse_with_usage(client: httpx.AsyncClient) -> None:
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    resp = await client.post("/v1/chat/completions", json=body, headers=AUTH)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert "content-length" not in resp.headers
    events = sse_events(resp.text)
    assert events[-1] == "[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    assert len({(c["id"], c["created"], c["model"], c["system_fingerprint"]) for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0
    assert all(c["usage"] is None for c in chunks[:-1])


async def test_stream_without_usage_has_no_usage_key(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=AUTH)
    chunks = [orjson.loads(e) for e in sse_events(resp.text)[:-1]]
    assert all("usage" not in c for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


async def test_stream_is_sent_one_event_per_send() -> None:
    app = create_simulator(SimulatorConfig(), seed=2)
    rec = await call(app, {**CHAT, "stream": True}, {"x-sim-answer": "one two three four"})
    assert rec.start["status"] == 200
    # Each ASGI send carries exactly one complete SSE event.
    assert all(
        body.startswith(b"data: ") and body.endswith(b"\n\n") and body.count(b"\n\n") == 1
        for body in rec.bodies
    )
    contents = [orjson.loads(b[6:])["choices"][0]["delta"].get("content") for b in rec.bodies[:-1]]
    assert contents == ["", "one", " two", " three", " four", None]
    assert rec.bodies[-1] == b"data: [DONE]\n\n"
    assert [m.get("more_body") for _, m in rec.messages[1:]] == [True] * 6 + [False]


async def test_o1_stream_refused_unless_november_knob(client: httpx.AsyncClient) -> None:
    body = {"model": "o1-mini", "messages": HELLO, "stream": True}
    resp = await client.post("/v1/chat/completions", json=body, headers=AUTH)
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "stream"
    resp = await client.post(
        "/v1/chat/completions", json=body, headers={**AUTH, "x-sim-o1-streaming": "true"}
    )
    assert resp.status_code == 200 and sse_events(resp.text)[-1] == "[DONE]"


async def test_tool_call_stream_through_the_app(client: httpx.AsyncClient) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "lookup",
            "parameters": {
                "type": "object",
                "properties": {"q": {"type": "string"}},
                "required": ["q"],
            },
        },
    }
    body = {**CHAT, "stream": True, "tools": [tool], "tool_choice": "required"}
    resp = await client.post("/v1/chat/completions", json=body, headers=AUTH)
    chunks = [orjson.loads(e) for e in sse_events(resp.text)[:-1]]
    assert chunks[0]["choices"][0]["delta"]["tool_calls"][0]["function"] == {
        "name": "lookup",
        "arguments": "",
    }
    args = "".join(
        c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] for c in chunks[1:-1]
    )
    assert orjson.loads(args) == {"q": "example"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


# -- keys and routes ---------------------------------------------------------------------------


async def test_missing_key_is_401(client: httpx.AsyncClient) -> None:
    for headers in ({}, {"authorization": "Basic abc"}, {"authorization": "Bearer "}):
        resp = await client.post("/v1/chat/completions", json=CHAT, headers=headers)
        assert resp.status_code == 401
        assert resp.json() == error_body(
            "You didn't provide an API key. You need to provide your API key in an Authorization "
            "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password "
            "field (with blank username) if you're accessing the API from your browser and are "
            "prompted for a username. You can obtain an API key from "
            "https://platform.openai.com/account/api-keys."
        )
        assert resp.headers["x-request-id"].startswith("req_")


async def test_wrong_key_is_401_masked(client: httpx.AsyncClient) -> None:
    resp = await client.get("/v1/models", headers={"authorization": "Bearer sk-abcdef0123456789yz"})
    assert resp.status_code == 401
    assert resp.json() == error_body(
        "Incorrect API key provided: sk-ab***yz. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        code="invalid_api_key",
    )


async def test_keys_come_from_config() -> None:
    async with client_for(create_simulator(SimulatorConfig(api_keys=("sk-one-key-abc",)))) as c:
        assert (
            await c.get("/v1/models", headers={"authorization": "Bearer sk-one-key-abc"})
        ).status_code == 200
        assert (await c.get("/v1/models", headers=AUTH)).status_code == 401


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/foo"),
        ("PUT", "/v1/chat/completions"),
        ("GET", "/v1/completions"),
        ("DELETE", "/v1/models"),
        ("GET", "/v2/x"),
        ("GET", "/_sim/requests"),
    ],
)
async def test_unknown_urls_are_404(client: httpx.AsyncClient, method: str, path: str) -> None:
    resp = await client.request(method, path, headers=AUTH)
    assert resp.status_code == 404
    assert resp.json() == error_body(f"Invalid URL ({method} {path})")


async def test_models_endpoints(client: httpx.AsyncClient) -> None:
    listing = (await client.get("/v1/models", headers=AUTH)).json()
    assert listing["object"] == "list"
    ids = [m["id"] for m in listing["data"]]
    assert {
        "gpt-4o",
        "gpt-4o-2024-08-06",
        "o1-preview-2024-09-12",
        "o1-mini",
        "text-embedding-3-small",
    } <= set(ids)
    one = (await client.get("/v1/models/o1-mini", headers=AUTH)).json()
    assert one == {"id": "o1-mini", "object": "model", "created": 1725649008, "owned_by": "system"}
    missing = await client.get("/v1/models/gpt-5", headers=AUTH)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"


async def test_embeddings_and_moderations(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/v1/embeddings", json={"model": "text-embedding-3-small", "input": "hello"}, headers=AUTH
    )
    assert resp.status_code == 200
    data = resp.json()
    assert len(data["data"][0]["embedding"]) == 1536 and data["usage"]["prompt_tokens"] == 1
    resp = await client.post("/v1/moderations", json={"input": "hello"}, headers=AUTH)
    assert resp.status_code == 200 and re.fullmatch(r"modr-\w{29}", resp.json()["id"])
    bad = await client.post("/v1/embeddings", json={"model": "nope", "input": "x"}, headers=AUTH)
    assert bad.status_code == 404


# -- knobs -------------------------------------------------------------------------------------


async def test_fault_429_has_retry_after(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/v1/chat/completions", json=CHAT, headers={**AUTH, "x-sim-fault": "429"}
    )
    assert resp.status_code == 429
    assert resp.headers["retry-after"] == "1" and resp.headers["retry-after-ms"] == "1000"
    assert resp.json() == error_body(
        "Rate limit reached for gpt-4o in organization org-simulatedOrganization001 on requests per min (RPM): "
        "Limit 10000, Used 10000, Requested 1. Please try again in 1s. Visit "
        "https://platform.openai.com/account/rate-limits to learn more.",
        code="rate_limit_exceeded",
        type_="requests",
    )
    resp = await client.post(
        "/v1/chat/completions",
        json=CHAT,
        headers={**AUTH, "x-sim-fault": "429-tokens", "x-sim-retry-after": "0.644"},
    )
    assert resp.headers["retry-after"] == "1" and resp.headers["retry-after-ms"] == "644"
    error = resp.json()["error"]
    assert error["type"] == "tokens" and "tokens per min (TPM)" in error["message"]
    assert "Please try again in 644ms." in error["message"]


async def test_fault_quota_500_503(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/v1/chat/completions", json=CHAT, headers={**AUTH, "x-sim-fault": "quota"}
    )
    assert resp.status_code == 429 and "retry-after" not in resp.headers
    assert resp.json()["error"]["code"] == resp.json()["error"]["type"] == "insufficient_quota"
    resp = await client.post(
        "/v1/chat/completions", json=CHAT, headers={**AUTH, "x-sim-fault": "500"}
    )
    assert resp.status_code == 500
    assert resp.json() == error_body(
        "The server had an error while processing your request. Sorry about that!",
        type_="server_error",
    )
    resp = await client.post("/v1/embeddings", json={}, headers={**AUTH, "x-sim-fault": "503"})
    assert resp.status_code == 503 and resp.json()["error"]["type"] == "server_error"


async def test_fault_502_is_cloudflare_html(client: httpx.AsyncClient) -> None:
    resp = await client.get("/v1/models", headers={**AUTH, "x-sim-fault": "502"})
    assert resp.status_code == 502
    assert resp.headers["content-type"] == "text/html"
    assert "<title>502 Bad Gateway</title>" in resp.text and "cloudflare" in resp.text


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_fault_edge_504_bills_what_the_model_answered_behind_cloudflares_page(
    stream: bool,
) -> None:
    """The model answers a caller gone (the edge stopped waiting): a whole answer is billed in
    full, a stream its prompt (nothing generated); the client gets the edge's HTML 504."""
    body = {**CHAT, "stream": stream}
    app = create_simulator(SimulatorConfig())
    await call(app, body)
    answered = app.bill.view()["total_micros"]
    rec = await call(app, body, {"x-sim-fault": "edge-504"})
    assert rec.start["status"] == 504
    assert (b"content-type", b"text/html") in rec.start["headers"]
    assert b"<title>504 Gateway Time-out</title>" in b"".join(rec.bodies)
    billed = app.bill.view()["total_micros"] - answered
    if stream:
        assert 0 < billed < answered
    else:
        assert billed == answered


async def test_fault_reset_non_stream_drops_mid_body() -> None:
    app = create_simulator(SimulatorConfig())
    with pytest.raises(SimulatedReset):
        await call(app, CHAT, {"x-sim-fault": "reset"})
    recorder = Recorder()
    with pytest.raises(SimulatedReset):
        await app(
            {
                "type": "http",
                "method": "POST",
                "path": "/v1/chat/completions",
                "headers": [
                    (b"authorization", AUTH["authorization"].encode()),
                    (b"x-sim-fault", b"reset"),
                ],
            },
            _body_then_wait(orjson.dumps(CHAT)),
            recorder.send,
        )
    length = int(dict(recorder.start["headers"])[b"content-length"])
    assert recorder.start["status"] == 200 and 0 < len(recorder.bodies[0]) < length


async def test_fault_reset_stream_sends_chunks_then_raises() -> None:
    app = create_simulator(SimulatorConfig())
    recorder = Recorder()
    with pytest.raises(SimulatedReset):
        await app(
            {
                "type": "http",
                "method": "POST",
                "path": "/v1/chat/completions",
                "headers": [
                    (b"authorization", AUTH["authorization"].encode()),
                    (b"x-sim-fault", b"reset"),
                ],
            },
            _body_then_wait(orjson.dumps({**CHAT, "stream": True})),
            recorder.send,
        )
    assert recorder.start["status"] == 200
    assert len(recorder.bodies) == 3 and all(b.startswith(b"data: {") for b in recorder.bodies)


async def test_fault_stream_error_ends_with_error_event() -> None:
    app = create_simulator(SimulatorConfig())
    rec = await call(app, {**CHAT, "stream": True}, {"x-sim-fault": "stream-error"})
    assert len(rec.bodies) == 4
    assert orjson.loads(rec.bodies[-1][6:])["error"]["type"] == "server_error"
    assert b"[DONE]" not in b"".join(rec.bodies)


async def test_fault_timeout_sleeps_until_the_client_leaves() -> None:
    app = create_simulator(SimulatorConfig())
    with pytest.raises(TimeoutError):
        with anyio.fail_after(0.3):
            await call(app, CHAT, {"x-sim-fault": "timeout"})
    # The fault sleeps an hour: that the call returns at all shows it ended when the client left.
    # A stream stops there, unbilled, as OpenAI stops one whose reader left.
    with anyio.fail_after(10):
        rec = await call(
            app, {**CHAT, "stream": True}, {"x-sim-fault": "timeout"}, disconnect_after=0.05
        )
    assert rec.messages == []
    assert app.bill.view()["total_micros"] == 0


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", CHAT),
        ("/v1/responses", {"model": "gpt-4o", "input": "Hello", "store": False}),
        ("/v1/embeddings", {"model": "text-embedding-3-small", "input": "Hello"}),
    ],
)
async def test_a_whole_answer_whose_client_left_is_finished_and_billed(
    path: str, body: dict[str, Any]
) -> None:
    """OpenAI finishes a non-streamed answer whoever waits for it, and bills it: the client
    leaving during the wait (a long latency, the timeout fault) ends the wait at once and the
    answer goes to nobody, billed as if it had been read."""
    app = create_simulator(SimulatorConfig())
    read = await call(app, body, path=path)
    billed = app.bill.view()["total_micros"]
    assert read.start["status"] == 200 and billed > 0
    for knobs in ({"x-sim-latency-ms": "3600000"}, {"x-sim-fault": "timeout"}):
        with anyio.fail_after(10):
            await call(app, body, knobs, path=path, disconnect_after=0.05)
    assert app.bill.view()["total_micros"] == 3 * billed


async def test_latency_knob_and_config(client: httpx.AsyncClient) -> None:
    started = time.monotonic()
    resp = await client.post(
        "/v1/chat/completions", json=CHAT, headers={**AUTH, "x-sim-latency-ms": "120"}
    )
    assert time.monotonic() - started >= 0.12 and int(resp.headers["openai-processing-ms"]) >= 120
    async with client_for(create_simulator(SimulatorConfig(latency_ms=100))) as slow:
        started = time.monotonic()
        assert (await slow.get("/v1/models", headers=AUTH)).status_code == 200
        assert time.monotonic() - started >= 0.1


async def test_ttft_and_chunk_interval() -> None:
    app = create_simulator(SimulatorConfig(ttft_ms=100, chunk_interval_ms=30))
    started = time.monotonic()
    rec = await call(app, {**CHAT, "stream": True}, {"x-sim-answer": "a b c d"})
    times = [t for t, m in rec.messages if m["type"] == "http.response.body"]
    assert rec.messages[0][0] - started >= 0.1
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(gaps) == 6 and all(gap >= 0.025 for gap in gaps[:-1])
    # The knobs replace the config: at 0 they skip an hour-long configured wait altogether.
    slow = create_simulator(SimulatorConfig(ttft_ms=3_600_000, chunk_interval_ms=3_600_000))
    with anyio.fail_after(10):
        rec = await call(
            slow, {**CHAT, "stream": True}, {"x-sim-ttft-ms": "0", "x-sim-chunk-interval-ms": "0"}
        )
    assert rec.bodies[-1] == b"data: [DONE]\n\n"


async def test_answer_and_reasoning_knobs(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/v1/chat/completions", json=CHAT, headers={**AUTH, "x-sim-answer": "Exactly this."}
    )
    assert resp.json()["choices"][0]["message"]["content"] == "Exactly this."
    text = 'Line one\n<tool_call>{"name": "f"}</tool_call>\nÜber'
    encoded = base64.b64encode(text.encode()).decode()
    resp = await client.post(
        "/v1/chat/completions", json=CHAT, headers={**AUTH, "x-sim-answer-b64": encoded}
    )
    assert resp.json()["choices"][0]["message"]["content"] == text
    resp = await client.post(
        "/v1/chat/completions",
        json={"model": "o1-preview", "messages": HELLO},
        headers={**AUTH, "x-sim-reasoning-tokens": "2048"},
    )
    usage = resp.json()["usage"]
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 2048
    assert usage["completion_tokens"] > 2048


async def test_the_service_tier_knob_says_another_tier_served(client: httpx.AsyncClient) -> None:
    priority = {**CHAT, "service_tier": "priority"}
    resp = await client.post("/v1/chat/completions", json=CHAT, headers=AUTH)
    assert "service_tier" not in resp.json()  # none asked for: not told
    resp = await client.post("/v1/chat/completions", json=priority, headers=AUTH)
    assert resp.json()["service_tier"] == "priority"
    downgraded = {**AUTH, "x-sim-service-tier": "default"}
    resp = await client.post("/v1/chat/completions", json=priority, headers=downgraded)
    assert resp.json()["service_tier"] == "default"
    fast = {"x-sim-ttft-ms": "0", "x-sim-chunk-interval-ms": "0"}
    resp = await client.post(
        "/v1/chat/completions", json={**priority, "stream": True}, headers={**downgraded, **fast}
    )
    chunks = [orjson.loads(e) for e in sse.Decoder().feed(resp.content) if e != b"[DONE]"]
    assert {c["service_tier"] for c in chunks} == {"default"}
    given = {"model": "gpt-4o", "input": "Hi.", "service_tier": "priority"}
    resp = await client.post("/v1/responses", json=given, headers=AUTH)
    assert resp.json()["service_tier"] == "priority"
    resp = await client.post("/v1/responses", json=given, headers=downgraded)
    assert resp.json()["service_tier"] == "default"
    resp = await client.post("/v1/responses", json={**given, "service_tier": "auto"}, headers=AUTH)
    assert resp.json()["service_tier"] == "default"


async def test_utf8_answer_header_survives() -> None:
    app = create_simulator(SimulatorConfig())
    recorder = Recorder()
    await app(
        {
            "type": "http",
            "method": "POST",
            "path": "/v1/chat/completions",
            "headers": [
                (b"authorization", AUTH["authorization"].encode()),
                (b"x-sim-answer", "Grüße".encode()),
            ],
        },
        _body_then_wait(orjson.dumps(CHAT)),
        recorder.send,
    )
    assert orjson.loads(recorder.bodies[0])["choices"][0]["message"]["content"] == "Grüße"


async def test_bad_knob_is_400(client: httpx.AsyncClient) -> None:
    for name, value in [
        ("x-sim-fault", "explode"),
        ("x-sim-latency-ms", "-5"),
        ("x-sim-reasoning-tokens", "many"),
        ("x-sim-service-tier", "auto"),
    ]:
        resp = await client.post("/v1/chat/completions", json=CHAT, headers={**AUTH, name: value})
        assert resp.status_code == 400
        assert (
            resp.json()["error"]["code"] == "invalid_sim_knob"
            and name in resp.json()["error"]["message"]
        )


async def test_knobs_are_ignored_when_disabled() -> None:
    async with client_for(create_simulator(SimulatorConfig(header_knobs=False))) as c:
        resp = await c.post(
            "/v1/chat/completions",
            json=CHAT,
            headers={**AUTH, "x-sim-fault": "500", "x-sim-answer": "no"},
        )
        assert resp.status_code == 200 and resp.json()["choices"][0]["message"]["content"] != "no"


# -- request log, cache, lifespan ---------------------------------------------------------------


async def test_request_log_is_bounded_and_clearable() -> None:
    async with client_for(create_simulator(SimulatorConfig(request_log=3))) as c:
        for i in range(5):
            await c.post(
                "/v1/chat/completions",
                json={**CHAT, "user": f"u{i}"},
                headers={**AUTH, "X-Custom": "v"},
            )
        await c.get("/v1/nowhere?x=1", headers=AUTH)
        log = (await c.get("/_sim/requests")).json()["data"]
        assert len(log) == 3
        assert [entry["body"] and entry["body"]["user"] for entry in log[:2]] == ["u3", "u4"]
        last = log[-1]
        assert (last["method"], last["path"], last["body"]) == ("GET", "/v1/nowhere", None)
        assert last["headers"]["authorization"] == f"Bearer {KEY}"
        assert log[0]["headers"]["x-custom"] == "v"
        assert abs(last["time"] - time.time()) < 5
        assert (await c.delete("/_sim/requests")).json() == {"deleted": 3}
        assert (await c.get("/_sim/requests")).json() == {"data": []}


async def test_cached_tokens_for_a_repeated_long_prompt(client: httpx.AsyncClient) -> None:
    long_prompt = {
        "model": "gpt-4o",
        "messages": [{"role": "system", "content": "Rules. " * 1400}, *HELLO],
    }
    first = (await client.post("/v1/chat/completions", json=long_prompt, headers=AUTH)).json()[
        "usage"
    ]
    assert first["prompt_tokens"] >= 1024 and first["prompt_tokens_details"]["cached_tokens"] == 0
    follow_up = {
        **long_prompt,
        "messages": [
            *long_prompt["messages"],
            {"role": "assistant", "content": "Hi"},
            {"role": "user", "content": "More?"},
        ],
    }
    second = (await client.post("/v1/chat/completions", json=follow_up, headers=AUTH)).json()[
        "usage"
    ]
    cached = second["prompt_tokens_details"]["cached_tokens"]
    assert cached >= 1024 and cached % 128 == 0
    # The whole first prompt (less its 3 reply-priming tokens) rounded down to a step of 128.
    assert cached == (first["prompt_tokens"] - 3) // 128 * 128
    assert first["prompt_tokens"] < second["prompt_tokens"]
    # Another simulator instance has its own cache.
    async with client_for(create_simulator(SimulatorConfig())) as other:
        fresh = (await other.post("/v1/chat/completions", json=follow_up, headers=AUTH)).json()[
            "usage"
        ]
        assert fresh["prompt_tokens_details"]["cached_tokens"] == 0


async def test_lifespan() -> None:
    app = create_simulator(SimulatorConfig())
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: Any) -> None:
        sent.append(message)

    await app({"type": "lifespan"}, receive, send)
    assert sent == [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}]


def _body_then_wait(payload: bytes) -> Any:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": payload, "more_body": False}
        await anyio.sleep(3600)
        return {"type": "http.disconnect"}

    return receive


# -- the Responses API (the SDK-level tests are in tests/server/simulator/test_responses.py) ----

RESPONSES = {"model": "gpt-4o", "input": "Hello there.", "stream": True}


async def test_responses_stream_stops_when_the_client_leaves() -> None:
    app = create_simulator(SimulatorConfig(chunk_interval_ms=20))
    with anyio.fail_after(10):
        rec = await call(app, RESPONSES, path="/v1/responses", disconnect_after=0.1)
    frames = rec.bodies
    assert 2 <= len(frames) < 10
    assert frames[0].startswith(b"event: response.created\n")
    assert not any(b"response.completed" in frame for frame in frames)


async def test_responses_stream_error_is_an_error_event_then_response_failed() -> None:
    app = create_simulator(SimulatorConfig())
    rec = await call(app, RESPONSES, {"x-sim-fault": "stream-error"}, path="/v1/responses")
    assert len(rec.bodies) == 4
    lines = rec.bodies[-1].splitlines()
    error, failed = (orjson.loads(line[6:]) for line in lines if line.startswith(b"data: "))
    assert error["type"] == "error" and error["sequence_number"] == 3
    assert error["error"]["type"] == "server_error"
    assert failed["type"] == "response.failed" and failed["sequence_number"] == 4


async def test_responses_unknown_routes(client: httpx.AsyncClient) -> None:
    for method, path in [("GET", "/v1/responses"), ("PUT", "/v1/responses/resp_1"),
                         ("GET", "/v1/responses/resp_1/cancel")]:  # fmt: skip
        resp = await client.request(method, path, headers=AUTH)
        assert resp.status_code == 404
        assert resp.json()["error"]["message"] == f"Invalid URL ({method} {path})"


async def test_a_stored_completions_metadata_update_past_openais_limits_is_refused(
    client: httpx.AsyncClient,
) -> None:
    made = await client.post("/v1/chat/completions", json={**CHAT, "store": True}, headers=AUTH)
    path = f"/v1/chat/completions/{made.json()['id']}"
    refused = await client.post(path, json={"metadata": {"k": "v" * 513}}, headers=AUTH)
    assert (refused.status_code, refused.json()["error"]["param"]) == (400, "metadata.k")
    updated = await client.post(path, json={"metadata": {"k": "v" * 512}}, headers=AUTH)
    assert updated.status_code == 200 and updated.json()["metadata"] == {"k": "v" * 512}
