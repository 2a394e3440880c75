"""answers: deterministic text, usage arithmetic, completion and chunk shapes, as OpenAI sends them."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest

from gateway.simulator.answers import (
    Answer,
    answer_text,
    chunk_objects,
    completion_object,
    compose,
    prompt_seed,
    reasoning_budget,
    truncate_tokens,
    value_for_schema,
    word_deltas,
)
from gateway.simulator.rules import ChatModel, resolve_chat_model
from gateway.wire.tokens import count_messages, count_text

HELLO = [{"role": "user", "content": "Say hello to the gateway."}]
WEATHER_PARAMETERS = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer"},
        "note": {"type": "string"},
    },
    "required": ["city", "unit", "days"],
}
WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": WEATHER_PARAMETERS},
}


def model(name: str) -> ChatModel:
    found = resolve_chat_model(name)
    assert found is not None
    return found


def answer_for(body: dict[str, Any], **kw: Any) -> Answer:
    messages = body["messages"]
    return compose(
        body,
        model(body["model"]),
        prompt_tokens=count_messages(messages),
        content_seed=prompt_seed(messages),
        id_seed=7,
        **kw,
    )


def test_answer_text_is_deterministic_readable_and_sized() -> None:
    assert answer_text(42) == answer_text(42)
    assert answer_text(42) != answer_text(43)
    lengths = [count_text(answer_text(seed)) for seed in range(2000)]
    assert min(lengths) >= 30 and max(lengths) <= 150
    text = answer_text(42)
    assert re.fullmatch(r"([A-Z][a-z ,'-]+\.)( [A-Z][a-z ,'-]+\.)*", text), text
    assert "lorem" not in text.lower()


def test_prompt_seed_depends_on_the_messages_only() -> None:
    assert prompt_seed(HELLO) == prompt_seed(
        [{"content": "Say hello to the gateway.", "role": "user"}]
    )
    assert prompt_seed(HELLO) != prompt_seed([{"role": "user", "content": "Say hi."}])


def test_same_prompt_same_answer() -> None:
    body = {"model": "gpt-4o", "messages": HELLO}
    assert answer_for(body).choices == answer_for(body).choices


def test_usage_arithmetic_for_gpt4o() -> None:
    answer = answer_for({"model": "gpt-4o", "messages": HELLO})
    usage = answer.usage()
    choice = answer.choices[0]
    assert choice.content and choice.finish_reason == "stop"
    assert usage["prompt_tokens"] == count_messages(HELLO)
    assert usage["completion_tokens"] == count_text(choice.content)
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["prompt_tokens_details"] == {"cached_tokens": 0}
    assert usage["completion_tokens_details"] == {"reasoning_tokens": 0}


def test_usage_arithmetic_for_o1_includes_reasoning() -> None:
    answer = answer_for({"model": "o1-mini", "messages": HELLO})
    usage = answer.usage()
    reasoning = usage["completion_tokens_details"]["reasoning_tokens"]
    content = answer.choices[0].content
    assert content and answer.choices[0].finish_reason == "stop"
    assert reasoning >= 64 and reasoning % 64 == 0
    assert usage["completion_tokens"] == reasoning + count_text(content)
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_reasoning_grows_with_the_prompt_and_is_bounded() -> None:
    assert reasoning_budget(10, 0) < reasoning_budget(1000, 0)
    assert reasoning_budget(0, 0) >= 64
    assert reasoning_budget(10**6, 3) == 4096
    assert all(reasoning_budget(p, s) % 64 == 0 for p in (1, 50, 900) for s in range(8))


def test_reasoning_tokens_override() -> None:
    answer = answer_for({"model": "o1-preview", "messages": HELLO}, reasoning_tokens=1234)
    assert answer.usage()["completion_tokens_details"]["reasoning_tokens"] == 1234


def test_max_tokens_truncates_with_finish_length() -> None:
    body = {"model": "gpt-4o", "messages": HELLO, "max_tokens": 5}
    answer = answer_for(body)
    choice = answer.choices[0]
    full = answer_for({"model": "gpt-4o", "messages": HELLO}).choices[0].content
    assert choice.finish_reason == "length"
    assert choice.content and full and full.startswith(choice.content)
    assert answer.usage()["completion_tokens"] == count_text(choice.content) == 5


def test_generous_max_tokens_does_not_truncate() -> None:
    answer = answer_for({"model": "gpt-4o", "messages": HELLO, "max_completion_tokens": 1000})
    assert answer.choices[0].finish_reason == "stop"


def test_o1_too_small_max_completion_tokens_bills_it_all_as_reasoning() -> None:
    body = {"model": "o1-preview", "messages": HELLO, "max_completion_tokens": 100}
    answer = answer_for(body, reasoning_tokens=90)
    choice = answer.choices[0]
    assert (choice.content, choice.finish_reason) == ("", "length")
    usage = answer.usage()
    assert usage["completion_tokens"] == 100
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 100
    assert usage["total_tokens"] == usage["prompt_tokens"] + 100


def test_o1_with_enough_budget_answers() -> None:
    body = {"model": "o1-preview", "messages": HELLO, "max_completion_tokens": 5000}
    answer = answer_for(body, reasoning_tokens=128, answer="Hello, gateway.")
    assert answer.choices[0].content == "Hello, gateway."
    assert answer.usage()["completion_tokens"] == 128 + count_text("Hello, gateway.")


def test_answer_override_is_used_verbatim() -> None:
    text = 'Thinking...\n<tool_call>{"name": "f", "arguments": {}}</tool_call>'
    answer = answer_for({"model": "gpt-4o", "messages": HELLO}, answer=text)
    assert answer.choices[0].content == text


def test_n_choices_differ_and_sum_into_usage() -> None:
    answer = answer_for({"model": "gpt-4o", "messages": HELLO, "n": 3})
    contents = [c.content for c in answer.choices]
    assert len(set(contents)) == 3
    assert answer.usage()["completion_tokens"] == sum(count_text(c or "") for c in contents)


def test_completion_object_shape() -> None:
    answer = answer_for({"model": "gpt-4o", "messages": HELLO})
    obj = completion_object(answer, completion_id="chatcmpl-x", created=1726000000)
    assert list(obj) == [
        "id",
        "object",
        "created",
        "model",
        "choices",
        "usage",
        "system_fingerprint",
    ]
    assert obj["object"] == "chat.completion" and obj["model"] == "gpt-4o-2024-08-06"
    assert obj["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": answer.choices[0].content, "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    assert obj["system_fingerprint"].startswith("fp_")


def chunks_for(answer: Answer, include_usage: bool) -> list[dict[str, Any]]:
    return chunk_objects(
        answer, completion_id="chatcmpl-x", created=1726000000, include_usage=include_usage
    )


def test_chunk_sequence_without_usage() -> None:
    answer = answer_for(
        {"model": "gpt-4o", "messages": HELLO}, answer="Hello there, gateway friend."
    )
    chunks = chunks_for(answer, include_usage=False)
    for chunk in chunks:
        assert {
            k: chunk[k] for k in ("id", "object", "created", "model", "system_fingerprint")
        } == {
            "id": "chatcmpl-x",
            "object": "chat.completion.chunk",
            "created": 1726000000,
            "model": "gpt-4o-2024-08-06",
            "system_fingerprint": answer.system_fingerprint,
        }
        assert "usage" not in chunk
    first, *middle, last = chunks
    assert first["choices"] == [
        {
            "index": 0,
            "delta": {"role": "assistant", "content": "", "refusal": None},
            "logprobs": None,
            "finish_reason": None,
        }
    ]
    assert [c["choices"][0]["delta"]["content"] for c in middle] == [
        "Hello",
        " there,",
        " gateway",
        " friend.",
    ]
    assert last["choices"] == [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]


def test_chunk_sequence_with_usage() -> None:
    answer = answer_for({"model": "gpt-4o", "messages": HELLO})
    chunks = chunks_for(answer, include_usage=True)
    *body, final = chunks
    assert all(chunk["usage"] is None for chunk in body)
    assert final["choices"] == [] and final["usage"] == answer.usage()
    assert body[-1]["choices"][0]["finish_reason"] == "stop"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in body)
    assert text == answer.choices[0].content


def test_word_deltas_join_back_exactly() -> None:
    for text in ["", "one", "  lead and trail  ", "line one\n\nline two\tend", answer_text(5)]:
        assert "".join(word_deltas(text)) == text
    assert len(word_deltas(answer_text(5))) == len(answer_text(5).split())


def test_forced_tool_call_and_its_deltas() -> None:
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "What's the weather in Paris?"}],
        "tools": [WEATHER_TOOL],
        "tool_choice": "required",
    }
    answer = answer_for(body)
    choice = answer.choices[0]
    assert choice.content is None and choice.finish_reason == "tool_calls"
    (call,) = choice.tool_calls
    assert call.name == "get_weather" and re.fullmatch(r"call_[A-Za-z0-9]{24}", call.id)
    assert orjson.loads(call.arguments) == {"city": "example", "unit": "celsius", "days": 1}
    obj = completion_object(answer, completion_id="chatcmpl-x", created=1)
    assert obj["choices"][0]["message"] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": "get_weather", "arguments": call.arguments},
            }
        ],
        "refusal": None,
    }

    first, *middle, finish, usage = chunks_for(answer, include_usage=True)
    assert first["choices"][0]["delta"] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "index": 0,
                "id": call.id,
                "type": "function",
                "function": {"name": "get_weather", "arguments": ""},
            }
        ],
        "refusal": None,
    }
    fragments = []
    for chunk in middle:
        (delta_call,) = chunk["choices"][0]["delta"]["tool_calls"]
        assert set(delta_call) == {"index", "function"} and delta_call["index"] == 0
        assert set(delta_call["function"]) == {"arguments"}
        fragments.append(delta_call["function"]["arguments"])
    assert len(fragments) > 3 and "".join(fragments) == call.arguments
    assert finish["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "tool_calls",
    }
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == choice.tokens


def test_tool_choice_naming_a_function_picks_it() -> None:
    other = {
        "type": "function",
        "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
    }
    body = {
        "model": "gpt-4o",
        "messages": HELLO,
        "tools": [WEATHER_TOOL, other],
        "tool_choice": {"type": "function", "function": {"name": "get_time"}},
    }
    (call,) = answer_for(body).choices[0].tool_calls
    assert (call.name, call.arguments) == ("get_time", "{}")


def test_auto_tool_choice_calls_only_when_asked() -> None:
    body: dict[str, Any] = {"model": "gpt-4o", "messages": HELLO, "tools": [WEATHER_TOOL]}
    assert answer_for(body).choices[0].tool_calls == ()
    asked = {
        **body,
        "messages": [{"role": "user", "content": "Please use the weather tool for Oslo."}],
    }
    assert answer_for(asked).choices[0].tool_calls[0].name == "get_weather"
    named = {**body, "messages": [{"role": "user", "content": "get_weather for Oslo"}]}
    assert answer_for(named).choices[0].finish_reason == "tool_calls"
    refused = {**asked, "tool_choice": "none"}
    assert answer_for(refused).choices[0].tool_calls == ()


def test_a_tool_result_is_answered_with_text_so_agent_loops_end() -> None:
    ask = {"role": "user", "content": "Please use the weather tool for Oslo."}
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": "{}"},
    }
    history = [ask, {"role": "assistant", "content": None, "tool_calls": [call]},
               {"role": "tool", "tool_call_id": "call_1", "content": "5 C"}]  # fmt: skip
    body = {"model": "gpt-4o", "messages": history, "tools": [WEATHER_TOOL]}
    choice = answer_for(body).choices[0]
    assert choice.tool_calls == () and choice.content and choice.finish_reason == "stop"


def test_json_object_answer_is_a_json_object() -> None:
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Reply in JSON."}],
        "response_format": {"type": "json_object"},
    }
    content = answer_for(body).choices[0].content
    assert content is not None
    parsed = orjson.loads(content)
    assert isinstance(parsed, dict) and isinstance(parsed["answer"], str)


def test_json_schema_answer_conforms_to_required_properties() -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer"},
            "score": {"type": "number"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "address": {"$ref": "#/$defs/address"},
            "nickname": {"type": ["string", "null"]},
            "active": {"type": "boolean"},
        },
        "required": ["name", "age", "score", "tags", "address", "nickname", "active"],
        "additionalProperties": False,
        "$defs": {
            "address": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "zip": {"type": "string"}},
                "required": ["city"],
            }
        },
    }
    body = {
        "model": "gpt-4o",
        "messages": HELLO,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "person", "strict": True, "schema": schema},
        },
    }
    content = answer_for(body).choices[0].content
    assert content is not None
    assert orjson.loads(content) == {
        "name": "example",
        "age": 1,
        "score": 1.5,
        "tags": ["example"],
        "address": {"city": "example"},
        "nickname": "example",
        "active": True,
    }


def test_value_for_schema_simple_types() -> None:
    assert value_for_schema({"type": "string", "format": "date"}) == "2024-09-12"
    assert value_for_schema({"type": "integer", "minimum": 5}) == 5
    assert value_for_schema({"const": "x"}) == "x"
    assert value_for_schema({"anyOf": [{"type": "boolean"}, {"type": "string"}]}) is True
    # Without `required`, every property is filled in.
    assert value_for_schema({"properties": {"a": {"type": "null"}}}) == {"a": None}


def test_truncate_tokens_fits_the_limit() -> None:
    text = answer_text(9)
    for limit in (1, 7, 20):
        cut = truncate_tokens(text, limit)
        assert text.startswith(cut) and count_text(cut) <= limit
    assert truncate_tokens(text, 10_000) is text


def test_tool_call_arguments_are_cut_by_a_tiny_limit() -> None:
    body = {
        "model": "gpt-4o",
        "messages": HELLO,
        "tools": [WEATHER_TOOL],
        "tool_choice": "required",
        "max_tokens": 12,
    }
    choice = answer_for(body).choices[0]
    assert choice.finish_reason == "length" and choice.tokens <= 12
    full = orjson.dumps(value_for_schema(WEATHER_PARAMETERS)).decode()
    assert (
        full.startswith(choice.tool_calls[0].arguments) and choice.tool_calls[0].arguments != full
    )


@pytest.mark.parametrize("n", [1, 2])
def test_streamed_choices_reassemble(n: int) -> None:
    answer = answer_for({"model": "gpt-4o", "messages": HELLO, "n": n})
    chunks = chunks_for(answer, include_usage=False)
    for index in range(n):
        text = "".join(
            c["choices"][0]["delta"].get("content") or ""
            for c in chunks
            if c["choices"][0]["index"] == index
        )
        assert text == answer.choices[index].content
    assert [c["choices"][0]["finish_reason"] for c in chunks[-n:]] == ["stop"] * n
