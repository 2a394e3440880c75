"""A Responses API request as a chat request, and a chat.completion as a Response object."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from openai.types.responses import Response

from gateway.simulator import rules
from gateway.translate.responses_chat import (
    chat_request,
    input_items,
    response_object,
    usage_to_responses,
)
from gateway.wire.errors import GatewayError


def counter() -> Any:
    numbers = itertools.count(1)
    return lambda prefix: f"{prefix}{next(numbers)}"


def test_a_string_input_is_one_user_message_item() -> None:
    assert input_items({"input": "hi"}, counter()) == [
        {
            "id": "msg_1",
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "hi"}],
        }
    ]


def test_message_items_are_normalised_and_keep_their_ids() -> None:
    items = input_items(
        {
            "input": [
                {"role": "developer", "content": "be brief"},
                {"type": "message", "id": "msg_own", "role": "assistant", "content": "ok"},
                {"role": "user", "content": [{"type": "input_text", "text": "a"}]},
            ]
        },
        counter(),
    )
    assert items == [
        {
            "id": "msg_1",
            "type": "message",
            "role": "developer",
            "content": [{"type": "input_text", "text": "be brief"}],
        },
        {
            "id": "msg_own",
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": "ok", "annotations": [], "logprobs": []}],
        },
        {
            "id": "msg_2",
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "a"}],
        },
    ]


def test_function_call_items_are_kept_with_ids() -> None:
    call = {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"}
    output = {"type": "function_call_output", "call_id": "call_1", "output": "42"}
    assert input_items({"input": [call, output]}, counter()) == [
        {**call, "id": "fc_1", "status": "completed"},
        {**output, "id": "fco_2", "status": "completed"},
    ]


def test_no_input_is_no_items() -> None:
    assert input_items({"previous_response_id": "resp_1"}, counter()) == []


@pytest.mark.parametrize(
    ("given", "param", "code"),
    [
        (5, "input", "invalid_type"),
        ([3], "input[0]", "invalid_type"),
        ([{"role": "boss", "content": "x"}], "input[0].role", "invalid_value"),
        ([{"role": "user"}], "input[0].content", "invalid_type"),
        ([{"role": "user", "content": [{"type": "audio"}]}], "input[0].content[0].type", "invalid_value"),
        ([{"type": "function_call", "name": "f", "arguments": "{}"}], "input[0].call_id", "missing_required_parameter"),
        ([{"type": "function_call_output", "call_id": "c", "output": 1}], "input[0].output", "invalid_type"),
        ([{"type": "function_call_output", "call_id": "c", "output": [{"type": "input_text", "text": None}]}], "input[0].output[0].text", "invalid_type"),
        ([{"type": "function_call_output", "call_id": "c", "output": [{"type": "input_text", "text": [1]}]}], "input[0].output[0].text", "invalid_type"),
        ([{"type": "web_search_call"}], "input[0].type", "invalid_value"),
    ],
)  # fmt: skip
def test_malformed_input_is_refused_naming_the_field(given: Any, param: str, code: str) -> None:
    with pytest.raises(GatewayError) as raised:
        input_items({"input": given}, counter())
    assert (raised.value.status, raised.value.param, raised.value.code) == (400, param, code)
    assert raised.value.type == "invalid_request_error"


def test_instructions_history_and_input_become_chat_messages() -> None:
    history = [
        {"id": "msg_1", "type": "message", "role": "user",
         "content": [{"type": "input_text", "text": "weather?"}]},
        {"id": "msg_2", "type": "message", "role": "assistant", "status": "completed",
         "content": [{"type": "output_text", "text": "checking", "annotations": []}]},
        {"id": "fc_3", "type": "function_call", "status": "completed", "call_id": "call_a",
         "name": "weather", "arguments": '{"city":"Paris"}'},
        {"id": "fc_4", "type": "function_call", "status": "completed", "call_id": "call_b",
         "name": "weather", "arguments": '{"city":"Rome"}'},
    ]  # fmt: skip
    payload = {
        "model": "o1-mini",
        "instructions": "be brief",
        "input": [
            {"type": "function_call_output", "call_id": "call_a", "output": "sunny"},
            {"type": "function_call_output", "call_id": "call_b", "output": "rain"},
            {"role": "user", "content": "thanks"},
        ],
    }
    assert chat_request(payload, history) == {
        "model": "o1-mini",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": "checking",
                "tool_calls": [
                    {"id": "call_a", "type": "function",
                     "function": {"name": "weather", "arguments": '{"city":"Paris"}'}},
                    {"id": "call_b", "type": "function",
                     "function": {"name": "weather", "arguments": '{"city":"Rome"}'}},
                ],
            },
            {"role": "tool", "tool_call_id": "call_a", "content": "sunny"},
            {"role": "tool", "tool_call_id": "call_b", "content": "rain"},
            {"role": "user", "content": "thanks"},
        ],
    }  # fmt: skip


def test_calls_without_text_open_their_own_assistant_message() -> None:
    call = {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"}
    messages = chat_request({"model": "o1", "input": [{"role": "user", "content": "x"}, call]}, [])
    assert messages["messages"][1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        ],
    }


def test_images_and_refusals_become_chat_parts() -> None:
    payload = {
        "model": "o1",
        "input": [
            {"role": "user", "content": [
                {"type": "input_text", "text": "what is it?"},
                {"type": "input_image", "image_url": "https://x/a.png", "detail": "low"},
            ]},
            {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]},
        ],
    }  # fmt: skip
    assert chat_request(payload, [])["messages"] == [
        {"role": "user", "content": [
            {"type": "text", "text": "what is it?"},
            {"type": "image_url", "image_url": {"url": "https://x/a.png", "detail": "low"}},
        ]},
        {"role": "assistant", "content": None, "refusal": "no"},
    ]  # fmt: skip


def test_reasoning_items_are_left_out_of_the_chat() -> None:
    history = [{"id": "rs_1", "type": "reasoning", "summary": []}]
    assert chat_request({"model": "o1", "input": "hi"}, history)["messages"] == [
        {"role": "user", "content": "hi"}
    ]


def test_settings_map_to_their_chat_names_and_the_rest_is_dropped() -> None:
    payload = {
        "model": "o1-preview",
        "input": "hi",
        "max_output_tokens": 500,
        "temperature": 1,
        "top_p": 1,
        "parallel_tool_calls": False,
        "user": "u1",
        "stream": True,
        "reasoning": {"effort": "low", "summary": "auto"},
        "store": False,
        "metadata": {"a": "b"},
        "previous_response_id": "resp_0",
        "include": ["reasoning.encrypted_content"],
        "truncation": "auto",
        "background": False,
        "text": {"format": {"type": "text"}, "verbosity": "low"},
        "service_tier": "auto",
        "prompt_cache_key": "k",
        "safety_identifier": "s",
    }
    assert chat_request(payload, []) == {
        "model": "o1-preview",
        "messages": [{"role": "user", "content": "hi"}],
        "max_completion_tokens": 500,
        "temperature": 1,
        "top_p": 1,
        "user": "u1",
        "safety_identifier": "s",
        "prompt_cache_key": "k",
        "stream": True,
        "stream_options": {"include_usage": True},
        "reasoning_effort": "low",
    }


def test_function_tools_and_tool_choice_are_nested_as_chat_nests_them() -> None:
    tool = {
        "type": "function",
        "name": "weather",
        "description": "the weather",
        "parameters": {"type": "object", "properties": {}},
        "strict": True,
    }
    payload = {
        "model": "o1",
        "input": "hi",
        "tools": [tool],
        "tool_choice": {"type": "function", "name": "weather"},
    }
    request = chat_request(payload, [])
    assert request["tools"] == [
        {"type": "function", "function": {k: v for k, v in tool.items() if k != "type"}}
    ]
    assert request["tool_choice"] == {"type": "function", "function": {"name": "weather"}}
    assert chat_request({**payload, "tool_choice": "required"}, [])["tool_choice"] == "required"


@pytest.mark.parametrize("tools", [None, []])
def test_a_tool_choice_without_tools_is_left_out_as_chat_refuses_one(tools: Any) -> None:
    # The Responses API takes a choice, and `parallel_tool_calls` (clients send its default,
    # true, with every request); chat (and so the patches serving the translation) refuses
    # either without tools.
    payload = {
        "model": "o1-mini", "input": "hi", "tool_choice": "auto", "parallel_tool_calls": True,
        "tools": tools,
    }  # fmt: skip
    request = chat_request(payload, [])
    assert not {"tool_choice", "parallel_tool_calls"} & request.keys()
    assert rules.check({**request, "model": "gpt-4o"}) is None
    with_tools = chat_request({**payload, "tools": [{"type": "function", "name": "f"}]}, [])
    assert with_tools["parallel_tool_calls"] is True


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"tools": [{"type": "function", "name": "f"}, {"type": "web_search"}]}, "tools[1].type"),
        ({"tool_choice": {"type": "file_search"}}, "tool_choice.type"),
    ],
)
def test_hosted_tools_are_refused_naming_the_tool(change: dict[str, Any], param: str) -> None:
    with pytest.raises(GatewayError) as raised:
        chat_request({"model": "o1-mini", "input": "hi", **change}, [])
    error = raised.value
    assert (error.status, error.param, error.code) == (400, param, "unsupported_value")
    assert "o1-mini" in error.message and "search" in error.message


def test_text_formats_become_response_formats() -> None:
    def response_format(form: dict[str, Any]) -> Any:
        return chat_request({"model": "o1", "input": "x", "text": {"format": form}}, []).get(
            "response_format"
        )

    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    assert response_format({"type": "text"}) is None
    assert response_format({"type": "json_object"}) == {"type": "json_object"}
    assert response_format(
        {"type": "json_schema", "name": "A", "schema": schema, "strict": True}
    ) == {"type": "json_schema", "json_schema": {"name": "A", "schema": schema, "strict": True}}
    assert response_format(
        {"type": "json_schema", "name": "A", "schema": schema, "description": "d"}
    ) == {"type": "json_schema", "json_schema": {"name": "A", "schema": schema, "description": "d"}}


def test_usage_in_the_responses_api_words() -> None:
    usage = {
        "prompt_tokens": 10,
        "completion_tokens": 30,
        "total_tokens": 40,
        "prompt_tokens_details": {"cached_tokens": 4},
        "completion_tokens_details": {"reasoning_tokens": 20},
    }
    assert usage_to_responses(usage) == {
        "input_tokens": 10,
        "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 0},
        "output_tokens": 30,
        "output_tokens_details": {"reasoning_tokens": 20},
        "total_tokens": 40,
    }
    assert usage_to_responses(None) is None
    assert usage_to_responses({"prompt_tokens": 1, "completion_tokens": 2})["total_tokens"] == 3  # type: ignore[index]


USAGE = {"prompt_tokens": 12, "completion_tokens": 40, "total_tokens": 52}


def completion(message: dict[str, Any], finish_reason: str = "stop") -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "o1-mini-2024-09-12",
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": USAGE,
    }


def answer(message: dict[str, Any], finish_reason: str = "stop", **payload: Any) -> Any:
    obj = response_object(
        completion({"role": "assistant", **message}, finish_reason),
        {"model": "o1-mini", "input": "hi", **payload},
        response_id="resp_1",
        created_at=1700000001,
        new_id=counter(),
    )
    Response.model_validate(obj)  # the SDK reads it
    return obj


def test_a_text_answer_is_a_completed_response_echoing_the_defaults() -> None:
    obj = answer({"content": "Hello"})
    assert obj == {
        "id": "resp_1",
        "object": "response",
        "created_at": 1700000001,
        "status": "completed",
        "background": False,
        "completed_at": 1700000001,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "max_output_tokens": None,
        "max_tool_calls": None,
        "model": "o1-mini-2024-09-12",
        "output": [
            {
                "id": "msg_1",
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [
                    {"type": "output_text", "text": "Hello", "annotations": [], "logprobs": []}
                ],
            }
        ],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage_to_responses(USAGE),
        "user": None,
        "metadata": {},
    }


@pytest.mark.parametrize(
    ("named", "said"), [("priority", "priority"), ("flex", "flex"), (None, "default")]
)
def test_the_response_names_the_tier_the_chat_answer_names(named: str | None, said: str) -> None:
    """Upstream bills the tier its answer names; one naming none served at the standard tier."""
    told = completion({"role": "assistant", "content": "x"})
    if named is not None:
        told["service_tier"] = named
    obj = response_object(
        told, {"model": "o1-mini", "input": "hi", "service_tier": "auto"},
        response_id="resp_1", created_at=1700000001, new_id=counter(),
    )  # fmt: skip
    assert obj["service_tier"] == said
    Response.model_validate(obj)


def test_the_request_settings_are_echoed() -> None:
    tool = {"type": "function", "name": "f", "parameters": {}, "strict": False}
    obj = answer(
        {"content": "x"},
        instructions="be brief",
        max_output_tokens=100,
        tools=[tool],
        tool_choice="required",
        store=False,
        metadata={"k": "v"},
        previous_response_id="resp_0",
        reasoning={"effort": "high"},
        text={"format": {"type": "json_object"}},
        user="u",
    )
    echoed = {k: obj[k] for k in ("instructions", "max_output_tokens", "tools", "tool_choice")}
    assert echoed == {
        "instructions": "be brief",
        "max_output_tokens": 100,
        "tools": [tool],
        "tool_choice": "required",
    }
    assert (obj["store"], obj["metadata"], obj["previous_response_id"], obj["user"]) == (
        False,
        {"k": "v"},
        "resp_0",
        "u",
    )
    assert obj["reasoning"] == {"effort": "high", "summary": None}
    assert obj["text"] == {"format": {"type": "json_object"}}


def test_tool_calls_are_function_call_items() -> None:
    calls = [
        {"id": "call_a", "type": "function", "function": {"name": "f", "arguments": '{"x":1}'}},
        {"id": "call_b", "type": "function", "function": {"name": "g", "arguments": "{}"}},
    ]
    obj = answer({"content": None, "tool_calls": calls}, "tool_calls")
    assert obj["status"] == "completed"
    assert obj["output"] == [
        {"id": "fc_1", "type": "function_call", "status": "completed",
         "arguments": '{"x":1}', "call_id": "call_a", "name": "f"},
        {"id": "fc_2", "type": "function_call", "status": "completed",
         "arguments": "{}", "call_id": "call_b", "name": "g"},
    ]  # fmt: skip


def test_a_refusal_is_a_refusal_part() -> None:
    obj = answer({"content": None, "refusal": "I can't help with that."})
    assert obj["output"][0]["content"] == [
        {"type": "refusal", "refusal": "I can't help with that."}
    ]


@pytest.mark.parametrize(
    ("finish_reason", "reason"),
    [("length", "max_output_tokens"), ("content_filter", "content_filter")],
)
def test_a_cut_answer_is_incomplete(finish_reason: str, reason: str) -> None:
    obj = answer({"content": "Hel"}, finish_reason)
    assert (obj["status"], obj["incomplete_details"]) == ("incomplete", {"reason": reason})
    assert obj["completed_at"] is None
    assert obj["output"][0]["status"] == "incomplete"


def test_an_answer_spent_on_reasoning_has_no_message() -> None:
    obj = answer({"content": ""}, "length")
    assert obj["output"] == []
    assert obj["status"] == "incomplete"
