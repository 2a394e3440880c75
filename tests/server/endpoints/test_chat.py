"""End to end: the official openai SDK -> gateway -> simulated upstream, all on real sockets."""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai
import pytest

from gateway.config import AllowedPath
from tests.conftest import (
    CLIENT_KEY,
    SIM_KEY,
    GatewayFactory,
    ServerThread,
    base_config,
    free_port,
    scrape,
)

HELLO = [{"role": "user", "content": "Say hello to the gateway."}]


@pytest.fixture
def gateway(start_gateway: GatewayFactory) -> ServerThread:
    return start_gateway(upstream={"forward_header_prefixes": ("x-sim-",)})


def sdk(server: ServerThread, key: str = CLIENT_KEY, **kw: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0, **kw)


def error_of(exc: openai.APIStatusError) -> dict[str, Any]:
    """The `error` object of an OpenAI-shaped error body, as the SDK parsed it."""
    assert isinstance(exc.body, dict), exc.body
    return exc.body


def sim_log(simulator: ServerThread) -> list[dict[str, Any]]:
    return list(httpx.get(f"{simulator.url}/_sim/requests").json()["data"])


def test_completion_round_trip_with_headers(gateway: ServerThread, simulator: ServerThread) -> None:
    client = sdk(gateway, default_headers={"OpenAI-Organization": "org-client"})
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=HELLO)  # type: ignore[arg-type]
    completion = raw.parse()
    assert completion.object == "chat.completion"
    assert completion.model == "gpt-4o-2024-08-06"  # the real upstream model, as OpenAI answers
    assert completion.choices[0].message.content
    assert completion.usage is not None
    assert (
        completion.usage.total_tokens
        == completion.usage.prompt_tokens + completion.usage.completion_tokens
    )
    assert raw.headers["x-request-id"].startswith("req_")
    assert raw.request_id == raw.headers["x-request-id"]
    assert raw.headers["openai-processing-ms"].isdigit()
    # x-ratelimit-* are the caller's own limits (team `test`, tier 5), not the upstream key's,
    # whose use by every team together no team sees; nor the organization the key is of.
    assert raw.headers["x-ratelimit-limit-requests"] == "10000"
    assert not [name for name in raw.headers if "upstream-ratelimit" in name]
    assert "openai-organization" not in raw.headers
    assert float(raw.headers["x-gateway-upstream-ms"]) >= 0

    sent = sim_log(simulator)[-1]
    assert sent["path"] == "/v1/chat/completions"
    assert (
        sent["headers"]["authorization"] == f"Bearer {SIM_KEY}"
    )  # the gateway's key, not the caller's
    assert "openai-organization" not in sent["headers"]
    assert sent["body"]["model"] == "gpt-4o-2024-08-06"
    assert sent["body"]["messages"] == HELLO


@pytest.mark.anyio
async def test_async_completion(gateway: ServerThread) -> None:
    client = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=CLIENT_KEY, max_retries=0)
    completion = await client.chat.completions.create(model="o1-mini", messages=HELLO)  # type: ignore[arg-type]
    assert completion.model == "o1-mini-2024-09-12"
    assert completion.usage is not None and completion.usage.completion_tokens_details is not None
    assert completion.usage.completion_tokens_details.reasoning_tokens > 0
    await client.close()


def test_stream_with_usage(gateway: ServerThread) -> None:
    client = sdk(gateway)
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=HELLO,
        stream=True,
        stream_options={"include_usage": True},  # type: ignore[arg-type]
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(text.split()) > 3
    assert len({c.id for c in chunks}) == 1
    finish = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finish == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0


def test_stream_is_relayed_chunk_by_chunk_not_buffered(
    gateway: ServerThread, simulator: ServerThread
) -> None:
    client = sdk(gateway)
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=HELLO,
        stream=True,  # type: ignore[arg-type]
        extra_headers={"x-sim-chunk-interval-ms": "150", "x-sim-answer": " ".join(["word"] * 20)},
    )
    upstream_busy = None  # when the first content arrives
    count = 0
    for chunk in stream:
        count += 1
        if upstream_busy is None and chunk.choices and chunk.choices[0].delta.content:
            upstream_busy = simulator.requests_in_flight() > 0
    assert count >= 20
    # ~20 chunks x 150 ms: a buffering proxy would deliver the first content only after the
    # upstream's last chunk, when the simulator is done with the request.
    assert upstream_busy


