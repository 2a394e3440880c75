"""Emulated tools and structured output on o1, end to end with no scripted answers: the
simulated o1 reads the gateway's prompt protocol and answers in it, as a real model would."""

from __future__ import annotations

import json

import openai
from pydantic import BaseModel

from tests.conftest import CLIENT_KEY, ServerThread

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"enum": ["C", "F"]}},
            "required": ["city", "unit"],
        },
    },
}


class Forecast(BaseModel):
    city: str
    high_c: int
    sunny: bool


def sdk(server: ServerThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=CLIENT_KEY, max_retries=0)


def test_parse_with_a_pydantic_model_on_o1_preview(gateway: ServerThread) -> None:
    completion = sdk(gateway).chat.completions.parse(
        model="o1-preview",
        messages=[{"role": "user", "content": "Give me the forecast for Paris."}],
        response_format=Forecast,
    )
    assert completion.choices[0].message.parsed == Forecast(city="example", high_c=1, sunny=True)


def test_tool_call_then_tool_result_on_o1_mini(gateway: ServerThread) -> None:
    client = sdk(gateway)
    messages: list[dict[str, object]] = [
        {"role": "system", "content": "You are a weather assistant."},
        {"role": "user", "content": "Use the weather tool for Paris, please."},
    ]
    first = client.chat.completions.create(model="o1-mini", messages=messages, tools=[WEATHER])  # type: ignore[arg-type, list-item]
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "example", "unit": "C"}  # type: ignore[union-attr]

    messages.append(choice.message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "18 C and sunny"})
    second = client.chat.completions.create(model="o1-mini", messages=messages, tools=[WEATHER])  # type: ignore[arg-type, list-item]
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.tool_calls is None
    assert second.choices[0].message.content


def test_forced_tool_choice_on_o1_preview(gateway: ServerThread) -> None:
    completion = sdk(gateway).chat.completions.create(
        model="o1-preview",
        messages=[{"role": "user", "content": "Hello."}],
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    calls = completion.choices[0].message.tool_calls
    assert calls is not None and calls[0].function.name == "get_weather"  # type: ignore[union-attr]
