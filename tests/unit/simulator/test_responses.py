"""A Responses API request: its checks, its stored input items, and its chat equivalent."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.simulator import responses
from gateway.simulator.openai_errors import SimError
from gateway.simulator.rules import ChatModel, resolve_chat_model

GPT4O = resolve_chat_model("gpt-4o")
assert GPT4O is not None
TOOL = {"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {}}}


def error_of(body: dict[str, Any]) -> SimError | None:
    model = responses.resolve_model(body)
    return model if isinstance(model, SimError) else responses.check(body, model)


def test_models() -> None:
    assert isinstance(responses.resolve_model({"model": "gpt-4o-mini-2024-07-18"}), ChatModel)
    refused = responses.resolve_model({"model": "o1-mini"})
    assert isinstance(refused, SimError) and refused.status == 400 and refused.code is None
    assert (
        refused.message == "The requested model 'o1-mini' is not supported with the Responses API."
    )
    missing = responses.resolve_model({"model": "gpt-5"})
    assert isinstance(missing, SimError) and missing.code == "model_not_found"


@pytest.mark.parametrize(
    ("extra", "param", "code"),
    [
        ({"max_output_tokens": 15}, "max_output_tokens", "integer_below_min_value"),
        ({"max_output_tokens": 20_000}, "max_output_tokens", None),
        ({"temperature": 3}, "temperature", "decimal_above_max_value"),
        ({"reasoning": {"effort": "low"}}, "reasoning.effort", "unsupported_parameter"),
        ({"background": True, "store": False}, "store", None),
        ({"frequency_penalty": 1}, "frequency_penalty", "unknown_parameter"),
        ({"input": [{"role": "tool", "content": "x"}]}, "input[0].role", "invalid_value"),
        ({"input": [{"type": "function_call_output"}]}, "input[0].call_id", "missing_required_parameter"),
        # Found by the Responses fuzz: a reference whose id is no string was stored as a message.
        ({"input": [{"type": "item_reference", "id": []}]}, "input[0].id", "invalid_type"),
        ({"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": {}}]}, "input[0].arguments", "invalid_type"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools[0].name", "missing_required_parameter"),
        ({"tool_choice": "sometimes"}, "tool_choice", "invalid_value"),
        ({"text": {"format": {"type": "json_schema", "name": "x"}}}, "text.format.schema", "missing_required_parameter"),
        ({"text": {"format": {"type": "json_object"}}}, "input", None),
        ({"safety_identifier": "s" * 65}, "safety_identifier", "string_above_max_length"),
        ({"metadata": {str(i): "v" for i in range(17)}}, "metadata", "object_above_max_properties"),
        ({"metadata": {"k" * 65: "v"}}, "metadata", "string_above_max_length"),
        ({"metadata": {"run": "v" * 513}}, "metadata.run", "string_above_max_length"),
        ({"metadata": {"run": 1}}, "metadata.run", "invalid_type"),
        ({"reasoning": {"summary": "brief"}}, "reasoning.summary", "invalid_value"),
        ({"text": {"verbosity": "terse"}}, "text.verbosity", "invalid_value"),
    ],
)  # fmt: skip
def test_refusals(extra: dict[str, Any], param: str, code: str | None) -> None:
    error = error_of({"model": "gpt-4o", "input": "Hi", **extra})
    assert error is not None and error.status == 400
    assert (error.param, error.code) == (param, code)


def test_accepted() -> None:
    body = {
        "model": "gpt-4o",
        "input": [{"role": "developer", "content": "json please"}, {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]}],
        "reasoning": {"effort": None, "summary": "concise"},
        "tools": [TOOL],
        "tool_choice": {"type": "function", "name": "lookup"},
        "text": {"format": {"type": "json_object"}, "verbosity": "low"},
        "max_output_tokens": 16,
        "safety_identifier": "s" * 64,
        "metadata": {**{str(i): "v" for i in range(15)}, "k" * 64: "v" * 512},
    }  # fmt: skip
    assert error_of(body) is None
    assert error_of({"model": "gpt-4o", "previous_response_id": "resp_1"}) is None
    assert error_of({"model": "gpt-4o"}) is not None  # nothing to answer


def test_input_items_get_ids_and_parts() -> None:
    body = {
        "input": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"type": "function_call", "id": "fc_given", "call_id": "call_1", "name": "lookup", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "42"},
        ]
    }  # fmt: skip
    items = responses.input_items(body, 5)
    assert items == responses.input_items(body, 5)  # ids come from the seed alone
    assert items[0]["id"].startswith("msg_") and items[0]["content"] == [
        {"type": "input_text", "text": "Hi"}
    ]
    assert items[1]["content"][0]["type"] == "output_text"
    assert items[2]["id"] == "fc_given"
    assert responses.input_items({"input": "Hi"}, 5)[0]["id"] == items[0]["id"]


def test_items_become_chat_messages_and_tools_stop_after_a_result() -> None:
    body: dict[str, Any] = {
        "model": "gpt-4o",
        "tools": [TOOL],
        "tool_choice": {"type": "function", "name": "lookup"},
        "text": {"format": {"type": "json_schema", "name": "A", "schema": {"type": "object"}, "strict": True}},
        "max_output_tokens": 100,
    }  # fmt: skip
    calls = [
        {"type": "function_call", "call_id": "call_1", "name": "lookup", "arguments": "{}"},
        {"type": "function_call", "call_id": "call_2", "name": "lookup", "arguments": "{}"},
    ]
    messages = responses.as_messages([{"role": "user", "content": "Hi"}, *calls])
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert [c["id"] for c in messages[1]["tool_calls"]] == ["call_1", "call_2"]
    chat = responses.chat_body(body, messages)
    assert chat["tools"] == [
        {"type": "function", "function": {k: v for k, v in TOOL.items() if k != "type"}}
    ]
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "lookup"}}
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "A", "schema": {"type": "object"}, "strict": True},
    }
    assert chat["max_completion_tokens"] == 100
    result = {"type": "function_call_output", "call_id": "call_2", "output": "42"}
    after = responses.chat_body(body, [*messages, *responses.as_messages([result])])
    assert "tools" not in after and "tool_choice" not in after
    assert after["messages"][-1] == {"role": "tool", "tool_call_id": "call_2", "content": "42"}


def test_hosted_calls_and_reasoning_in_a_history_are_no_chat_messages() -> None:
    # A response that searched the web (or reasoned) chained by `previous_response_id`: its
    # output items without a role were read as messages, and the simulator answered a 500.
    history = [
        {"role": "user", "content": "Search"},
        {"id": "ws_1", "type": "web_search_call", "status": "completed"},
        {"id": "rs_1", "type": "reasoning", "summary": []},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Found"}]},
    ]  # fmt: skip
    messages = responses.as_messages(history)
    assert messages == [
        {"role": "user", "content": "Search"},
        {"role": "assistant", "content": "Found"},
    ]
