"""The simulator's calendar and today's models, on a real socket with the official openai SDK:
models past their shutdown date are refused, today's line-up is served with its efforts."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from gateway.config import SimulatorConfig
from gateway.simulator import create_simulator
from gateway.simulator.catalog import MODELS
from tests.conftest import ServerThread

KEY = "sk-simulated-upstream"
HELLO: list[Any] = [{"role": "user", "content": "Say hello to the gateway."}]
TODAY = "2026-12-01"  # every GPT-6 model released, o1 shut down, gpt-4o still served
LATEST = {"x-sim-today": TODAY}
GPT6 = ("gpt-6-astra", "gpt-6-luna", "gpt-6.1-sol", "gpt-6.2-astra")
WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    with ServerThread(create_simulator(SimulatorConfig())) as running:
        yield running


def sdk(server: ServerThread, today: str | None = None) -> openai.OpenAI:
    headers = {"x-sim-today": today} if today else None
    return openai.OpenAI(
        base_url=f"{server.url}/v1", api_key=KEY, max_retries=0, default_headers=headers
    )


def not_found(model: str) -> dict[str, Any]:
    return {
        "message": f"The model `{model}` does not exist or you do not have access to it.",
        "type": "invalid_request_error",
        "param": None,
        "code": "model_not_found",
    }


def listed(server: ServerThread, today: str | None = None) -> dict[str, dict[str, Any]]:
    return {model.id: model.to_dict() for model in sdk(server, today).models.list()}


def test_a_model_is_served_until_its_shutdown_date(server: ServerThread) -> None:
    served = sdk(server, "2025-07-27").chat.completions.create(model="o1-preview", messages=HELLO)
    assert served.model == "o1-preview-2024-09-12" and served.choices[0].message.content
    for model in ("o1-preview", "o1-preview-2024-09-12"):
        with pytest.raises(openai.NotFoundError) as refused:
            sdk(server, "2025-07-28").chat.completions.create(model=model, messages=HELLO)
        assert refused.value.body == not_found(model)
    # The configured day (2024-10-01) still serves it.
    assert sdk(server).chat.completions.create(model="o1-mini", messages=HELLO).choices


def test_every_endpoint_naming_a_retired_model_refuses_it(server: ServerThread) -> None:
    after = sdk(server, "2027-02-26")
    with pytest.raises(openai.NotFoundError) as chat:
        after.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert chat.value.body == not_found("gpt-4o-mini")
    with pytest.raises(openai.NotFoundError):
        after.responses.create(model="gpt-4o", input="Hi")
    with pytest.raises(openai.NotFoundError):
        after.images.generate(model="dall-e-3", prompt="a gateway")
    with pytest.raises(openai.NotFoundError):
        after.completions.create(model="babbage-002", prompt="Once")
    with pytest.raises(openai.NotFoundError) as whisper:
        after.audio.transcriptions.create(model="whisper-1", file=("a.mp3", b"ID3" + b"\0" * 99))
    assert whisper.value.body == not_found("whisper-1")
    with pytest.raises(openai.NotFoundError):
        after.models.retrieve("gpt-4o")
    # Models without a shutdown date are served on any day.
    assert after.embeddings.create(model="text-embedding-3-small", input="hi").data
    assert after.chat.completions.create(model="gpt-6-luna", messages=HELLO).choices


def test_a_configured_day_applies_without_the_knob() -> None:
    with ServerThread(create_simulator(SimulatorConfig(today="2027-01-14"))) as server:
        with pytest.raises(openai.NotFoundError) as info:
            sdk(server).chat.completions.create(model="gpt-4o", messages=HELLO)
        assert info.value.body == not_found("gpt-4o")
        # The knob still moves a single request back in time.
        old = sdk(server, "2024-10-01").chat.completions.create(model="gpt-4o", messages=HELLO)
        assert old.model == "gpt-4o-2024-08-06"


def test_models_listed_by_date(server: ServerThread) -> None:
    launch = listed(server)
    assert list(launch) == [model for model in MODELS if model not in GPT6]
    assert all("shutdown_date" not in model for model in launch.values())
    early = listed(server, "2026-09-25")
    assert {"gpt-6-astra", "gpt-6-luna"} <= set(early)
    assert not {"gpt-6.1-sol", "gpt-6.2-astra", "o1-preview", "o1-mini", "dall-e-3"} & set(early)
    assert early["gpt-4o"]["shutdown_date"] == "2027-01-14"
    assert early["gpt-6-luna"]["shutdown_date"] is None
    late = listed(server, "2027-03-01")
    assert set(GPT6) <= set(late)
    assert not {"gpt-4o", "gpt-4o-mini-2024-07-18", "whisper-1", "gpt-image-1"} & set(late)
    with pytest.raises(openai.NotFoundError):
        sdk(server).models.retrieve("gpt-6-luna")  # not yet released in 2024
    assert sdk(server, TODAY).models.retrieve("gpt-6-luna").created == 1790096400


def test_a_malformed_day_is_a_400(server: ServerThread) -> None:
    for value in ("2026-13-01", "20261201", "today"):
        answer = httpx.get(
            f"{server.url}/v1/models",
            headers={"authorization": f"Bearer {KEY}", "x-sim-today": value},
        )
        assert answer.status_code == 400
        assert answer.json()["error"]["code"] == "invalid_sim_knob"


def test_chat_efforts_per_model(server: ServerThread) -> None:
    client = sdk(server, TODAY)
    accepted: Any = (("gpt-6-luna", "none"), ("gpt-6-astra", "low"), ("gpt-6.2-astra", "max"))
    for model, effort in accepted:
        answer = client.chat.completions.create(
            model=model,
            messages=HELLO,
            reasoning_effort=effort,
        )
        assert answer.model == model and answer.choices[0].message.content
    refused: Any = (("gpt-6.1-sol", "none"), ("gpt-6.2-astra", "minimal"))
    for model, effort in refused:
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(
                model=model,
                messages=HELLO,
                reasoning_effort=effort,
            )
        assert info.value.body == {
            "message": f"Unsupported value: 'reasoning_effort' does not support '{effort}' with "
            "this model. Supported values are: 'low', 'medium', 'high', 'xhigh', and 'max'.",
            "type": "invalid_request_error",
            "param": "reasoning_effort",
            "code": "unsupported_value",
        }
    extreme: Any = "extreme"
    with pytest.raises(openai.BadRequestError) as unknown:
        client.chat.completions.create(model="gpt-6-luna", messages=HELLO, reasoning_effort=extreme)
    assert unknown.value.code == "invalid_value"


def test_models_without_efforts_refuse_reasoning_effort(server: ServerThread) -> None:
    for model in ("gpt-4o", "o1-preview", "o1-mini"):
        with pytest.raises(openai.BadRequestError) as info:
            sdk(server).chat.completions.create(model=model, messages=HELLO, reasoning_effort="low")
        assert info.value.body == {
            "message": "Unsupported parameter: 'reasoning_effort' is not supported with this model.",
            "type": "invalid_request_error",
            "param": "reasoning_effort",
            "code": "unsupported_parameter",
        }


def test_responses_efforts_per_model(server: ServerThread) -> None:
    client = sdk(server, TODAY)
    high = client.responses.create(model="gpt-6-astra", input="Hi", reasoning={"effort": "high"})
    assert high.model == "gpt-6-astra" and high.output_text
    assert high.reasoning is not None and high.reasoning.effort == "high"
    default = client.responses.create(model="gpt-6.1-sol", input="Hi")
    assert default.reasoning is not None and default.reasoning.effort == "medium"
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model="gpt-6.2-astra", input="Hi", reasoning={"effort": "none"})
    assert info.value.body == {
        "message": "Unsupported value: 'reasoning.effort' does not support 'none' with this "
        "model. Supported values are: 'low', 'medium', 'high', 'xhigh', and 'max'.",
        "type": "invalid_request_error",
        "param": "reasoning.effort",
        "code": "unsupported_value",
    }
    with pytest.raises(openai.BadRequestError) as sampling:
        client.responses.create(model="gpt-6.1-sol", input="Hi", temperature=0.2)
    assert sampling.value.param == "temperature" and sampling.value.code == "unsupported_parameter"


def test_reasoning_tokens_grow_with_effort(server: ServerThread) -> None:
    client = sdk(server, TODAY)
    efforts: Any = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
    chat: list[int] = []
    for effort in efforts:
        answer = client.chat.completions.create(
            model="gpt-6-luna",
            messages=HELLO,
            reasoning_effort=effort,
        )
        assert answer.usage is not None and answer.usage.completion_tokens_details is not None
        chat.append(answer.usage.completion_tokens_details.reasoning_tokens or 0)
    assert chat[0] == 0 and chat == sorted(set(chat))
    responses: list[int] = []
    for effort in efforts:
        response = client.responses.create(
            model="gpt-6-luna",
            input=HELLO,
            reasoning={"effort": effort},
        )
        assert response.usage is not None
        responses.append(response.usage.output_tokens_details.reasoning_tokens)
    assert responses == chat  # the same conversation thinks alike on both APIs


def test_chat_tools_only_at_effort_none(server: ServerThread) -> None:
    client = sdk(server, TODAY)
    for model in ("gpt-6.1-sol", "gpt-6-astra"):
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(model=model, messages=HELLO, tools=[WEATHER_TOOL])
        assert info.value.body == {
            "message": f"Function tools with reasoning_effort are not supported for {model} in "
            "/v1/chat/completions. To use function tools, use /v1/responses or set "
            "reasoning_effort to 'none'.",
            "type": "invalid_request_error",
            "param": "reasoning_effort",
            "code": None,
        }
    # gpt-6-luna defaults to none: tools work until an effort is asked for.
    forced: Any = {"type": "function", "function": {"name": "get_weather"}}
    called = client.chat.completions.create(
        model="gpt-6-luna",
        messages=HELLO,
        tools=[WEATHER_TOOL],
        tool_choice=forced,
    )
    assert called.choices[0].message.tool_calls
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model="gpt-6-luna",
            messages=HELLO,
            tools=[WEATHER_TOOL],
            reasoning_effort="low",
        )
    # The Responses API takes tools at any effort.
    tool: Any = {
        "type": "function",
        "name": "get_weather",
        "parameters": WEATHER_TOOL["function"]["parameters"],
    }
    response = client.responses.create(
        model="gpt-6.1-sol",
        input="Weather?",
        tools=[tool],
        tool_choice="required",
    )
    assert response.output[0].type == "function_call"


def test_chat_capabilities_of_today(server: ServerThread) -> None:
    client = sdk(server, TODAY)
    with pytest.raises(openai.BadRequestError) as max_tokens:
        client.chat.completions.create(model="gpt-6-astra", messages=HELLO, max_tokens=50)
    assert max_tokens.value.body["message"] == (  # type: ignore[index]
        "Unsupported parameter: 'max_tokens' is not supported with this model. "
        "Use 'max_completion_tokens' instead."
    )
    with pytest.raises(openai.BadRequestError) as temperature:
        client.chat.completions.create(model="gpt-6.1-sol", messages=HELLO, temperature=0.2)
    assert temperature.value.code == "unsupported_value"
    assert client.chat.completions.create(model="gpt-6-luna", messages=HELLO, temperature=0.2)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model="gpt-6-luna", messages=HELLO, temperature=0.2, reasoning_effort="high"
        )
    messages: Any = [
        {"role": "developer", "content": "Answer in JSON."},
        {"role": "system", "content": "Be terse."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ],
        },
    ]
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    response_format: Any = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    structured = client.chat.completions.create(
        model="gpt-6.2-astra",
        messages=messages,
        response_format=response_format,
        max_completion_tokens=128_000,
    )
    assert structured.choices[0].message.content is not None
    assert "n" in structured.choices[0].message.content
    chunks = list(
        client.chat.completions.create(
            model="gpt-6-astra",
            messages=HELLO,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens_details is not None
    assert (usage.completion_tokens_details.reasoning_tokens or 0) > 0


def test_the_bill_charges_todays_prices_exactly(server: ServerThread) -> None:
    httpx.delete(f"{server.url}/_sim/bill")
    answer = sdk(server, TODAY).chat.completions.create(
        model="gpt-6.1-sol", messages=HELLO, reasoning_effort="high"
    )
    usage = answer.usage
    assert usage is not None and usage.completion_tokens_details is not None
    reasoning = usage.completion_tokens_details.reasoning_tokens or 0
    assert reasoning > 0
    # $2 in, $10 out per 1M tokens (nothing cached in a first call).
    expected = math.ceil(
        (usage.prompt_tokens * 2_000_000 + usage.completion_tokens * 10_000_000) / 1e6
    )
    lines = httpx.get(f"{server.url}/_sim/bill").json()["by_key"][KEY]["lines"]
    assert lines == [
        {
            "endpoint": "/v1/chat/completions",
            "model": "gpt-6.1-sol",
            "micros": expected,
            "detail": {
                "requests": 1,
                "input_tokens": usage.prompt_tokens,
                "output_tokens": usage.completion_tokens,
                "reasoning_tokens": reasoning,
            },
        }
    ]