@pytest.mark.anyio
async def test_async_stream(gateway: ServerThread) -> None:
    client = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=CLIENT_KEY, max_retries=0)
    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True)  # type: ignore[arg-type]
    pieces = [c.choices[0].delta.content or "" async for c in stream if c.choices]
    assert "".join(pieces).strip()
    await client.close()


def test_client_disconnect_cancels_the_upstream_stream(gateway: ServerThread) -> None:
    client = sdk(gateway)
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=HELLO,
        stream=True,  # type: ignore[arg-type]
        extra_headers={"x-sim-chunk-interval-ms": "100", "x-sim-answer": " ".join(["w"] * 300)},
    )
    iterator = iter(stream)
    next(iterator)
    next(iterator)
    assert "gateway_open_streams 1.0" in scrape(gateway.url)
    stream.close()
    # The full answer would take 30 s; the relay must end (upstream closed) right after the abort.
    deadline = time.monotonic() + 5
    while "gateway_open_streams 0.0" not in scrape(gateway.url):
        assert time.monotonic() < deadline, "stream kept running after the client left"
        time.sleep(0.05)


def test_a_client_leaving_a_non_streaming_call_does_not_stop_it(gateway: ServerThread) -> None:
    # Upstream finishes and bills a whole answer whoever waits for it: the gateway reads it to
    # the end, so the team is charged what it cost (tests/redis/endpoints/test_governed.py).
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{gateway.url}/v1/chat/completions",
            json={"model": "o1-preview", "messages": HELLO},
            headers={"Authorization": f"Bearer {CLIENT_KEY}", "x-sim-latency-ms": "1500"},
            timeout=0.3,
        )
    deadline = time.monotonic() + 10
    line = (
        'gateway_requests_total{endpoint="chat",model="o1-preview",'
        'routed_model="o1-preview",status_class="2xx",team="test"} 1.0'
    )
    while line not in scrape(gateway.url):
        assert time.monotonic() < deadline, "the gateway stopped reading the answer"
        time.sleep(0.05)


def test_models_are_the_configured_ones(gateway: ServerThread) -> None:
    client = sdk(gateway)
    assert [m.id for m in client.models.list()] == [
        "gpt-4o",
        "gpt-4o-mini",
        "o1-preview",
        "o1-mini",
        "gpt-6-luna",
        "gpt-6.1-sol",
        "gpt-6.2-astra",
        "text-embedding-3-small",
        "text-embedding-3-large",
        "gpt-3.5-turbo-instruct",
        "omni-moderation-latest",
        "text-moderation-latest",
        "dall-e-2",
        "dall-e-3",
        "gpt-image-1",
        "tts-1",
        "tts-1-hd",
        "whisper-1",
        "gpt-4o-mini-tts",
        "gpt-4o-transcribe",
        "gpt-4o-mini-transcribe",
        # The routing aliases that reach them (test_models.py).
        "auto",
        "auto-cheap",
        "auto-best",
    ]
    o1_mini = client.models.retrieve("o1-mini")
    assert o1_mini.id == "o1-mini"
    # Each model that shuts down says when, and which model serves it from then.
    assert (o1_mini.shutdown, o1_mini.successor) == ("2025-10-27", "gpt-6.1-sol")  # type: ignore[attr-defined]
    assert "shutdown" not in client.models.retrieve("gpt-6-luna").model_dump()
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("gpt-5")
    assert info.value.code == "model_not_found"


def test_unknown_model_is_refused_before_upstream(gateway: ServerThread) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        sdk(gateway).chat.completions.create(model="gpt-9", messages=HELLO)  # type: ignore[arg-type]
    assert info.value.code == "model_not_found"
    assert "`gpt-9` does not exist" in info.value.message


def test_snapshot_names_are_accepted(gateway: ServerThread) -> None:
    completion = sdk(gateway).chat.completions.create(model="o1-preview-2024-09-12", messages=HELLO)  # type: ignore[arg-type]
    assert completion.model == "o1-preview-2024-09-12"


def test_governed_endpoints_and_everything_else_refused(
    gateway: ServerThread, simulator: ServerThread
) -> None:
    client = sdk(gateway)
    embedding = client.embeddings.create(model="text-embedding-3-small", input="hello")
    assert len(embedding.data[0].embedding) == 1536
    assert sim_log(simulator)[-1]["headers"]["authorization"] == f"Bearer {SIM_KEY}"
    moderation = client.moderations.create(input="hello")
    assert moderation.results
    before = len(sim_log(simulator))
    with pytest.raises(openai.NotFoundError) as info:  # refused here: never sent upstream
        client.post("/no-such-endpoint", cast_to=object, body={})
    assert error_of(info.value)["message"].startswith("Invalid URL (POST /v1/no-such-endpoint)")
    with pytest.raises(openai.NotFoundError):
        client.containers.list()
    assert len(sim_log(simulator)) == before


