"""Tools and structured output emulated by prompting: request rewriting and answer parsing."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from openai.types.chat import ChatCompletion

from gateway.compat.emulation import (
    Emulation,
    EmulationError,
    Parsed,
    apply,
    emulate_request,
    format_tool_call,
    parse_answer,
    repair_messages,
)
from gateway.config import Capabilities
from gateway.wire.errors import GatewayError

O1 = Capabilities(
    system_messages=False,
    streaming=False,
    tools=False,
    response_format=False,
    json_schema=False,
    images=False,
    sampling_params=False,
    max_tokens=False,
    logprobs=False,
)
WEATHER_FN = {
    "name": "get_weather",
    "description": "Current weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"],
    },
}
WEATHER = {"type": "function", "function": WEATHER_FN}
TIME = {"type": "function", "function": {"name": "get_time", "description": "Local time."}}
ASK = [{"role": "user", "content": "What's the weather in Paris?"}]
IDS = ["call_1", "call_2", "call_3"]
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "temperature_c": {"type": "integer"}},
    "required": ["city", "temperature_c"],
    "additionalProperties": False,
}
JSON_SCHEMA_FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": "answer", "schema": SCHEMA, "strict": True},
}


def emulated(**request: Any) -> tuple[dict[str, Any], Emulation]:
    payload = {"model": "o1-preview", "messages": ASK, **request}
    before = copy.deepcopy(payload)
    out, emulation = emulate_request(payload, O1)
    assert payload == before, "the input payload must not be mutated"
    assert emulation is not None
    return out, emulation


def instructions(out: dict[str, Any]) -> str:
    first = out["messages"][0]
    assert first["role"] == "system"
    return str(first["content"])


def tools_emulation(choice: Any = "auto", *tools: dict[str, Any]) -> Emulation:
    return Emulation(tools=tools or (WEATHER, TIME), tool_choice=choice, patches=("tools",))


def parsed(result: Parsed | EmulationError) -> Parsed:
    assert isinstance(result, Parsed), result
    return result


def failed(result: Parsed | EmulationError) -> str:
    assert isinstance(result, EmulationError), result
    assert result.reminder, "a repair needs the format restated"
    return result.message


def completion(content: str | None, finish_reason: str = "stop") -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1726000000,
        "model": "o1-preview-2024-09-12",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "finish_reason": finish_reason,
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


# --- request rewriting -----------------------------------------------------------------------


def test_auto_tools_become_instructions_describing_each_tool() -> None:
    out, emulation = emulated(tools=[WEATHER, TIME], parallel_tool_calls=True)
    assert not {"tools", "tool_choice", "parallel_tool_calls"} & out.keys()
    assert out["messages"][1:] == ASK
    text = instructions(out)
    assert "## get_weather" in text and "Current weather in a city." in text
    assert '"required": [\n    "city"\n  ]' in text, "the parameters schema is pretty-printed"
    assert "## get_time" in text and "Local time." in text
    assert "<tool_call>" in text and "answer normally" in text
    assert emulation == Emulation(tools=(WEATHER, TIME), tool_choice="auto", patches=("tools",))


def test_parallel_tool_calls_false_allows_one_call_at_most() -> None:
    """The client asked for one call at most: the model is told so, and an answer with two is
    a format error its repair fixes, not two calls handed to a client that expects one."""
    out, emulation = emulated(tools=[WEATHER, TIME], parallel_tool_calls=False)
    assert "parallel_tool_calls" not in out and emulation.one_call
    assert "ONLY one block" in instructions(out) and "one call at most" in instructions(out)
    two = format_tool_call("get_time", {}) + format_tool_call("get_weather", {"city": "Oslo"})
    assert "at most 1" in failed(parse_answer(two, emulation, IDS))
    one = parsed(parse_answer(format_tool_call("get_time", {}), emulation, IDS)).tool_calls
    assert one is not None and len(one) == 1
    # Left to its default, or with no tools to call, nothing is limited.
    _, default = emulated(tools=[WEATHER, TIME])
    assert not default.single and parsed(parse_answer(two, default, IDS)).tool_calls
    assert not emulated(tools=[WEATHER], tool_choice="none", parallel_tool_calls=False)[1].one_call


def test_required_tool_choice_demands_a_call() -> None:
    out, emulation = emulated(tools=[WEATHER], tool_choice="required")
    assert "MUST call at least one tool" in instructions(out)
    assert "answer normally" not in instructions(out)
    assert emulation.tool_choice == "required"
    assert emulation.patches == ("tools", "tool_choice")


def test_named_tool_choice_demands_that_function() -> None:
    choice = {"type": "function", "function": {"name": "get_time"}}
    out, emulation = emulated(tools=[WEATHER, TIME], tool_choice=choice)
    assert "MUST call the tool `get_time`" in instructions(out)
    assert emulation.tool_choice == choice


def test_tool_choice_none_drops_the_tools_without_instructions() -> None:
    out, emulation = emulated(tools=[WEATHER], tool_choice="none")
    assert out["messages"] == ASK
    assert "tools" not in out and "tool_choice" not in out
    assert emulation == Emulation(tools=(), tool_choice="none", patches=("tools",))
    # With nothing to emulate the answer passes through, even one that looks like a call.
    call = format_tool_call("get_weather", {"city": "Paris"})
    assert parse_answer(call, emulation, IDS) == Parsed(call, None, "stop")


def test_legacy_functions_become_tools() -> None:
    out, emulation = emulated(functions=[WEATHER_FN], function_call={"name": "get_weather"})
    assert "functions" not in out and "function_call" not in out
    assert emulation.tools == (WEATHER,)
    assert emulation.tool_choice == {"type": "function", "function": {"name": "get_weather"}}
    assert emulation.patches == ("functions", "tools", "tool_choice")
    assert "MUST call the tool `get_weather`" in instructions(out)


def test_a_forced_function_not_declared_is_refused_before_any_call() -> None:
    named = {"type": "function", "function": {"name": "get_time"}}
    for request, param in (
        ({"tools": [WEATHER], "tool_choice": named}, "tool_choice"),
        ({"tool_choice": named}, "tool_choice"),
        ({"functions": [WEATHER_FN], "function_call": {"name": "get_time"}}, "function_call"),
    ):
        with pytest.raises(GatewayError) as info:
            emulate_request({"model": "o1-preview", "messages": ASK, **request}, O1)
        assert (info.value.status, info.value.param, info.value.code) == (400, param, None)
    emulated(tools=[WEATHER, TIME], tool_choice=named)  # declared: emulated as before


def test_capable_model_is_left_alone() -> None:
    payload = {"model": "gpt-4o", "messages": ASK, "tools": [WEATHER]}
    assert emulate_request(payload, Capabilities()) == (payload, None)


def test_history_tool_calls_and_results_become_readable_text() -> None:
    history = [
        *ASK,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_abc",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_abc", "content": "18 C and sunny"},
    ]
    out, emulation = emulated(messages=history, tools=[WEATHER])
    sent = out["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert sent[2] == {
        "role": "assistant",
        "content": '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>',
    }
    assert sent[3]["content"] == "[Result of tool call call_abc (get_weather)]\n18 C and sunny"
    assert emulation.patches == ("tools", "tool_messages")
    # What the history shows the model is exactly what the parser accepts back.
    call = parsed(parse_answer(sent[2]["content"], emulation, ["call_abc"]))
    assert call.tool_calls is not None
    assert [(c["id"], c["function"]["name"]) for c in call.tool_calls] == [
        ("call_abc", "get_weather")
    ]
    assert json.loads(call.tool_calls[0]["function"]["arguments"]) == {"city": "Paris"}


def test_history_keeps_assistant_text_and_legacy_function_results() -> None:
    history = [
        *ASK,
        {
            "role": "assistant",
            "content": "Let me check.",
            "function_call": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        },
        {"role": "function", "name": "get_weather", "content": "18 C"},
    ]
    out, _ = emulated(messages=history, functions=[WEATHER_FN])
    assistant, result = out["messages"][2:]
    assert assistant["content"].startswith("Let me check.\n\n<tool_call>")
    assert "function_call" not in assistant
    assert result == {"role": "user", "content": "[Result of function call get_weather]\n18 C"}


def test_json_object_format_becomes_instructions() -> None:
    out, emulation = emulated(response_format={"type": "json_object"})
    assert "response_format" not in out
    assert "single JSON object only" in instructions(out)
    assert "no code fences" in instructions(out)
    assert emulation.patches == ("response_format",)


def test_json_schema_format_includes_the_pretty_schema() -> None:
    out, emulation = emulated(response_format=JSON_SCHEMA_FORMAT)
    assert json.dumps(SCHEMA, indent=2) in instructions(out)
    assert emulation.response_format == JSON_SCHEMA_FORMAT


def test_json_schema_is_emulated_when_only_json_mode_is_native() -> None:
    caps = Capabilities(json_schema=False)
    payload = {"messages": ASK, "response_format": {"type": "json_object"}}
    assert emulate_request(payload, caps) == (payload, None)
    out, emulation = emulate_request({**payload, "response_format": JSON_SCHEMA_FORMAT}, caps)
    assert emulation is not None and "response_format" not in out


# --- parsing tool calls ----------------------------------------------------------------------


def test_one_call_becomes_an_openai_tool_call() -> None:
    answer = 'Sure.\n<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
    result = parsed(parse_answer(answer, tools_emulation(), IDS))
    assert result == Parsed(
        content=None,
        tool_calls=[
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
            }
        ],
        finish_reason="tool_calls",
    )


def test_two_calls_get_their_own_ids() -> None:
    answer = (
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>\n'
        '<tool_call>{"name": "get_time", "arguments": {}}</tool_call>'
    )
    calls = parsed(parse_answer(answer, tools_emulation(), IDS)).tool_calls
    assert calls is not None
    assert [(c["id"], c["function"]["name"]) for c in calls] == [
        ("call_1", "get_weather"),
        ("call_2", "get_time"),
    ]


def test_fenced_json_inside_a_block_is_accepted() -> None:
    answer = '<tool_call>\n```json\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n```\n</tool_call>'
    calls = parsed(parse_answer(answer, tools_emulation(), IDS)).tool_calls
    assert calls is not None and calls[0]["function"]["arguments"] == '{"city":"Rome"}'


def test_arguments_given_as_a_json_string_are_accepted() -> None:
    block = {"name": "get_weather", "arguments": json.dumps({"city": "Oslo", "days": 2})}
    answer = f"<tool_call>{json.dumps(block)}</tool_call>"
    calls = parsed(parse_answer(answer, tools_emulation(), IDS)).tool_calls
    assert calls is not None and calls[0]["function"]["arguments"] == '{"city":"Oslo","days":2}'


def test_unknown_tool_is_an_error_listing_the_tools() -> None:
    answer = '<tool_call>{"name": "get_news", "arguments": {}}</tool_call>'
    message = failed(parse_answer(answer, tools_emulation(), IDS))
    assert '"get_news"' in message and "get_time, get_weather" in message


def test_invalid_json_in_a_block_is_an_error() -> None:
    answer = '<tool_call>{"name": "get_weather", "arguments": {city: Paris}}</tool_call>'
    assert "Tool call 1 is not valid JSON" in failed(parse_answer(answer, tools_emulation(), IDS))


def test_arguments_breaking_the_schema_name_the_field() -> None:
    answer = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris", "days": "two"}}</tool_call>'
    message = failed(parse_answer(answer, tools_emulation(), IDS))
    assert "$.days" in message and "'two' is not of type 'integer'" in message
    missing = '<tool_call>{"name": "get_weather", "arguments": {}}</tool_call>'
    assert "'city' is a required property" in failed(parse_answer(missing, tools_emulation(), IDS))


def test_required_without_a_call_is_an_error() -> None:
    message = failed(parse_answer("It is sunny.", tools_emulation("required"), IDS))
    assert "at least one tool" in message


def test_named_choice_rejects_another_tool_and_plain_text() -> None:
    choice = {"type": "function", "function": {"name": "get_time"}}
    answer = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
    message = failed(parse_answer(answer, tools_emulation(choice), IDS))
    assert "`get_weather`" in message and "only the tool `get_time`" in message
    assert "`get_time`" in failed(parse_answer("No.", tools_emulation(choice), IDS))


def test_auto_with_plain_text_is_a_normal_answer() -> None:
    result = parse_answer("It is sunny in Paris.", tools_emulation(), IDS)
    assert result == Parsed(content="It is sunny in Paris.", tool_calls=None, finish_reason="stop")


def test_unclosed_block_and_too_many_calls_are_errors() -> None:
    unclosed = '<tool_call>{"name": "get_time", "arguments": {}}'
    assert "never closed" in failed(parse_answer(unclosed, tools_emulation(), IDS))
    many = format_tool_call("get_time", {}) * 2
    assert "at most 1" in failed(parse_answer(many, tools_emulation(), ["call_1"]))


def test_an_answer_cut_short_is_what_the_model_wrote_not_a_format_error() -> None:
    # A cut answer broke the format only because it was cut: a repair cannot fix that, and
    # the client must see the cut (finish_reason "length", kept by `apply`).
    cut = 'Let me check. <tool_call>{"name": "get_weather", "argu'
    for finish in ("length", "content_filter"):
        result = parsed(parse_answer(cut, tools_emulation("required"), IDS, finish_reason=finish))
        assert result.content == "Let me check." and result.tool_calls is None
        assert apply(completion(cut, finish), result)["choices"][0]["finish_reason"] == finish
    for content in ("", None):
        result = parsed(parse_answer(content, tools_emulation("required"), IDS, "length"))
        assert result.content == content
    cut_json = '{"city": "Par'
    result = parsed(parse_answer(cut_json, json_emulation(JSON_SCHEMA_FORMAT), [], "length"))
    assert result.content == cut_json
    assert "never closed" in failed(parse_answer(cut, tools_emulation(), IDS, "stop"))


# --- parsing structured output ---------------------------------------------------------------


def json_emulation(response_format: dict[str, Any] | None = None) -> Emulation:
    chosen = response_format or {"type": "json_object"}
    return Emulation(response_format=chosen, patches=("response_format",))


def test_valid_object_is_the_content() -> None:
    result = parse_answer(' {"city": "Paris", "temperature_c": 18}\n', json_emulation(), [])
    assert result == Parsed('{"city": "Paris", "temperature_c": 18}', None, "stop")


def test_fenced_object_is_unwrapped() -> None:
    answer = '```json\n{"city": "Paris", "temperature_c": 18}\n```'
    result = parsed(parse_answer(answer, json_emulation(JSON_SCHEMA_FORMAT), []))
    assert result.content is not None
    assert json.loads(result.content) == {"city": "Paris", "temperature_c": 18}


def test_array_is_an_error() -> None:
    assert "not an array" in failed(parse_answer("[1, 2]", json_emulation(), []))


def test_prose_is_an_error() -> None:
    assert "not valid JSON" in failed(parse_answer("Here it is: {}", json_emulation(), []))


def test_schema_violation_reports_path_and_message() -> None:
    answer = '{"city": "Paris", "temperature_c": "warm"}'
    message = failed(parse_answer(answer, json_emulation(JSON_SCHEMA_FORMAT), []))
    assert "$.temperature_c" in message and "'warm' is not of type 'integer'" in message


# --- repair and apply ------------------------------------------------------------------------


def test_repair_messages_append_the_bad_answer_and_the_fix() -> None:
    out, emulation = emulated(tools=[WEATHER], tool_choice="required")
    error = parse_answer("It is sunny.", emulation, IDS)
    assert isinstance(error, EmulationError)
    repaired = repair_messages(out["messages"], "It is sunny.", error)
    assert repaired[:-2] == out["messages"]
    assert repaired[-2] == {"role": "assistant", "content": "It is sunny."}
    assert repaired[-1]["role"] == "user"
    assert error.message in repaired[-1]["content"]
    assert "<tool_call>" in repaired[-1]["content"], "the format is restated"
    assert len(out["messages"]) == 2, "the original list is not extended"


def test_apply_produces_sdk_compatible_tool_calls() -> None:
    answer = format_tool_call("get_weather", {"city": "Paris"})
    original = completion(answer)
    result = apply(original, parsed(parse_answer(answer, tools_emulation(), IDS)))
    assert original["choices"][0]["message"]["content"] == answer, "input not mutated"
    sdk = ChatCompletion.model_validate(result)
    choice = sdk.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None and choice.message.refusal is None
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.id == "call_1" and call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert sdk.usage is not None and sdk.usage.total_tokens == 15


def test_apply_keeps_legacy_clients_on_function_call() -> None:
    _, emulation = emulated(functions=[WEATHER_FN])
    answer = format_tool_call("get_weather", {"city": "Paris"})
    sdk = ChatCompletion.model_validate(
        apply(completion(answer), parsed(parse_answer(answer, emulation, IDS)))
    )
    assert sdk.choices[0].finish_reason == "function_call"
    assert sdk.choices[0].message.tool_calls is None
    assert sdk.choices[0].message.function_call is not None
    assert sdk.choices[0].message.function_call.arguments == '{"city":"Paris"}'


def test_apply_keeps_a_length_cut_for_text() -> None:
    result = apply(completion("Partial", "length"), Parsed("Partial", None, "stop"))
    assert result["choices"][0]["finish_reason"] == "length"


# --- round trip ------------------------------------------------------------------------------

_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,30}", fullmatch=True)
# Markup in arguments (code, HTML) must not end a block early.
_text = st.text() | st.sampled_from(["</tool_call>", "<tool_call>", "```json\n{}\n```"])
_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | _text
    | st.floats(allow_nan=False, allow_infinity=False)
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=10,
)
_arguments = st.dictionaries(_text, _values, max_size=5)


@given(st.lists(st.tuples(_names, _arguments), min_size=1, max_size=4))
def test_formatted_calls_parse_back_exactly(calls: list[tuple[str, dict[str, Any]]]) -> None:
    tools = tuple({"type": "function", "function": {"name": name}} for name, _ in calls)
    emulation = Emulation(tools=tools, tool_choice="auto", patches=("tools",))
    answer = "\n".join(format_tool_call(name, arguments) for name, arguments in calls)
    ids = [f"call_{i}" for i in range(len(calls))]
    result = parsed(parse_answer(answer, emulation, ids))
    assert result.tool_calls == [
        {
            "id": ids[i],
            "type": "function",
            "function": {
                "name": name,
                "arguments": json.dumps(arguments, separators=(",", ":"), ensure_ascii=False),
            },
        }
        for i, (name, arguments) in enumerate(calls)
    ]
    assert all(
        json.loads(c["function"]["arguments"]) == calls[i][1]
        for i, c in enumerate(result.tool_calls)
    )
