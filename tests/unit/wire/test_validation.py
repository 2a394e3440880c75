"""Bad input gets a clear OpenAI-shaped 4xx, never a 500: the pure validator (the gateway's
answers to it are `tests/server/wire/test_validation.py`)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gateway.config import ServerConfig
from gateway.simulator import responses, rules
from gateway.simulator.openai_errors import SimError
from gateway.wire.errors import GatewayError
from gateway.wire.validation import (
    check_chat,
    check_completions,
    check_embeddings,
    check_images,
    check_responses,
    check_speech,
    check_training_epochs,
)
from tests.conftest import base_config

LIMITS = ServerConfig()
HELLO = [{"role": "user", "content": "Say hello to the gateway."}]


def chat(**fields: Any) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": HELLO, **fields}


def refusal(payload: dict[str, Any], limits: ServerConfig = LIMITS) -> dict[str, Any]:
    with pytest.raises(GatewayError) as caught:
        check_chat(payload, limits)
    exc = caught.value
    assert exc.status == 400 and exc.type == "invalid_request_error"
    return {"message": exc.message, "param": exc.param, "code": exc.code}


# -- the validator --------------------------------------------------------------------------------


def test_a_normal_request_passes_with_unknown_fields() -> None:
    check_chat(chat(some_future_field={"x": [1]}, metadata={"a": "b"}), LIMITS)
    check_chat(
        chat(
            messages=[
                {"role": "developer", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "data:,"}}]},
                {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "42"},
                {"role": "assistant", "content": "It is 42."},
            ],
            tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}],
            stream=True, stream_options={"include_usage": True}, stop=["\n"],
            max_completion_tokens=1_000_000, n=128, temperature=2, top_p=0.5,
            presence_penalty=-2, frequency_penalty=2.0, max_tokens=None,
        ),
        LIMITS,
    )  # fmt: skip


def test_content_of_the_wrong_type_in_openais_words() -> None:
    bad = chat(messages=[*HELLO, *HELLO, *HELLO, {"role": "user", "content": 5}])
    assert refusal(bad) == {
        "message": "Invalid type for 'messages[3].content': expected one of a string or array "
        "of objects, but got an integer instead.",
        "param": "messages[3].content",
        "code": "invalid_type",
    }


def test_a_function_schema_that_is_no_object_in_openais_words() -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}]
    assert refusal(chat(tools=tools)) == {
        "message": "Invalid schema for function 'f': schema must be a JSON Schema of "
        "'type: \"object\"', got 'type: \"string\"'.",
        "param": "tools[0].function.parameters",
        "code": "invalid_function_parameters",
    }
    # No parameters, or `{}`: a function that takes none.
    for function in ({"name": "f"}, {"name": "f", "parameters": {}}):
        check_chat(chat(tools=[{"type": "function", "function": function}]), LIMITS)


def test_a_response_schema_that_is_no_object_in_openais_words() -> None:
    schema = {"name": "answer", "schema": {"type": "array", "items": {"type": "string"}}}
    assert refusal(chat(response_format={"type": "json_schema", "json_schema": schema})) == {
        "message": "Invalid schema for response_format 'answer': schema must be a JSON Schema "
        "of 'type: \"object\"', got 'type: \"array\"'.",
        "param": "response_format",
        "code": None,
    }
    # No schema, or an object's: as OpenAI takes them.
    for spec in ({"name": "n"}, {"name": "n", "schema": {"type": "object"}}):
        check_chat(chat(response_format={"type": "json_schema", "json_schema": spec}), LIMITS)


def test_absurd_numbers_in_openais_words() -> None:
    assert refusal(chat(max_tokens=-5)) == {
        "message": "Invalid 'max_tokens': integer below minimum value. Expected a value >= 1, "
        "but got -5 instead.",
        "param": "max_tokens",
        "code": "integer_below_min_value",
    }
    huge = refusal(chat(max_completion_tokens=10**12))
    assert huge["code"] == "integer_above_max_value"
    assert huge["message"] == (
        "Invalid 'max_completion_tokens': integer above maximum value. Expected a value <= "
        "1000000, but got 1000000000000 instead."
    )
    # Beyond 64 bits orjson reads a float: still an integer that is too large, not a type error.
    beyond = orjson.loads(
        b'{"model":"m","messages":[{"role":"user","content":"x"}],"n":1' + b"0" * 30 + b"}"
    )
    assert refusal(beyond)["code"] == "integer_above_max_value"
    assert refusal(chat(n=0))["code"] == "integer_below_min_value"
    assert refusal(chat(n=129))["param"] == "n"
    assert refusal(chat(temperature=2.5)) == {
        "message": "Invalid 'temperature': decimal above maximum value. Expected a value <= 2, "
        "but got 2.5 instead.",
        "param": "temperature",
        "code": "decimal_above_max_value",
    }
    assert refusal(chat(top_p=-0.1))["code"] == "decimal_below_min_value"
    assert refusal(chat(presence_penalty=-3))["param"] == "presence_penalty"


def test_bools_and_decimals_are_not_integers() -> None:
    assert refusal(chat(max_tokens=True))["message"] == (
        "Invalid type for 'max_tokens': expected an integer, but got a boolean instead."
    )
    assert refusal(chat(n=1.5))["message"] == (
        "Invalid type for 'n': expected an integer, but got a decimal instead."
    )
    assert refusal(chat(temperature=False))["code"] == "invalid_type"
    assert refusal(chat(top_p="1"))["message"] == (
        "Invalid type for 'top_p': expected a decimal, but got a string instead."
    )


@pytest.mark.parametrize(
    ("payload", "param", "code"),
    [
        ({"messages": HELLO}, "model", "missing_required_parameter"),
        ({"model": "", "messages": HELLO}, "model", "missing_required_parameter"),
        ({"model": 4, "messages": HELLO}, "model", "invalid_type"),
        ({"model": "m" * 257, "messages": HELLO}, "model", "string_above_max_length"),
        ({"model": "gpt-4o"}, "messages", "missing_required_parameter"),
        (chat(messages={"role": "user"}), "messages", "invalid_type"),
        (chat(messages=[]), "messages", "empty_array"),
        (chat(messages=["hi"]), "messages[0]", "invalid_type"),
        (chat(messages=[{"content": "hi"}]), "messages[0].role", "missing_required_parameter"),
        (chat(messages=[{"role": "boss", "content": "hi"}]), "messages[0].role", "invalid_value"),
        (chat(messages=[{"role": "user"}]), "messages[0].content", "missing_required_parameter"),
        (chat(messages=[{"role": "user", "content": None}]), "messages[0].content", "invalid_type"),
        (chat(messages=[{"role": "assistant", "content": None}]), "messages[0].content", "invalid_type"),
        (chat(messages=[{"role": "user", "content": [1]}]), "messages[0].content[0]", "invalid_type"),
        (chat(messages=[{"role": "user", "content": [{}]}]), "messages[0].content[0].type", "missing_required_parameter"),
        (chat(messages=[{"role": "user", "content": [{"type": "text", "text": 1}]}]), "messages[0].content[0].text", "invalid_type"),
        (chat(messages=[{"role": "tool", "content": "x"}]), "messages[0].tool_call_id", "missing_required_parameter"),
        (chat(messages=[{"role": "assistant", "content": None, "tool_calls": 3}]), "messages[0].tool_calls", "invalid_type"),
        (chat(messages=[{"role": "assistant", "tool_calls": True}]), "messages[0].tool_calls", "invalid_type"),
        (chat(messages=[{"role": "assistant", "content": "", "tool_calls": [{"function": "f"}]}]), "messages[0].tool_calls[0].function", "invalid_type"),
        (chat(messages=[{"role": "user", "content": "x", "name": 7}]), "messages[0].name", "invalid_type"),
        (chat(stream="yes"), "stream", "invalid_type"),
        (chat(stream_options=[]), "stream_options", "invalid_type"),
        (chat(stream_options={"include_usage": 1}), "stream_options.include_usage", "invalid_type"),
        (chat(tools={}), "tools", "invalid_type"),
        (chat(tools=[3]), "tools[0]", "invalid_type"),
        (chat(tools=[{"type": "function"}]), "tools[0].function", "missing_required_parameter"),
        (chat(tools=[{"type": "function", "function": {}}]), "tools[0].function.name", "missing_required_parameter"),
        (chat(tools=[{"type": "function", "function": {"name": "f"}}] * 129), "tools", "array_above_max_length"),
        (chat(tool_choice=1), "tool_choice", "invalid_type"),
        (chat(functions={}), "functions", "invalid_type"),
        (chat(functions=[{}]), "functions[0].name", "missing_required_parameter"),
        (chat(functions=[{"name": "f", "parameters": []}]), "functions[0].parameters", "invalid_type"),
        (chat(tools=[{"type": "function", "function": {"name": "f", "parameters": {"properties": {}}}}]), "tools[0].function.parameters", "invalid_function_parameters"),
        (chat(response_format="json"), "response_format", "invalid_type"),
        (chat(response_format={}), "response_format.type", "missing_required_parameter"),
        (chat(response_format={"type": "json_schema"}), "response_format.json_schema", "missing_required_parameter"),
        (chat(response_format={"type": "json_schema", "json_schema": {"name": 1}}), "response_format.json_schema.name", "invalid_type"),
        (chat(response_format={"type": "json_schema", "json_schema": {"name": "n", "schema": []}}), "response_format.json_schema.schema", "invalid_type"),
        (chat(stop=["a", "b", "c", "d", "e"]), "stop", "array_above_max_length"),
        (chat(stop=[1]), "stop[0]", "invalid_type"),
    ],
)  # fmt: skip
def test_each_field_is_named_in_param(payload: dict[str, Any], param: str, code: str) -> None:
    error = refusal(payload)
    assert (error["param"], error["code"]) == (param, code), error


def test_an_unknown_role_lists_the_supported_ones() -> None:
    error = refusal(chat(messages=[{"role": "boss", "content": "hi"}]))
    assert error["message"] == (
        "Invalid value: 'boss'. Supported values are: 'system', 'assistant', 'user', 'function', "
        "'tool', and 'developer'."
    )


def test_message_count_limit() -> None:
    limits = ServerConfig(max_messages=3)
    check_chat(chat(messages=HELLO * 3), limits)
    assert refusal(chat(messages=HELLO * 4), limits) == {
        "message": "Invalid 'messages': array too long. Expected an array with maximum length 3, "
        "but got an array with length 4 instead.",
        "param": "messages",
        "code": "array_above_max_length",
    }
    assert LIMITS.max_messages == 2048


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


def test_nesting_depth_limit_counts_the_body_as_level_one() -> None:
    assert LIMITS.max_json_depth == 64
    check_chat(chat(metadata=nested(63)), LIMITS)
    error = refusal(chat(metadata=nested(64)))
    assert (error["param"], error["code"]) == ("metadata", "nesting_too_deep")
    # orjson's own limit is 1024 levels; 1000 is parsed and then refused here, without recursion.
    deep = orjson.loads(
        b'{"model":"m","messages":[{"role":"user","content":"x"}],"x":'
        + b"[" * 1000
        + b"]" * 1000
        + b"}"
    )
    assert refusal(deep)["code"] == "nesting_too_deep"


def test_the_config_file_and_environment_set_the_limits() -> None:
    config = base_config(O1GW__SERVER__MAX_MESSAGES="10", O1GW__SERVER__MAX_JSON_DEPTH="8")
    assert (config.server.max_messages, config.server.max_json_depth) == (10, 8)


# -- the Responses API ---------------------------------------------------------------------------


def responses_refusal(payload: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(GatewayError) as caught:
        check_responses(payload, LIMITS)
    exc = caught.value
    assert exc.status == 400 and exc.type == "invalid_request_error"
    return {"message": exc.message, "param": exc.param, "code": exc.code}


@pytest.mark.parametrize(
    "payload",
    [
        {"model": "gpt-4o", "input": "Hello"},
        {"model": "auto", "input": [{"role": "user", "content": "Hi"}], "stream": True},
        {"model": "gpt-4o", "previous_response_id": "resp_1"},  # input may come from there
        {"model": "gpt-4o", "input": "x", "max_output_tokens": 16, "temperature": 2, "top_p": 0},
        {"model": "gpt-4o", "input": "x", "tools": [{"type": "web_search"}], "text": {}},
    ],
)
def test_sound_responses_requests_pass(payload: dict[str, Any]) -> None:
    check_responses(payload, LIMITS)


@pytest.mark.parametrize(
    ("payload", "param", "code"),
    [
        ({"input": "x"}, "model", "missing_required_parameter"),
        ({"model": 4, "input": "x"}, "model", "invalid_type"),
        ({"model": "gpt-4o"}, "input", "missing_required_parameter"),
        ({"model": "gpt-4o", "input": 3}, "input", "invalid_type"),
        ({"model": "gpt-4o", "input": ["hi"]}, "input[0]", "invalid_type"),
        ({"model": "gpt-4o", "input": "x", "max_output_tokens": 15}, "max_output_tokens",
         "integer_below_min_value"),
        ({"model": "gpt-4o", "input": "x", "temperature": 3}, "temperature",
         "decimal_above_max_value"),
        ({"model": "gpt-4o", "input": "x", "max_tool_calls": -1}, "max_tool_calls",
         "integer_below_min_value"),
        ({"model": "gpt-4o", "input": "x", "max_tool_calls": "8"}, "max_tool_calls",
         "invalid_type"),
        ({"model": "gpt-4o", "input": "x", "stream": "yes"}, "stream", "invalid_type"),
        ({"model": "gpt-4o", "input": "x", "store": 1}, "store", "invalid_type"),
        ({"model": "gpt-4o", "input": "x", "instructions": {}}, "instructions", "invalid_type"),
        ({"model": "gpt-4o", "input": "x", "text": "json"}, "text", "invalid_type"),
        ({"model": "gpt-4o", "input": "x", "tools": {}}, "tools", "invalid_type"),
        ({"model": "gpt-4o", "input": "x", "tools": [{"type": "function"}]}, "tools[0].name",
         "missing_required_parameter"),
        ({"model": "gpt-4o", "input": "x", "tool_choice": 1}, "tool_choice", "invalid_type"),
        ({"model": "gpt-4o", "input": "x", "text": {"format": {"type": "json_schema"}}},
         "text.format.name", "missing_required_parameter"),
        ({"model": "gpt-4o", "input": "x", "text": {"format": {"type": "json_schema", "name": "n",
          "schema": {"type": "string"}}}}, "text.format.schema", None),
    ],
)  # fmt: skip
def test_bad_responses_requests_name_the_field(
    payload: dict[str, Any], param: str, code: str | None
) -> None:
    refused = responses_refusal(payload)
    assert (refused["param"], refused["code"]) == (param, code)


def test_a_responses_request_nested_too_deep_is_refused() -> None:
    deep: Any = "x"
    for _ in range(LIMITS.max_json_depth + 2):
        deep = {"a": deep}
    assert responses_refusal({"model": "gpt-4o", "input": "x", "metadata": deep})["code"] == (
        "nesting_too_deep"
    )


INSTRUCT = {"model": "gpt-3.5-turbo-instruct"}


@pytest.mark.parametrize(
    ("check", "payload"),
    [
        (check_completions, {**INSTRUCT, "prompt": "Hi", "max_tokens": 0, "best_of": 20, "n": 5}),
        (check_completions, {**INSTRUCT, "prompt": ["a", "b"], "max_tokens": None}),
        (check_completions, {**INSTRUCT, "prompt": [1, 2, True]}),
        (check_completions, {**INSTRUCT, "prompt": [[1, 2], [3]], "suffix": "end"}),
        (check_completions, {**INSTRUCT, "prompt": []}),
        (check_embeddings, {"model": "text-embedding-3-small", "input": "x", "dimensions": 256}),
        (check_embeddings, {"model": "text-embedding-3-small", "input": [[1], [2, 3]]}),
        (check_images, {"model": "dall-e-2", "prompt": "a cat", "n": 10, "size": "256x256"}),
        (check_images, {"model": "gpt-image-1", "prompt": "a", "stream": True, "partial_images": 0}),
        (check_speech, {"model": "tts-1", "input": "a" * 4096, "voice": "alloy", "speed": 0.25}),
        (check_speech, {"model": "tts-1", "input": "hi", "voice": {"id": "v"}, "speed": 4}),
    ],
)  # fmt: skip
def test_what_openai_takes_on_the_other_governed_endpoints_passes(
    check: Any, payload: dict[str, Any]
) -> None:
    check(payload)


@pytest.mark.parametrize(
    ("check", "payload", "param", "code"),
    [
        (check_completions, {**INSTRUCT, "prompt": "Hi", "max_tokens": True}, "max_tokens",
         "invalid_type"),
        (check_completions, {**INSTRUCT, "prompt": "Hi", "best_of": 2.0}, "best_of",
         "invalid_type"),
        (check_completions, {**INSTRUCT, "prompt": ["a", 1]}, "prompt[1]", "invalid_type"),
        (check_completions, {**INSTRUCT, "prompt": [[1], [2, "3"]]}, "prompt[1][1]",
         "invalid_type"),
        (check_completions, {**INSTRUCT, "prompt": [None]}, "prompt[0]", "invalid_type"),
        (check_completions, {"prompt": "Hi"}, "model", "missing_required_parameter"),
        (check_embeddings, {"model": "text-embedding-3-small"}, "input",
         "missing_required_parameter"),
        (check_embeddings, {"model": "text-embedding-3-small", "input": "x", "dimensions": 0},
         "dimensions", "integer_below_min_value"),
        (check_images, {"model": "dall-e-2"}, "prompt", "missing_required_parameter"),
        (check_images, {"model": "dall-e-2", "prompt": "a", "n": 0}, "n",
         "integer_below_min_value"),
        (check_images, {"model": "dall-e-2", "prompt": "a", "quality": 1}, "quality",
         "invalid_type"),
        (check_images, {"model": "gpt-image-1", "prompt": "a", "partial_images": 4},
         "partial_images", "integer_above_max_value"),
        (check_speech, {"model": "tts-1", "input": "hi", "speed": True}, "speed", "invalid_type"),
        (check_speech, {"model": "tts-1", "input": "hi", "speed": 4.5}, "speed",
         "decimal_above_max_value"),
    ],
)  # fmt: skip
def test_the_other_governed_endpoints_name_what_they_refuse(
    check: Any, payload: dict[str, Any], param: str, code: str
) -> None:
    with pytest.raises(GatewayError) as caught:
        check(payload)
    exc = caught.value
    assert (exc.status, exc.type, exc.param, exc.code) == (
        400,
        "invalid_request_error",
        param,
        code,
    )


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"reasoning": {"summary": "bogus"}}, "reasoning.summary"),
        ({"reasoning": {"summary": 3}}, "reasoning.summary"),
        ({"top_logprobs": 21}, "top_logprobs"),
        ({"top_logprobs": "5"}, "top_logprobs"),
        # Translated for o1, where the emulation would choose as if `auto`.
        ({"tool_choice": "bogus"}, "tool_choice"),
        ({"tool_choice": {"type": "function"}}, "tool_choice.name"),
        ({"truncation": "bogus"}, "truncation"),
    ],
)
def test_responses_values_every_model_refuses_are_refused_in_upstreams_words(
    fields: dict[str, Any], param: str
) -> None:
    # The patches drop `reasoning` for gpt-4o and `top_logprobs` for o1, the translation for o1
    # turns the choice into chat's and sends no truncation: these would go unseen.
    payload = {"model": "gpt-4o", "input": "Hi", **fields}
    model = responses.resolve_model(payload)
    assert not isinstance(model, SimError)
    upstream = responses.check(payload, model)
    assert upstream is not None and upstream.param == param
    with pytest.raises(GatewayError) as refused:
        check_responses(payload, LIMITS)
    error = refused.value
    assert (error.status, error.message, error.param, error.code) == (
        upstream.status, upstream.message, upstream.param, upstream.code,
    )  # fmt: skip


@pytest.mark.parametrize(
    "fields",
    [
        {"temperature": "hot"},
        {"top_p": 1.5},
        {"n": 0},
        {"n": 2.5},
        {"presence_penalty": 3},
        {"frequency_penalty": -2.5},
    ],
)
def test_sampling_values_are_refused_in_the_simulated_upstreams_words(
    fields: dict[str, Any],
) -> None:
    payload = chat(model="gpt-4o", **fields)
    upstream = rules.check(payload)
    assert upstream is not None
    with pytest.raises(GatewayError) as refused:
        check_chat(payload, LIMITS)
    error = refused.value
    assert (error.status, error.message, error.param, error.code) == (
        upstream.status, upstream.message, upstream.param, upstream.code,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("hyperparameters", "param", "code"),
    [
        ({"n_epochs": "50"}, "hyperparameters.n_epochs", "invalid_type"),
        ({"n_epochs": 50.0}, "hyperparameters.n_epochs", "invalid_type"),
        ({"n_epochs": True}, "hyperparameters.n_epochs", "invalid_type"),
        ({"n_epochs": 0}, "hyperparameters.n_epochs", "integer_below_min_value"),
        ({"n_epochs": 51}, "hyperparameters.n_epochs", "integer_above_max_value"),
        ("4", "hyperparameters", "invalid_type"),
    ],
)
def test_a_fine_tuning_jobs_epochs_are_auto_or_an_integer_from_1_to_50(
    hyperparameters: Any, param: str, code: str
) -> None:
    """Held as `auto`, a count a lenient upstream reads ("50", 50.0) would train more epochs
    than were held: refused, wherever upstream may read it."""
    for payload, where in (
        ({"hyperparameters": hyperparameters}, param),
        (
            {"method": {"type": "dpo", "dpo": {"hyperparameters": hyperparameters}}},
            param.replace("hyperparameters", "method.dpo.hyperparameters"),
        ),
    ):
        with pytest.raises(GatewayError) as refused:
            check_training_epochs(payload)
        assert (refused.value.param, refused.value.code) == (where, code)
    for fine in ({"n_epochs": "auto"}, {"n_epochs": 1}, {"n_epochs": 50}, {}):
        check_training_epochs({"hyperparameters": fine})
    # A method without a type nests nothing upstream reads.
    check_training_epochs({"method": {"dpo": {"hyperparameters": hyperparameters}}})