def test_an_operator_allowed_path_keeps_method_and_query(
    start_gateway: GatewayFactory, simulator: ServerThread
) -> None:
    allow = (AllowedPath(method="GET", path="/v1/evals", charge="free"),)
    gateway = start_gateway(passthrough={"allow": allow})
    httpx.get(
        f"{gateway.url}/v1/evals?after=eval_x&limit=2",
        headers={"Authorization": f"Bearer {CLIENT_KEY}"},
    )
    sent = sim_log(simulator)[-1]
    assert (sent["method"], sent["path"], sent["query"]) == (
        "GET",
        "/v1/evals",
        "after=eval_x&limit=2",
    )


def test_a_head_on_a_get_passthrough_entry_asks_upstream_the_get_it_allows(
    start_gateway: GatewayFactory, simulator: ServerThread
) -> None:
    """The operator opened GET: a HEAD (which Starlette serves on every GET route) had gone
    upstream as a HEAD, a method no entry can name. It is the GET, its body not sent back."""
    allow = (AllowedPath(method="GET", path="/v1/evals", charge="free"),)
    gateway = start_gateway(passthrough={"allow": allow})
    auth = {"Authorization": f"Bearer {CLIENT_KEY}"}
    answer = httpx.head(f"{gateway.url}/v1/evals?limit=2", headers=auth)
    sent = sim_log(simulator)[-1]
    assert (sent["method"], sent["path"]) == ("GET", "/v1/evals")
    assert (
        answer.status_code == httpx.get(f"{gateway.url}/v1/evals?limit=2", headers=auth).status_code
    )
    assert answer.content == b""
    seen = len(sim_log(simulator))
    refused = httpx.head(f"{gateway.url}/v1/fine_tuning/alpha/graders", headers=auth)
    assert refused.status_code == 404  # no entry: no method of it reaches upstream
    assert len(sim_log(simulator)) == seen


# -- errors the gateway produces -----------------------------------------------------------------


def test_malformed_json_is_400(gateway: ServerThread) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        sdk(gateway).post(
            "/chat/completions",
            cast_to=object,
            content=b'{"model": "gpt-4o", ',
            options={"headers": {"Content-Type": "application/json"}},
        )
    assert info.value.code == "invalid_json"
    assert info.value.type == "invalid_request_error"


def test_non_object_json_and_missing_model_are_400(gateway: ServerThread) -> None:
    with pytest.raises(openai.BadRequestError, match="expected an object"):
        sdk(gateway).post("/chat/completions", cast_to=object, body=[1, 2])  # type: ignore[arg-type]
    with pytest.raises(openai.BadRequestError) as info:
        sdk(gateway).post("/chat/completions", cast_to=object, body={"messages": HELLO})
    assert info.value.param == "model"


def test_wrong_content_type_is_415(gateway: ServerThread) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        sdk(gateway).chat.completions.create(
            model="gpt-4o",
            messages=HELLO,
            extra_headers={"Content-Type": "text/plain"},  # type: ignore[arg-type]
        )
    assert info.value.status_code == 415
    body: Any = info.value.body
    assert body["code"] == "unsupported_media_type"


def test_body_over_the_limit_is_413(start_gateway: GatewayFactory) -> None:
    small = start_gateway(server={"max_body_bytes": 2048})
    with pytest.raises(openai.APIStatusError) as info:
        sdk(small).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "x" * 4000}]
        )
    assert info.value.status_code == 413
    # chunked upload without Content-Length is cut off too
    resp = httpx.post(
        f"{small.url}/v1/chat/completions",
        content=iter([b"{" + b" " * 3000 + b"}"]),
        headers={"Authorization": f"Bearer {CLIENT_KEY}", "Content-Type": "application/json"},
    )
    assert resp.status_code == 413 and resp.json()["error"]["code"] == "request_too_large"


def test_unknown_path_is_404(gateway: ServerThread) -> None:
    client = openai.OpenAI(base_url=gateway.url, api_key=CLIENT_KEY, max_retries=0)
    with pytest.raises(openai.NotFoundError) as info:
        client.get("/v2/chat", cast_to=object)
    assert error_of(info.value)["message"] == "Invalid URL (GET /v2/chat)"
    resp = httpx.delete(f"{gateway.url}/healthz")
    assert resp.status_code == 405 and resp.json()["error"]["type"] == "invalid_request_error"


