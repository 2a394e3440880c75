"""The simulated model answers the gateway's prompted tool/JSON protocol (`emulated`).

The prompts come from the gateway's own rewriter and the answers go through its own parser, so
the two sides are held to one protocol without the simulator importing the gateway.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from gateway.compat.emulation import Parsed, parse_answer
from gateway.compat.patches import rewrite_chat
from gateway.config import Capabilities
from gateway.simulator.answers import compose
from gateway.simulator.emulated import protocol_answer, read_protocol
from gateway.simulator.rules import resolve_chat_model

O1 = Capabilities(**{f.name: False for f in dataclasses.fields(Capabilities) if f.type == "bool"})
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
            "required": ["city", "days"],
            "additionalProperties": False,
        },
    },
}
CLOCK = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
}
ANSWER_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "forecast": {"type": "array", "items": {"$ref": "#/$defs/Day"}},
    },
    "required": ["city", "forecast"],
    "$defs": {
        "Day": {
            "type": "object",
            "properties": {
                "date": {"type": "string", "format": "date"},
                "high": {"type": "number"},
            },
            "required": ["date", "high"],
        }
    },
}
JSON_SCHEMA_FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": "Answer", "schema": ANSWER_SCHEMA, "strict": True},
}


def simulated(request: dict[str, Any]) -> tuple[str, Any]:
    """What the simulated model answers to the gateway's rewrite of `request`, parsed back."""
    rewritten = rewrite_chat(request, O1, min_completion_tokens=0)
    assert rewritten.emulated is not None
    chat_model = resolve_chat_model(request["model"])
    assert chat_model is not None
    answer = compose(
        rewritten.payload, chat_model, prompt_tokens=100, content_seed=7, id_seed=1,
        reasoning_tokens=0,
    )  # fmt: skip
    content = answer.choices[0].content or ""
    return content, parse_answer(content, rewritten.emulated, ["call_1", "call_2"])


def ask(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "o1-preview", "messages": [{"role": "user", "content": text}], **extra}


def test_a_prompt_asking_for_a_tool_gets_a_valid_call() -> None:
    content, parsed = simulated(ask("Use the tool to check Paris.", tools=[WEATHER, CLOCK]))
    assert content.startswith("<tool_call>") and content.endswith("</tool_call>")
    assert isinstance(parsed, Parsed) and parsed.tool_calls is not None
    call = parsed.tool_calls[0]["function"]
    assert call["name"] == "get_weather"
    assert json.loads(call["arguments"]) == {"city": "example", "days": 1}


def test_a_named_tool_and_a_forced_tool_are_called() -> None:
    _, parsed = simulated(ask("What time is it? get_time knows.", tools=[WEATHER, CLOCK]))
    assert isinstance(parsed, Parsed) and parsed.tool_calls is not None
    assert parsed.tool_calls[0]["function"]["name"] == "get_time"
    forced = {"type": "function", "function": {"name": "get_time"}}
    _, parsed = simulated(ask("Hello.", tools=[WEATHER, CLOCK], tool_choice=forced))
    assert isinstance(parsed, Parsed) and parsed.tool_calls is not None
    assert parsed.tool_calls[0]["function"]["name"] == "get_time"
    _, parsed = simulated(ask("Hello.", tools=[WEATHER, CLOCK], tool_choice="required"))
    assert isinstance(parsed, Parsed) and parsed.finish_reason == "tool_calls"


@pytest.mark.parametrize("parameters", [None, {}])
def test_a_function_that_takes_nothing_is_called_with_an_empty_object(parameters: Any) -> None:
    function: dict[str, Any] = {"name": "ping"}
    if parameters is not None:
        function["parameters"] = parameters
    forced = {"type": "function", "function": {"name": "ping"}}
    tools = [{"type": "function", "function": function}]
    _, parsed = simulated(ask("Hello.", tools=tools, tool_choice=forced))
    assert isinstance(parsed, Parsed) and parsed.tool_calls is not None, parsed
    assert parsed.tool_calls[0]["function"] == {"name": "ping", "arguments": "{}"}


def test_an_open_answer_schema_is_answered_with_an_object() -> None:
    open_schema = {"type": "json_schema", "json_schema": {"name": "Any", "schema": {}}}
    content, parsed = simulated(ask("Anything.", response_format=open_schema))
    assert isinstance(parsed, Parsed), parsed
    assert json.loads(content) == {}


def test_no_call_when_none_is_asked_for() -> None:
    content, parsed = simulated(ask("Tell me about Paris.", tools=[WEATHER]))
    assert "<tool_call>" not in content
    assert isinstance(parsed, Parsed) and parsed.finish_reason == "stop"


def test_after_a_tool_result_the_answer_is_text() -> None:
    history = [
        {"role": "user", "content": "Use the tool to check Paris."},
        {"role": "assistant", "content": None, "tool_calls": [{
            "id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris", "days": 1}'},
        }]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18 C"},
    ]  # fmt: skip
    content, parsed = simulated({"model": "o1-mini", "messages": history, "tools": [WEATHER]})
    assert "<tool_call>" not in content and content
    assert isinstance(parsed, Parsed) and parsed.content == content


@pytest.mark.parametrize("model", ["o1-preview", "o1-mini"])
def test_structured_output_matches_the_schema(model: str) -> None:
    request = {**ask("Forecast for Paris.", response_format=JSON_SCHEMA_FORMAT), "model": model}
    content, parsed = simulated(request)
    assert isinstance(parsed, Parsed), parsed
    assert json.loads(content) == {
        "city": "example",
        "forecast": [{"date": "2024-09-12", "high": 1.5}],
    }


def test_json_object_is_an_object() -> None:
    content, parsed = simulated(ask("Answer in json.", response_format={"type": "json_object"}))
    assert isinstance(parsed, Parsed)
    assert isinstance(json.loads(content)["answer"], str)


def test_tools_with_structured_output_answer_json_when_not_calling() -> None:
    request = ask("Describe Paris.", tools=[WEATHER], response_format=JSON_SCHEMA_FORMAT)
    content, parsed = simulated(request)
    assert isinstance(parsed, Parsed) and parsed.tool_calls is None
    assert json.loads(content)["city"] == "example"


def test_plain_prompts_have_no_protocol() -> None:
    assert read_protocol(["Hello.", "Tell me about tools."]) is None
    protocol = read_protocol(["Your answer must be a single JSON object only: no prose."])
    assert protocol is not None and protocol.schema is None and not protocol.tools
    assert json.loads(protocol_answer(protocol, "Hi", "Some text.")) == {"answer": "Some text."}
