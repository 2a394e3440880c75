"""Tools and structured output on o1 models, emulated by prompting, end to end through the SDK.

The simulated o1 answers with the text of the `x-sim-answer-b64` knob, standing in for a model
that followed (or did not follow) the gateway's answer-format instructions.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import openai
import pytest
from pydantic import BaseModel

from tests.conftest import CLIENT_KEY, SIM_KEY, GatewayFactory, ServerThread

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
ASK = [{"role": "user", "content": "What's the weather in Paris?"}]
CALL = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'


@pytest.fixture
def gateway(start_gateway: GatewayFactory) -> ServerThread:
    return start_gateway(upstream={"forward_header_prefixes": ("x-sim-",)})


def sdk(server: ServerThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=CLIENT_KEY, max_retries=0)


def answer(text: str) -> dict[str, str]:
    return {"x-sim-answer-b64": base64.b64encode(text.encode()).decode()}


def upstream_bodies(simulator: ServerThread, n: int) -> list[dict[str, Any]]:
    data = httpx.get(f"{simulator.url}/_sim/requests").json()["data"]
    return [entry["body"] for entry in data[-n:]]


def test_tool_call_is_parsed_into_real_tool_calls(
    gateway: ServerThread, simulator: ServerThread
) -> None:
    raw = sdk(gateway).chat.completions.with_raw_response.create(
        model="o1-preview", messages=ASK, tools=[WEATHER], extra_headers=answer(CALL),  # type: ignore[arg-type, list-item]
    )  # fmt: skip
    completion = raw.parse()
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.id.startswith("call_") and call.type == "function"
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]
    assert "tools" in raw.headers["x-gateway-patched"].split(",")
    (sent,) = upstream_bodies(simulator, 1)
    assert "tools" not in sent and "tool_choice" not in sent
    assert [m["role"] for m in sent["messages"]] == ["user"]
    assert "get_weather" in sent["messages"][0]["content"]


def test_streamed_tool_calls_arrive_as_tool_call_deltas(gateway: ServerThread) -> None:
    chunks = list(
        sdk(gateway).chat.completions.create(
            model="o1-mini", messages=ASK, tools=[WEATHER], stream=True,  # type: ignore[arg-type, list-item]
            extra_headers=answer(CALL),
        )
    )  # fmt: skip
    deltas = [
        c.choices[0].delta.tool_calls for c in chunks if c.choices and c.choices[0].delta.tool_calls
    ]
    assert deltas
    first = deltas[0][0]
    assert (
        first.id is not None and first.function is not None and first.function.name == "get_weather"
    )
    arguments = "".join(d[0].function.arguments or "" for d in deltas if d[0].function)
    assert json.loads(arguments) == {"city": "Paris"}
    finish = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finish == ["tool_calls"]


def test_streamed_legacy_function_call_arrives_as_function_call_deltas(
    gateway: ServerThread,
) -> None:
    # A client still on `functions` streams: the call was dropped from the stream, which
    # ended with `finish_reason: "function_call"` and no function_call delta at all.
    chunks = list(
        sdk(gateway).chat.completions.create(
            model="o1-mini", messages=ASK, functions=[WEATHER["function"]], stream=True,  # type: ignore[arg-type, list-item]
            extra_headers=answer(CALL),
        )
    )  # fmt: skip
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    calls = [d.function_call for d in deltas if d.function_call is not None]
    assert calls and calls[0].name == "get_weather"
    assert [d.role for d in deltas if d.role] == ["assistant"]
    assert deltas[0].content is None and deltas[0].function_call is not None
    assert all(c.name is None for c in calls[1:])
    assert json.loads("".join(c.arguments or "" for c in calls)) == {"city": "Paris"}
    assert not any(d.tool_calls or d.content for d in deltas)
    finish = [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason]
    assert finish == ["function_call"]


def test_tool_results_in_the_history_become_readable_text(
    gateway: ServerThread, simulator: ServerThread
) -> None:
    history = [
        *ASK,
        {"role": "assistant", "content": None, "tool_calls": [{
            "id": "call_abc", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        }]},
        {"role": "tool", "tool_call_id": "call_abc", "content": "18 C and sunny"},
    ]  # fmt: skip
    completion = sdk(gateway).chat.completions.create(
        model="o1-preview", messages=history, tools=[WEATHER],  # type: ignore[arg-type, list-item]
        extra_headers=answer("It is 18 C and sunny in Paris."),
    )  # fmt: skip
    assert completion.choices[0].message.content == "It is 18 C and sunny in Paris."
    assert completion.choices[0].finish_reason == "stop"
    (sent,) = upstream_bodies(simulator, 1)
    assert {m["role"] for m in sent["messages"]} <= {"user", "assistant"}
    assert "18 C and sunny" in json.dumps(sent["messages"])


def test_invalid_output_gets_one_repair_attempt_then_a_clear_error(
    gateway: ServerThread, simulator: ServerThread
) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        sdk(gateway).chat.completions.create(
            model="o1-mini", messages=ASK, tools=[WEATHER], tool_choice="required",  # type: ignore[arg-type, list-item]
            extra_headers=answer("I would rather chat about the weather."),
        )  # fmt: skip
    assert info.value.status_code == 502
    assert info.value.code == "invalid_model_output"
    assert info.value.response.headers["x-should-retry"] == "false"
    first, repair = upstream_bodies(simulator, 2)
    assert len(repair["messages"]) > len(first["messages"])  # the repair asked again


def test_a_function_without_parameters_is_called_with_an_empty_object(
    gateway: ServerThread,
) -> None:
    # No `x-sim-answer`: the simulated model follows the instructions itself, as a real one
    # would, and answers `{}` for a function that takes nothing.
    for tool in ({"name": "ping"}, {"name": "ping", "parameters": {}}):
        completion = sdk(gateway).chat.completions.create(
            model="o1-preview", messages=ASK, tools=[{"type": "function", "function": tool}],  # type: ignore[arg-type, list-item]
            tool_choice={"type": "function", "function": {"name": "ping"}},
        )  # fmt: skip
        (call,) = completion.choices[0].message.tool_calls or []
        assert (call.function.name, call.function.arguments) == ("ping", "{}")  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("fields", "param", "code"),
    [
        # A legacy function with no name: the model was once asked to call a nameless tool,
        # failed twice and the client got a 502 for its own mistake.
        ({"functions": [{}]}, "functions[0].name", "missing_required_parameter"),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}],
             "tool_choice": "required"},
            "tools[0].function.parameters",
            "invalid_function_parameters",
        ),
        # A structured answer whose schema is no object: the emulation asks for an object, so
        # no answer could ever match and the client got a 502.
        (
            {"response_format": {"type": "json_schema",
                                 "json_schema": {"name": "n", "schema": {"type": "array"}}}},
            "response_format",
            None,
        ),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"schema": {}}}},
            "response_format.json_schema.name",
            "missing_required_parameter",
        ),
    ],
)  # fmt: skip
def test_a_tool_no_model_could_call_is_the_clients_400(
    gateway: ServerThread, fields: dict[str, Any], param: str, code: str
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        sdk(gateway).chat.completions.create(
            model="o1-preview", messages=ASK, extra_body=fields,  # type: ignore[arg-type]
        )  # fmt: skip
    assert (info.value.param, info.value.code) == (param, code)


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
         "tool_choice"),
        ({"tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
         "tool_choice"),
        ({"functions": [WEATHER["function"]], "function_call": {"name": "nope"}},
         "function_call"),
    ],
)  # fmt: skip
def test_a_named_tool_choice_no_tool_answers_is_the_clients_400(
    gateway: ServerThread, simulator: ServerThread, fields: dict[str, Any], param: str
) -> None:
    # The model was asked to call a function the client never declared: it could not, the
    # repair could not either, and the client got a 502 blaming the model, both calls charged.
    httpx.delete(f"{simulator.url}/_sim/requests")
    with pytest.raises(openai.BadRequestError) as info:
        sdk(gateway).chat.completions.create(
            model="o1-mini", messages=ASK, extra_body=fields, extra_headers=answer(CALL),  # type: ignore[arg-type]
        )  # fmt: skip
    assert (info.value.param, info.value.code) == (param, None)
    assert isinstance(info.value.body, dict)
    assert str(info.value.body["message"]).startswith(f"Invalid value for '{param}': ")
    with pytest.raises(openai.BadRequestError) as info:
        sdk(gateway).responses.create(
            model="o1-mini", input="Weather?", tool_choice={"type": "function", "name": "nope"},
            tools=[{"type": "function", "name": "get_weather", "parameters": None, "strict": False}],
        )  # fmt: skip
    assert info.value.param == "tool_choice"
    assert upstream_bodies(simulator, 10) == []


class Answer(BaseModel):
    city: str
    temperature_c: int


def test_structured_output_parses_with_the_sdk_helper(gateway: ServerThread) -> None:
    completion = sdk(gateway).chat.completions.parse(
        model="o1-mini", messages=ASK, response_format=Answer,  # type: ignore[arg-type]
        extra_headers=answer('```json\n{"city": "Paris", "temperature_c": 18}\n```'),
    )  # fmt: skip
    parsed = completion.choices[0].message.parsed
    assert parsed == Answer(city="Paris", temperature_c=18)


def test_json_that_breaks_the_schema_is_refused_after_a_repair(gateway: ServerThread) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        sdk(gateway).chat.completions.parse(
            model="o1-mini", messages=ASK, response_format=Answer,  # type: ignore[arg-type]
            extra_headers=answer('{"city": "Paris", "temperature_c": "warm"}'),
        )  # fmt: skip
    assert info.value.status_code == 502 and "temperature_c" in info.value.message


def test_streamed_structured_output_parses_with_the_sdk_helper(gateway: ServerThread) -> None:
    with sdk(gateway).chat.completions.stream(
        model="o1-mini", messages=ASK, response_format=Answer,  # type: ignore[arg-type]
        extra_headers=answer('{"city": "Paris", "temperature_c": 18}'),
    ) as stream:  # fmt: skip
        final = stream.get_final_completion()
    assert final.choices[0].message.parsed == Answer(city="Paris", temperature_c=18)


def test_structured_output_cut_by_the_token_cap_is_a_length_finish_not_a_502(
    gateway: ServerThread, simulator: ServerThread
) -> None:
    # o1 spends a small cap on reasoning and answers empty content, finish_reason "length":
    # that was taken for a broken format, repaired (when the hold had room) and answered
    # 502 invalid_model_output, where OpenAI answers 200 and the SDK raises its own error.
    httpx.delete(f"{simulator.url}/_sim/requests")
    with pytest.raises(openai.LengthFinishReasonError):
        sdk(gateway).chat.completions.parse(
            model="o1-mini", messages=ASK, response_format=Answer, max_completion_tokens=20,  # type: ignore[arg-type]
        )  # fmt: skip
    raw = sdk(gateway).chat.completions.with_raw_response.create(
        model="o1-mini", messages=ASK, tools=[WEATHER], tool_choice="required",  # type: ignore[arg-type, list-item]
        max_completion_tokens=20,
    )  # fmt: skip
    choice = raw.parse().choices[0]
    assert (choice.finish_reason, choice.message.content, choice.message.tool_calls) == (
        "length", "", None,
    )  # fmt: skip
    assert len(upstream_bodies(simulator, 10)) == 2  # no repair: a cut answer is not fixed so
    response = sdk(gateway).responses.create(
        model="o1-mini", input="Name a city.", max_output_tokens=20,
        text={"format": {"type": "json_schema", "name": "answer",
                         "schema": Answer.model_json_schema()}},
    )  # fmt: skip
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"


@pytest.mark.anyio
async def test_async_tool_calls(gateway: ServerThread) -> None:
    client = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=CLIENT_KEY, max_retries=0)
    completion = await client.chat.completions.create(
        model="o1-preview", messages=ASK, tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "get_weather"}},  # type: ignore[arg-type, list-item]
        extra_headers=answer(CALL),
    )  # fmt: skip
    await client.close()
    calls = completion.choices[0].message.tool_calls
    assert calls is not None and calls[0].function.name == "get_weather"  # type: ignore[union-attr]


def test_stream_options_without_stream_is_refused_with_tools_as_without(
    gateway: ServerThread, simulator: ServerThread
) -> None:
    headers = {"Authorization": f"Bearer {CLIENT_KEY}"}
    asked = {"model": "o1-mini", "messages": ASK, "stream_options": {"include_usage": True}}
    # The log whole: it keeps the last 200, so a full one's length stands still whatever comes.
    calls = httpx.get(f"{simulator.url}/_sim/requests").json()["data"]
    plain = httpx.post(f"{gateway.url}/v1/chat/completions", json=asked, headers=headers)
    emulated = httpx.post(
        f"{gateway.url}/v1/chat/completions", json={**asked, "tools": [WEATHER]}, headers=headers
    )
    assert plain.status_code == emulated.status_code == 400
    assert emulated.json()["error"] == plain.json()["error"]
    assert emulated.json()["error"]["param"] == "stream_options"
    # Refused before upstream: no call, with tools or without.
    assert httpx.get(f"{simulator.url}/_sim/requests").json()["data"] == calls


@pytest.mark.parametrize(
    ("param", "value"), [("tool_choice", "auto"), ("parallel_tool_calls", True)]
)
def test_tool_choice_or_parallel_calls_without_tools_is_refused_on_o1_as_gpt_4o_refuses_it(
    gateway: ServerThread, simulator: ServerThread, param: str, value: Any
) -> None:
    headers = {"Authorization": f"Bearer {CLIENT_KEY}"}
    asked = {"messages": ASK, param: value}
    native = httpx.post(
        f"{simulator.url}/v1/chat/completions",
        json={**asked, "model": "gpt-4o"},
        headers={"Authorization": f"Bearer {SIM_KEY}"},
    )
    # The log whole: it keeps the last 200, so a full one's length stands still whatever comes.
    calls = httpx.get(f"{simulator.url}/_sim/requests").json()["data"]
    patched = httpx.post(
        f"{gateway.url}/v1/chat/completions", json={**asked, "model": "o1-mini"}, headers=headers
    )
    assert native.status_code == patched.status_code == 400
    assert patched.json()["error"] == native.json()["error"]
    assert patched.json()["error"]["param"] == param
    # Refused before upstream, which would not have seen what the patches dropped.
    assert httpx.get(f"{simulator.url}/_sim/requests").json()["data"] == calls