def test_upstream_unreachable_is_502(start_gateway: GatewayFactory) -> None:
    dead = base_config(OPENAI_BASE_URL=f"http://127.0.0.1:{free_port()}/v1", OPENAI_API_KEY=SIM_KEY)
    server = start_gateway(dead)
    with pytest.raises(openai.InternalServerError) as info:
        sdk(server).chat.completions.create(model="gpt-4o", messages=HELLO)  # type: ignore[arg-type]
    assert info.value.status_code == 502
    assert info.value.code == "upstream_unreachable"
    assert info.value.request_id is not None and info.value.request_id.startswith("req_")


def test_upstream_timeout_is_504(start_gateway: GatewayFactory) -> None:
    server = start_gateway(
        upstream={
            "first_byte_timeout_s": 0.5,
            "retries": 0,
            "forward_header_prefixes": ("x-sim-",),
        }
    )
    with pytest.raises(openai.InternalServerError) as info:
        sdk(server).chat.completions.create(
            model="gpt-4o",
            messages=HELLO,
            extra_headers={"x-sim-fault": "timeout"},  # type: ignore[arg-type]
        )
    assert info.value.status_code == 504
    assert info.value.code == "upstream_timeout"


def test_gateway_keys_are_enforced(gateway: ServerThread) -> None:
    assert sdk(gateway).chat.completions.create(model="gpt-4o", messages=HELLO)  # type: ignore[arg-type]
    with pytest.raises(openai.AuthenticationError) as info:
        sdk(gateway, key="sk-gw-wrong-key-000").chat.completions.create(
            model="gpt-4o", messages=HELLO
        )  # type: ignore[arg-type]
    assert info.value.code == "invalid_api_key"
    assert "sk-gw-wrong-key-000" not in str(info.value)
    with pytest.raises(openai.AuthenticationError):
        sdk(gateway, key="sk-gw-wrong").embeddings.create(model="text-embedding-3-small", input="x")
    resp = httpx.get(f"{gateway.url}/v1/models")
    assert resp.status_code == 401 and resp.json()["error"]["code"] == "missing_api_key"


# -- upstream errors pass through unchanged -----------------------------------------------------


def test_o1_rejections_pass_through_when_patching_is_off(start_gateway: GatewayFactory) -> None:
    server = start_gateway(compat={"enabled": False})
    with pytest.raises(openai.BadRequestError) as info:
        sdk(server).chat.completions.create(
            model="o1-preview",
            messages=[{"role": "system", "content": "Be brief."}, *HELLO],  # type: ignore[list-item]
        )
    assert error_of(info.value) == {
        "message": "Unsupported value: 'messages[0].role' does not support 'system' with this model.",
        "type": "invalid_request_error",
        "param": "messages[0].role",
        "code": "unsupported_value",
    }


def test_upstream_429_passes_through_with_retry_after(gateway: ServerThread) -> None:
    with pytest.raises(openai.RateLimitError) as info:
        sdk(gateway).chat.completions.create(
            model="gpt-4o",
            messages=HELLO,
            extra_headers={"x-sim-fault": "429", "x-sim-retry-after": "2"},  # type: ignore[arg-type]
        )
    assert info.value.code == "rate_limit_exceeded"
    assert info.value.response.headers["retry-after"] == "2"


def test_upstream_500_passes_through(gateway: ServerThread) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        sdk(gateway).chat.completions.create(
            model="gpt-4o", messages=HELLO, extra_headers={"x-sim-fault": "500"}
        )  # type: ignore[arg-type]
    assert info.value.status_code == 500


def test_the_upstream_keys_rate_limits_are_relayed_renamed_when_the_operator_says(
    start_gateway: GatewayFactory,
) -> None:
    server = start_gateway(upstream={"relay_ratelimit_headers": True})
    for stream in (False, True):
        with sdk(server).chat.completions.with_streaming_response.create(
            model="gpt-4o", messages=HELLO, stream=stream
        ) as raw:  # type: ignore[call-overload]
            assert int(raw.headers["x-upstream-ratelimit-limit-requests"]) > 0
            assert raw.headers["x-ratelimit-limit-requests"] == "10000"


