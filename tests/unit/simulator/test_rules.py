"""rules.check(): every row of the o1 error table, exactly, plus the generic validation."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gateway.simulator import fine_tuning
from gateway.simulator.batches import check_create
from gateway.simulator.rules import CHAT_MODELS, SimError, check, resolve_chat_model

USER = {"role": "user", "content": "Hello"}
IRE = "invalid_request_error"


def o1(**extra: Any) -> dict[str, Any]:
    return {"model": "o1-preview", "messages": [USER], **extra}


def error(status: int, message: str, param: str | None, code: str | None) -> tuple[int, Any]:
    return status, {"error": {"message": message, "type": IRE, "param": param, "code": code}}


def as_response(err: SimError | None) -> tuple[int, Any]:
    assert err is not None, "expected the request to be refused"
    return err.status, orjson.loads(err.body())


# One row per documented o1-era request rule, in the order of the reference table.
FACTS_TABLE = [
    pytest.param(
        {"messages": [{"role": "system", "content": "Be brief."}, USER]},
        error(
            400,
            "Unsupported value: 'messages[0].role' does not support 'system' with this model.",
            "messages[0].role",
            "unsupported_value",
        ),
        id="system-role",
    ),
    pytest.param(
        {"messages": [{"role": "developer", "content": "Be brief."}, USER]},
        error(
            400,
            "Unsupported value: 'messages[0].role' does not support 'developer' with this model.",
            "messages[0].role",
            "unsupported_value",
        ),
        id="developer-role",
    ),
    pytest.param(
        {"stream": True},
        error(
            400,
            "Unsupported value: 'stream' does not support true with this model. "
            "Only the default (false) value is supported.",
            "stream",
            "unsupported_value",
        ),
        id="stream",
    ),
    pytest.param(
        {"max_tokens": 100},
        error(
            400,
            "Unsupported parameter: 'max_tokens' is not supported with this model. "
            "Use 'max_completion_tokens' instead.",
            "max_tokens",
            "unsupported_parameter",
        ),
        id="max_tokens",
    ),
    pytest.param(
        {"temperature": 0.2},
        error(
            400,
            "Unsupported value: 'temperature' does not support 0.2 with this model. "
            "Only the default (1) value is supported.",
            "temperature",
            "unsupported_value",
        ),
        id="temperature",
    ),
    *[
        pytest.param(
            {name: value},
            error(
                400,
                f"Unsupported parameter: '{name}' is not supported with this model.",
                name,
                "unsupported_parameter",
            ),
            id=name,
        )
        for name, value in [
            ("top_p", 0.5),
            ("presence_penalty", 0.5),
            ("frequency_penalty", -1),
            ("n", 2),
            ("logprobs", True),
            ("top_logprobs", 2),
            ("stop", ["\n"]),
            ("functions", [{"name": "f", "parameters": {}}]),
        ]
    ],
    pytest.param(
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]},
        error(
            404,
            "tools is not supported in this model. For a list of supported models, refer to "
            "https://platform.openai.com/docs/guides/function-calling"
            "#models-supporting-function-calling.",
            None,
            None,
        ),
        id="tools",
    ),
    pytest.param(
        {"function_call": "auto"},
        error(
            400,
            "Unsupported parameter: 'function_call' is not supported with this model.",
            "function_call",
            "unsupported_parameter",
        ),
        id="function_call",
    ),
    pytest.param(
        {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}},
        error(
            400,
            "Invalid parameter: 'response_format' of type 'json_schema' is not supported with "
            "this model.",
            "response_format",
            None,
        ),
        id="response_format-json_schema",
    ),
    pytest.param(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
                    ],
                }
            ]
        },
        error(
            400,
            "Invalid content type. image_url is only supported by certain models.",
            "messages.[0].content.[1].type",
            None,
        ),
        id="image-part",
    ),
    pytest.param(
        {"model": "o1"},
        error(
            404,
            "The model `o1` does not exist or you do not have access to it.",
            None,
            "model_not_found",
        ),
        id="no-such-model",
    ),
    pytest.param(
        {"messages": [{"role": "user", "content": "hello " * 130_000}]},
        error(
            400,
            "This model's maximum context length is 128000 tokens. However, your messages "
            "resulted in 130008 tokens. Please reduce the length of the messages.",
            "messages",
            "context_length_exceeded",
        ),
        id="context-too-long",
    ),
]


@pytest.mark.parametrize(("extra", "expected"), FACTS_TABLE)
def test_facts_table_row(extra: dict[str, Any], expected: tuple[int, Any]) -> None:
    assert as_response(check(o1(**extra))) == expected


@pytest.mark.parametrize("model", ["o1-mini", "o1-mini-2024-09-12", "o1-preview-2024-09-12"])
def test_every_o1_name_refuses_system_messages(model: str) -> None:
    body = {"model": model, "messages": [{"role": "system", "content": "x"}, USER]}
    status, payload = as_response(check(body))
    assert status == 400 and payload["error"]["code"] == "unsupported_value"


def test_defaults_sent_explicitly_are_accepted_by_o1() -> None:
    body = o1(
        temperature=1,
        top_p=1,
        n=1,
        presence_penalty=0,
        frequency_penalty=0,
        logprobs=False,
        stream=False,
        max_completion_tokens=1000,
        response_format={"type": "text"},
    )
    assert check(body) is None


def test_only_the_first_offending_parameter_is_reported() -> None:
    body = o1(stream=True, max_tokens=10, temperature=0.5)
    body["messages"] = [{"role": "system", "content": "x"}, USER]
    status, payload = as_response(check(body))
    assert (status, payload["error"]["param"]) == (400, "messages[0].role")
    body["messages"] = [USER]
    assert as_response(check(body))[1]["error"]["param"] == "stream"
    del body["stream"]
    assert as_response(check(body))[1]["error"]["param"] == "max_tokens"


def test_offending_message_index_is_reported() -> None:
    body = o1(
        messages=[
            USER,
            {"role": "assistant", "content": "Hi"},
            {"role": "tool", "content": "r", "tool_call_id": "c"},
        ]
    )
    status, payload = as_response(check(body))
    assert (status, payload["error"]["param"]) == (400, "messages[2].role")
    assert "does not support 'tool'" in payload["error"]["message"]


def test_temperature_value_is_echoed_as_sent() -> None:
    _, payload = as_response(check(o1(temperature=0)))
    assert payload["error"]["message"].startswith(
        "Unsupported value: 'temperature' does not support 0 with this model."
    )


def test_o1_streaming_switch_simulates_november_2024() -> None:
    assert check(o1(stream=True), o1_streaming=True) is None
    # The switch only lifts streaming: everything else o1 refused stays refused.
    status, payload = as_response(check(o1(stream=True, max_tokens=5), o1_streaming=True))
    assert (status, payload["error"]["param"]) == (400, "max_tokens")


def test_gpt4o_accepts_what_o1_refuses() -> None:
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "system", "content": "Answer in json."}, USER],
        "stream": True,
        "max_tokens": 100,
        "temperature": 0.2,
        "top_p": 0.9,
        "n": 3,
        "logprobs": True,
        "top_logprobs": 2,
        "stop": ["\n"],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
        "tool_choice": "auto",
        "response_format": {"type": "json_object"},
    }
    assert check(body) is None
    assert check({**body, "model": "gpt-4o-mini-2024-07-18"}) is None


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            {"messages": [USER]},
            (400, "you must provide a model parameter", None, None),
            id="missing-model",
        ),
        pytest.param(
            {"model": "gpt-4o"},
            (
                400,
                "Missing required parameter: 'messages'.",
                "messages",
                "missing_required_parameter",
            ),
            id="missing-messages",
        ),
        pytest.param(
            {"model": "gpt-4o", "messages": []},
            (
                400,
                "Invalid 'messages': empty array. Expected an array with minimum length 1, "
                "but got an empty array instead.",
                "messages",
                "empty_array",
            ),
            id="empty-messages",
        ),
        pytest.param(
            {"model": "gpt-4o", "messages": "hi"},
            (
                400,
                "Invalid type for 'messages': expected an array of objects, but got a string instead.",
                "messages",
                "invalid_type",
            ),
            id="messages-not-array",
        ),
        pytest.param(
            {"model": "gpt-4o", "messages": [USER, {"role": "robot", "content": "x"}]},
            (
                400,
                "Invalid value: 'robot'. Supported values are: 'system', 'assistant', 'user', "
                "'function', and 'tool'.",
                "messages[1].role",
                "invalid_value",
            ),
            id="bad-role",
        ),
        pytest.param(
            {"model": "gpt-4o", "messages": [{"content": "x"}]},
            (
                400,
                "Missing required parameter: 'messages[0].role'.",
                "messages[0].role",
                "missing_required_parameter",
            ),
            id="missing-role",
        ),
        pytest.param(
            {"model": "gpt-4o", "messages": [{"role": "user"}]},
            (
                400,
                "Missing required parameter: 'messages[0].content'.",
                "messages[0].content",
                "missing_required_parameter",
            ),
            id="missing-content",
        ),
        pytest.param(
            {"model": "gpt-4o", "messages": [USER], "max_tokens": 20000},
            (
                400,
                "max_tokens is too large: 20000. This model supports at most 16384 completion "
                "tokens, whereas you provided 20000.",
                "max_tokens",
                None,
            ),
            id="max_tokens-above-max-output",
        ),
        pytest.param(
            {"model": "o1-preview", "messages": [USER], "max_completion_tokens": 40000},
            (
                400,
                "max_completion_tokens is too large: 40000. This model supports at most 32768 "
                "completion tokens, whereas you provided 40000.",
                "max_completion_tokens",
                None,
            ),
            id="max_completion_tokens-above-max-output",
        ),
        pytest.param(
            {"model": "gpt-4o", "messages": [USER], "max_tokens": 0},
            (
                400,
                "Invalid 'max_tokens': integer below minimum value. Expected a value >= 1, "
                "but got 0 instead.",
                "max_tokens",
                "integer_below_min_value",
            ),
            id="max_tokens-zero",
        ),
        pytest.param(
            {"model": "gpt-4o", "messages": [USER], "temperature": 3},
            (
                400,
                "Invalid 'temperature': decimal above maximum value. Expected a value <= 2, "
                "but got 3 instead.",
                "temperature",
                "decimal_above_max_value",
            ),
            id="temperature-range",
        ),
        pytest.param(
            {"model": "gpt-4o", "messages": [USER], "stream_options": {"include_usage": True}},
            (
                400,
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                "stream_options",
                None,
            ),
            id="stream_options-without-stream",
        ),
        pytest.param(
            {
                "model": "o1-mini",
                "messages": [USER],
                "stream": False,
                "stream_options": {"include_usage": True},
            },
            (
                400,
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                "stream_options",
                None,
            ),
            id="stream_options-with-stream-false",
        ),
        pytest.param(
            {"model": "gpt-4o", "messages": [USER], "foo": 1},
            (400, "Unrecognized request argument supplied: foo", None, None),
            id="unknown-argument",
        ),
        pytest.param(
            {"model": "gpt-4o", "messages": [USER], "tool_choice": "auto"},
            (
                400,
                "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are "
                "specified.",
                "tool_choice",
                None,
            ),
            id="tool_choice-without-tools",
        ),
        pytest.param(
            {"model": "gpt-4o", "messages": [USER], "response_format": {"type": "json_object"}},
            (
                400,
                "'messages' must contain the word 'json' in some form, to use 'response_format' "
                "of type 'json_object'.",
                "messages",
                None,
            ),
            id="json_object-without-json-word",
        ),
        pytest.param(
            {
                "model": "gpt-4o",
                "messages": [{"role": "user", "content": "word " * 127_000}],
                "max_tokens": 2000,
            },
            (
                400,
                "This model's maximum context length is 128000 tokens. However, you requested "
                "129008 tokens (127008 in the messages, 2000 in the completion). Please reduce "
                "the length of the messages or completion.",
                "messages",
                "context_length_exceeded",
            ),
            id="context-with-completion",
        ),
    ],
)
def test_generic_validation(body: dict[str, Any], expected: tuple[Any, ...]) -> None:
    status, message, param, code = expected
    assert as_response(check(body)) == error(status, message, param, code)


def test_precomputed_prompt_tokens_are_used_for_the_context_check() -> None:
    body = {"model": "gpt-4o", "messages": [USER]}
    assert check(body) is None
    status, payload = as_response(check(body, prompt_tokens=200_000))
    assert (status, payload["error"]["code"]) == (400, "context_length_exceeded")
    assert "resulted in 200000 tokens" in payload["error"]["message"]


def test_short_names_resolve_to_dated_snapshots() -> None:
    pairs = {
        "gpt-4o": "gpt-4o-2024-08-06",
        "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
        "o1-preview": "o1-preview-2024-09-12",
        "o1-mini": "o1-mini-2024-09-12",
    }
    for short, snapshot in pairs.items():
        assert resolve_chat_model(short) is resolve_chat_model(snapshot)
        model = resolve_chat_model(short)
        assert model is not None and model.snapshot == snapshot
    assert resolve_chat_model("gpt-4") is None
    assert len(CHAT_MODELS) == 8
    mini = resolve_chat_model("o1-mini")
    assert mini is not None and mini.max_output == 65_536 and mini.family.reasoning


@pytest.mark.parametrize(
    ("metadata", "param"),
    [
        ({f"k{i}": "v" for i in range(17)}, "metadata"),
        ({"k" * 65: "v"}, "metadata"),
        ({"k": "v" * 513}, "metadata.k"),
        ({"k": 1}, "metadata.k"),
    ],
)
def test_chat_metadata_past_openais_limits_is_refused(metadata: Any, param: str) -> None:
    body = {"model": "o1-mini", "store": True, "metadata": metadata,
            "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
    status, payload = as_response(check(body))
    assert (status, payload["error"]["param"]) == (400, param)
    assert check({**body, "metadata": {"k" * 64: "v" * 512}}) is None


def test_batch_metadata_past_openais_limits_is_refused() -> None:
    body = {"input_file_id": "file-1", "endpoint": "/v1/chat/completions",
            "completion_window": "24h", "metadata": {"k": "v" * 513}}  # fmt: skip
    status, payload = as_response(check_create(body))
    assert (status, payload["error"]["param"]) == (400, "metadata.k")
    assert check_create({**body, "metadata": {"k": "v"}}) is None


def test_fine_tuning_metadata_past_openais_limits_is_refused() -> None:
    body = {"model": "gpt-4o-mini-2024-07-18", "training_file": "file-1",
            "metadata": {f"k{i}": "v" for i in range(17)}}  # fmt: skip
    refused = fine_tuning.check_create(body)
    assert isinstance(refused, SimError)
    assert (refused.status, orjson.loads(refused.body())["error"]["param"]) == (400, "metadata")
    assert not isinstance(fine_tuning.check_create({**body, "metadata": {"k": "v"}}), SimError)
