"""The simulator on a real socket (uvicorn), driven by the official openai SDK."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from gateway.config import SimulatorConfig
from gateway.simulator import create_simulator
from tests.conftest import ServerThread

KEY = "sk-simulated-upstream"
HELLO: list[Any] = [{"role": "user", "content": "Say hello to the gateway."}]


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    with ServerThread(create_simulator(SimulatorConfig(request_log=50))) as running:
        yield running


def sdk(server: ServerThread, **kw: Any) -> openai.OpenAI:
    kw.setdefault("max_retries", 0)
    return openai.OpenAI(base_url=f"http://127.0.0.1:{server.port}/v1", api_key=KEY, **kw)


def log(server: ServerThread) -> list[dict[str, Any]]:
    return list(httpx.get(f"{server.url}/_sim/requests").json()["data"])


def test_completion(server: ServerThread) -> None:
    raw = sdk(server).chat.completions.with_raw_response.create(model="gpt-4o", messages=HELLO)
    completion = raw.parse()
    assert completion.model == "gpt-4o-2024-08-06"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content
    assert completion.usage is not None
    assert (
        completion.usage.total_tokens
        == completion.usage.prompt_tokens + completion.usage.completion_tokens
    )
    assert raw.request_id is not None and raw.request_id.startswith("req_")
    assert raw.headers["x-ratelimit-reset-requests"].endswith("s")


def test_stream_with_usage(server: ServerThread) -> None:
    stream = sdk(server).chat.completions.create(
        model="gpt-4o-mini",
        messages=HELLO,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"x-sim-answer": "Hello, gateway. Nice to meet you."},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello, gateway. Nice to meet you."
    assert len({c.id for c in chunks}) == 1
    final = chunks[-1]
    assert final.choices == [] and final.usage is not None
    assert final.usage.completion_tokens == 9
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


def test_o1_preview_system_message_is_bad_request(server: ServerThread) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        sdk(server).chat.completions.create(
            model="o1-preview",
            messages=[{"role": "system", "content": "Be brief."}, *HELLO],
        )
    message = "Unsupported value: 'messages[0].role' does not support 'system' with this model."
    # The SDK prefixes its exception text with the status; the body carries OpenAI's message.
    assert info.value.message == f"Error code: 400 - {message}"
    assert info.value.body == {
        "message": message,
        "type": "invalid_request_error",
        "param": "messages[0].role",
        "code": "unsupported_value",
    }
    assert info.value.request_id is not None


def test_o1_usage_reports_reasoning(server: ServerThread) -> None:
    completion = sdk(server).chat.completions.create(
        model="o1-mini", messages=HELLO, max_completion_tokens=20
    )
    assert completion.choices[0].message.content == ""
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.completion_tokens_details is not None
    assert (
        completion.usage.completion_tokens_details.reasoning_tokens
        == 20
        == completion.usage.completion_tokens
    )


def test_sdk_retries_a_429_using_retry_after_ms(server: ServerThread) -> None:
    httpx.delete(f"{server.url}/_sim/requests")
    with pytest.raises(openai.RateLimitError) as info:
        sdk(server, max_retries=2).chat.completions.create(
            model="gpt-4o",
            messages=HELLO,
            extra_headers={"x-sim-fault": "429", "x-sim-retry-after": "0.05"},
        )
    assert info.value.code == "rate_limit_exceeded"
    assert info.value.response.headers["retry-after-ms"] == "50"
    assert len(log(server)) == 3  # the first try and two retries


def test_embeddings_default_base64_decode(server: ServerThread) -> None:
    response = sdk(server).embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert [len(d.embedding) for d in response.data] == [1536, 1536]
    assert response.usage.prompt_tokens == 2
    assert log(server)[-1]["body"]["encoding_format"] == "base64"


def test_reset_is_a_connection_error(server: ServerThread) -> None:
    with pytest.raises(openai.APIConnectionError):
        sdk(server).chat.completions.create(
            model="gpt-4o", messages=HELLO, extra_headers={"x-sim-fault": "reset"}
        )
    stream = sdk(server).chat.completions.create(
        model="gpt-4o", messages=HELLO, stream=True, extra_headers={"x-sim-fault": "reset"}
    )
    with pytest.raises((openai.APIError, httpx.HTTPError)):
        list(stream)


def test_timeout_fault_hits_the_client_timeout(server: ServerThread) -> None:
    with pytest.raises(openai.APITimeoutError):
        sdk(server, timeout=0.5).chat.completions.create(
            model="gpt-4o", messages=HELLO, extra_headers={"x-sim-fault": "timeout"}
        )


def test_wrong_key_is_authentication_error(server: ServerThread) -> None:
    client = openai.OpenAI(
        base_url=f"{server.url}/v1", api_key="sk-wrong-key-0000yz", max_retries=0
    )
    with pytest.raises(openai.AuthenticationError) as info:
        client.models.list()
    assert info.value.code == "invalid_api_key"
    assert info.value.message == (
        "Error code: 401 - Incorrect API key provided: sk-wr***yz. You can find your API key at "
        "https://platform.openai.com/account/api-keys."
    )