def test_wrong_upstream_key_is_the_upstreams_401(
    start_gateway: GatewayFactory, simulator: ServerThread
) -> None:
    config = base_config(
        OPENAI_BASE_URL=f"{simulator.url}/v1", OPENAI_API_KEY="sk-wrong-upstream-key"
    )
    server = start_gateway(config)
    with pytest.raises(openai.AuthenticationError) as info:
        sdk(server).chat.completions.create(model="gpt-4o", messages=HELLO)  # type: ignore[arg-type]
    assert info.value.code == "invalid_api_key"
    assert "sk-wrong-upstream-key" not in info.value.message


def test_mid_stream_upstream_failure_becomes_an_in_stream_error(gateway: ServerThread) -> None:
    stream = sdk(gateway).chat.completions.create(
        model="gpt-4o",
        messages=HELLO,
        stream=True,
        extra_headers={"x-sim-fault": "reset"},  # type: ignore[arg-type]
    )
    with pytest.raises(openai.APIError) as info:
        for _ in stream:
            pass
    assert "upstream" in info.value.message.lower() or "connection" in info.value.message.lower()


# -- simulate mode, health, metrics ----------------------------------------------------------------


def test_simulate_mode_serves_in_process(start_gateway: GatewayFactory) -> None:
    config = base_config()  # no OPENAI_API_KEY
    assert config.simulate
    server = start_gateway(config)
    client = sdk(server)
    assert client.chat.completions.create(model="gpt-4o", messages=HELLO).choices[0].message.content  # type: ignore[arg-type]
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=HELLO, stream=True))  # type: ignore[arg-type]
    assert len(chunks) > 3
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(
            model="gpt-4o", messages=HELLO, extra_headers={"x-sim-fault": "429"}
        )  # type: ignore[arg-type]


def test_health_and_readiness(gateway: ServerThread) -> None:
    assert httpx.get(f"{gateway.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{gateway.url}/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"redis": True, "upstream": True}


def test_readiness_without_redis_follows_the_fail_open_setting(
    start_gateway: GatewayFactory,
) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    # Rate limits fail open (the default): the replica keeps serving, and says Redis is away.
    server = start_gateway(redis={"url": url, "timeout_s": 0.3})
    ready = httpx.get(f"{server.url}/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["redis"] is False
    # Fail closed: every request would be refused, so the replica is not ready.
    server = start_gateway(
        redis={"url": url, "timeout_s": 0.3}, admission={"rate_limits_on_redis_error": "closed"}
    )
    ready = httpx.get(f"{server.url}/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["redis"] is False
    assert httpx.get(f"{server.url}/healthz").status_code == 200


def test_metrics_count_requests(gateway: ServerThread) -> None:
    client = sdk(gateway)
    client.chat.completions.create(model="gpt-4o", messages=HELLO)  # type: ignore[arg-type]
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=HELLO)  # type: ignore[arg-type]
    text = scrape(gateway.url)
    assert (
        'gateway_requests_total{endpoint="chat",model="gpt-4o",'
        'routed_model="gpt-4o",status_class="2xx",team="test"} 1.0'
    ) in text
    # An unknown model name is not a label value: callers must not mint series.
    assert (
        'gateway_requests_total{endpoint="chat",model="",'
        'routed_model="",status_class="4xx",team="test"} 1.0'
    ) in text
    assert "gateway_overhead_seconds_bucket" in text


@pytest.mark.parametrize("path", ["/v1/organization/usage/completions", "/v1/dashboard/billing"])
def test_the_upstream_accounts_own_endpoints_are_not_passed_through(
    gateway: ServerThread, path: str
) -> None:
    answer = httpx.get(f"{gateway.url}{path}", headers={"Authorization": f"Bearer {CLIENT_KEY}"})
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "forbidden_path"


def test_chat_audio_is_refused_before_upstream(
    gateway: ServerThread, simulator: ServerThread
) -> None:
    """Audio tokens are billed at their own prices, which the chat path does not hold or
    charge: audio out (`modalities`, `audio`) or in (`input_audio`) never reaches upstream."""
    client = sdk(gateway)
    before = sim_log(simulator)
    with pytest.raises(openai.BadRequestError) as out:
        client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "Say hi."}],
            modalities=["text", "audio"], audio={"voice": "alloy", "format": "wav"},
        )  # fmt: skip
    assert (out.value.code, out.value.param) == ("unsupported_value", "modalities")
    said: Any = {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}
    with pytest.raises(openai.BadRequestError) as heard:
        client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": [said]}]
        )
    assert heard.value.param == "messages[0].content[0].type"
    assert sim_log(simulator) == before
