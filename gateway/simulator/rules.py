"""What the simulated models accept, and the exact error for a request they would refuse.

Pure: `check()` looks only at the request body it is given (and an optional precomputed prompt
token count); it reads no clock, environment or files.

The facts are those of September 2024 (o1-preview/o1-mini launch week). o1-preview and o1-mini
accept only `user` and `assistant` messages, no streaming (until 2024-11-20: pass
`o1_streaming=True`), no tools, functions or `response_format`, no logprobs, no images, no
`max_tokens` and no `reasoning_effort`; `temperature`, `top_p` and `n` must be 1 and the
penalties 0 when sent at all.

The GPT-6 models of today (served once the simulator's day reaches their release, lifecycle.py)
take every role, streaming, images and structured outputs, but no `max_tokens`; they take a
`reasoning_effort` from their own range (efforts.py), and function tools and free sampling only
at effort `none`, which of them only gpt-6-luna has.

Check order (OpenAI reports only the first problem, so the order is part of the behaviour):

1. `model` present (400), then known (404 `model_not_found`).
2. Unknown request arguments (400 "Unrecognized request argument supplied").
3. `messages`: present, an array, not empty; each one an object with a valid `role` and,
   except for assistant messages, `content` of a valid type; then `stream_options` without
   `stream: true` (400, whatever the model).
4. Model capabilities, in this order: message roles, image parts, `stream`, `max_tokens`,
   `reasoning_effort`, `temperature`, `top_p`, `n`, `presence_penalty`, `frequency_penalty`,
   `logprobs`, `top_logprobs`, `stop`, `tools` (404; 400 at an effort on GPT-6), `functions`,
   `function_call`, `response_format`.
   Roles come first because the role error is the one everybody meets first in practice.
5. Generic values: `max_completion_tokens`/`max_tokens` type, minimum and the model's maximum
   output, then what the gateway checks too: `n`, `temperature`, `top_p` and penalty ranges
   (`validation.sampling_value_error`), `logprobs`, `top_logprobs`, `logit_bias`,
   `parallel_tool_calls`, `tool_choice` or `parallel_tool_calls` without `tools`
   (`validation.chat_value_error`);
   `json_object` without the word "json".
6. Context length (prompt alone, then prompt plus requested output).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from gateway.simulator import openai_errors as oe
from gateway.simulator.efforts import EFFORTS, effort_error, effort_of
from gateway.simulator.openai_errors import SimError
from gateway.wire.tokens import count_messages
from gateway.wire.validation import chat_value_error, metadata_error, sampling_value_error

__all__ = [
    "CHAT_MODELS",
    "GPT6_MODELS",
    "ChatModel",
    "Family",
    "SimError",
    "check",
    "requested_output",
    "resolve_chat_model",
]


@dataclass(frozen=True, slots=True)
class Family:
    """Capabilities shared by a model and its dated snapshots."""

    name: str
    roles: frozenset[str]
    streaming: bool
    tools: bool
    response_format: bool
    logprobs: bool
    images: bool
    max_tokens: bool
    # temperature/top_p/n/penalties freely settable (False: only their defaults are accepted)
    sampling: bool
    reasoning: bool
    # Served by the Responses API (launch-era o1 was refused there).
    responses_api: bool
    # `reasoning_effort` values taken (empty: the parameter is refused) and the default.
    efforts: tuple[str, ...] = ()
    default_effort: str | None = None
    # Chat function tools, logprobs, `stop` and free sampling only at effort `none`.
    plain_only_at_no_effort: bool = False

    def plain(self, effort: str | None) -> bool:
        """Whether the model answers as a non-reasoning model at `effort`."""
        return self.plain_only_at_no_effort and effort == "none"


@dataclass(frozen=True, slots=True)
class ChatModel:
    snapshot: str
    family: Family
    context: int
    max_output: int
    system_fingerprint: str
    # Its usage reports the prompt tokens written to the prompt cache (`cache_write_tokens`),
    # which it bills dearer than input (the models with a cache-write price).
    writes_cache: bool = False


# OpenAI's schema knew these roles in September 2024; `developer` arrived in December 2024 but
# the o1 error table already quotes it, so it is accepted by the schema and refused per model.
KNOWN_ROLES = frozenset({"system", "user", "assistant", "tool", "function", "developer"})

GPT4O = Family(
    name="gpt-4o",
    roles=frozenset({"system", "user", "assistant", "tool", "function"}),
    streaming=True,
    tools=True,
    response_format=True,
    logprobs=True,
    images=True,
    max_tokens=True,
    sampling=True,
    reasoning=False,
    responses_api=True,
)
O1 = Family(
    name="o1",
    roles=frozenset({"user", "assistant"}),
    streaming=False,
    tools=False,
    response_format=False,
    logprobs=False,
    images=False,
    max_tokens=False,
    sampling=False,
    reasoning=True,
    responses_api=False,
)
# Today's reasoning models: tools, logprobs and sampling at effort none only, and none of these
# takes none; so, as OpenAI's tables put it, chat without tools and tools only on Responses.
GPT6 = Family(
    name="gpt-6",
    roles=KNOWN_ROLES,
    streaming=True,
    tools=True,
    response_format=True,
    logprobs=False,
    images=True,
    max_tokens=False,
    sampling=False,
    reasoning=True,
    responses_api=True,
    efforts=EFFORTS[2:],
    default_effort="medium",
    plain_only_at_no_effort=True,
)
# Default effort none and temperature only at none, like gpt-5.1 and gpt-5.2 (assumed: the
# model's table says only "none..max" and "chat function calling only with effort none").
GPT6_LUNA = replace(GPT6, name="gpt-6-luna", efforts=EFFORTS, default_effort="none")

_GPT4O = ChatModel("gpt-4o-2024-08-06", GPT4O, 128_000, 16_384, "fp_2f406b9113")
_GPT4O_MINI = ChatModel("gpt-4o-mini-2024-07-18", GPT4O, 128_000, 16_384, "fp_0ba0d124f1")
_O1_PREVIEW = ChatModel("o1-preview-2024-09-12", O1, 128_000, 32_768, "fp_49f580698f")
_O1_MINI = ChatModel("o1-mini-2024-09-12", O1, 128_000, 65_536, "fp_f7eab99a33")
# No dated snapshots are known for these; the fingerprints are made up.
_GPT6_CONTEXT = 1_050_000
_GPT6_OUTPUT = 128_000
_GPT6_ASTRA = ChatModel(
    "gpt-6-astra", GPT6, _GPT6_CONTEXT, _GPT6_OUTPUT, "fp_6a57a0c2e1", writes_cache=True
)
_GPT6_LUNA = ChatModel(
    "gpt-6-luna", GPT6_LUNA, _GPT6_CONTEXT, _GPT6_OUTPUT, "fp_6c1a7e04b9", writes_cache=True
)
_GPT61_SOL = ChatModel(
    "gpt-6.1-sol", GPT6, _GPT6_CONTEXT, _GPT6_OUTPUT, "fp_61d5f2a0c3", writes_cache=True
)
_GPT62_ASTRA = ChatModel("gpt-6.2-astra", GPT6, _GPT6_CONTEXT, _GPT6_OUTPUT, "fp_62a3b9d714")

# Short names answer with the dated snapshot in `model`, as OpenAI does (gpt-4o pointed at
# 2024-05-13 until 2024-10-02; the simulator follows the later alias, like the gateway config).
CHAT_MODELS: dict[str, ChatModel] = {
    "gpt-4o": _GPT4O,
    "gpt-4o-2024-08-06": _GPT4O,
    "gpt-4o-mini": _GPT4O_MINI,
    "gpt-4o-mini-2024-07-18": _GPT4O_MINI,
    "o1-preview": _O1_PREVIEW,
    "o1-preview-2024-09-12": _O1_PREVIEW,
    "o1-mini": _O1_MINI,
    "o1-mini-2024-09-12": _O1_MINI,
}
# Today's models, which the simulator serves from their release (lifecycle.py).
GPT6_MODELS: dict[str, ChatModel] = {
    "gpt-6-astra": _GPT6_ASTRA,
    "gpt-6-luna": _GPT6_LUNA,
    "gpt-6.1-sol": _GPT61_SOL,
    "gpt-6.2-astra": _GPT62_ASTRA,
}

# Chat Completions request arguments as of October 2024 (store/metadata arrived 2024-10-01).
KNOWN_ARGUMENTS = frozenset(
    {
        "model",
        "messages",
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "max_tokens",
        "max_completion_tokens",
        "n",
        "presence_penalty",
        "response_format",
        "seed",
        "service_tier",
        "stop",
        "stream",
        "stream_options",
        "temperature",
        "top_p",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "user",
        "function_call",
        "functions",
        "store",
        "metadata",
        # Later additions (reasoning_effort: December 2024; o1-preview and o1-mini refuse it), accepted so a gateway of today can send them (2025).
        "safety_identifier",
        "prompt_cache_key",
        "reasoning_effort",
    }
)

# Parameters o1 accepts only at their default; the value each must equal when sent.
_FIXED_DEFAULTS: tuple[tuple[str, float], ...] = (
    ("top_p", 1),
    ("n", 1),
    ("presence_penalty", 0),
    ("frequency_penalty", 0),
)


def resolve_chat_model(name: str) -> ChatModel | None:
    return CHAT_MODELS.get(name) or GPT6_MODELS.get(name)


def requested_output(body: dict[str, Any]) -> int | None:
    """The output cap the request asks for: `max_completion_tokens`, else `max_tokens`."""
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def check(
    body: dict[str, Any],
    *,
    o1_streaming: bool = False,
    prompt_tokens: int | None = None,
) -> SimError | None:
    """The error OpenAI would answer this chat completion request with, or None if it is fine.

    `o1_streaming` simulates the November 2024 o1 models that accept `stream: true`.
    `prompt_tokens` saves a second count when the caller already has it.
    """
    model_name = body.get("model")
    if not isinstance(model_name, str) or not model_name:
        return oe.missing_model()
    model = resolve_chat_model(model_name)
    if model is None:
        return oe.model_not_found(model_name)
    for name in body:
        if name not in KNOWN_ARGUMENTS:
            return oe.unrecognized_argument(name)
    error = _check_messages(body)
    if error is None and body.get("stream_options") is not None and body.get("stream") is not True:
        error = oe.stream_options_without_stream()
    if error is None:
        error = _check_capabilities(body, model_name, model.family, o1_streaming)
    if error is None:
        error = _check_values(body, model)
    if error is not None:
        return error
    tokens = prompt_tokens if prompt_tokens is not None else count_messages(body["messages"])
    if tokens > model.context:
        return oe.context_length_exceeded(model.context, tokens)
    output = requested_output(body) or 0
    if tokens + output > model.context:
        return oe.context_length_exceeded(model.context, tokens, output)
    return None


def _check_messages(body: dict[str, Any]) -> SimError | None:
    if "messages" not in body or body["messages"] is None:
        return oe.missing_parameter("messages")
    messages = body["messages"]
    if not isinstance(messages, list):
        return oe.invalid_type("messages", "an array of objects", messages)
    if not messages:
        return oe.empty_array("messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            return oe.invalid_type(f"messages[{i}]", "an object", message)
        if "role" not in message:
            return oe.missing_parameter(f"messages[{i}].role")
        role = message["role"]
        if role not in KNOWN_ROLES:
            return oe.invalid_role(i, role)
        content = message.get("content")
        if role != "assistant" and content is None:
            return oe.missing_parameter(f"messages[{i}].content")
        if content is not None and not isinstance(content, str | list):
            return oe.invalid_type(
                f"messages[{i}].content", "one of a string or array of objects", content
            )
    return None


def _check_capabilities(
    body: dict[str, Any], model_name: str, family: Family, o1_streaming: bool
) -> SimError | None:
    messages: list[dict[str, Any]] = body["messages"]
    for i, message in enumerate(messages):
        if message["role"] not in family.roles:
            return oe.unsupported_role(i, message["role"])
    if not family.images:
        for i, message in enumerate(messages):
            content = message.get("content")
            if isinstance(content, list):
                for j, part in enumerate(content):
                    if isinstance(part, dict) and part.get("type") == "image_url":
                        return oe.image_not_supported(i, j)
    if body.get("stream") is True and not (family.streaming or (o1_streaming and family.reasoning)):
        return oe.unsupported_stream()
    if not family.max_tokens and body.get("max_tokens") is not None:
        return oe.unsupported_max_tokens()
    error = effort_error(body.get("reasoning_effort"), family.efforts, "reasoning_effort")
    if error is not None:
        return error
    effort = effort_of(body.get("reasoning_effort"), family.default_effort)
    plain = family.plain(effort)
    if not (family.sampling or plain):
        temperature = body.get("temperature")
        if temperature is not None and temperature != 1:
            return oe.unsupported_default("temperature", temperature, "1")
        for name, default in _FIXED_DEFAULTS:
            value = body.get(name)
            if value is not None and value != default:
                return oe.unsupported_parameter(name)
    if not (family.logprobs or plain):
        if body.get("logprobs"):
            return oe.unsupported_parameter("logprobs")
        if body.get("top_logprobs") is not None:
            return oe.unsupported_parameter("top_logprobs")
        # Launch-era o1 refused `stop` too; it travels with the logprobs family of sampling knobs.
        if body.get("stop") is not None:
            return oe.unsupported_parameter("stop")
    tools_sent = body.get("tools") is not None or body.get("functions") is not None
    if family.plain_only_at_no_effort and not plain and tools_sent:
        return oe.tools_need_no_effort(model_name)
    if not family.tools:
        if body.get("tools") is not None:
            return oe.tools_not_supported()
        for name in ("functions", "function_call"):
            if body.get(name) is not None:
                return oe.unsupported_parameter(name)
    if not family.response_format:
        response_format = body.get("response_format")
        if isinstance(response_format, dict):
            kind = response_format.get("type")
            # `text` is the default, and sending a default is accepted like `temperature: 1`.
            if kind != "text":
                return oe.response_format_not_supported(str(kind))
    return None


def _check_values(body: dict[str, Any], model: ChatModel) -> SimError | None:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is None:
            continue
        error = integer_error(name, value, 1)
        if error is not None:
            return error
        if value > model.max_output:
            return oe.max_output_too_large(name, value, model.max_output)
    # What OpenAI refuses whatever the model, shared with the gateway's checks and patches.
    refused = sampling_value_error(body) or chat_value_error(body) or metadata_error(body)
    if refused is not None:
        return oe.from_gateway(refused)
    response_format = body.get("response_format")
    if (
        isinstance(response_format, dict)
        and response_format.get("type") == "json_object"
        and not _mentions_json(body["messages"])
    ):
        return oe.json_word_required()
    return None


def _mentions_json(messages: list[dict[str, Any]]) -> bool:
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            if "json" in content.lower():
                return True
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and "json" in str(part.get("text", "")).lower():
                    return True
    return False


def integer_error(name: str, value: Any, minimum: int) -> SimError | None:
    """OpenAI's refusal of a parameter that is no integer, or one below `minimum`."""
    if isinstance(value, bool) or not isinstance(value, int):
        return oe.invalid_type(name, "an integer", value)
    if value < minimum:
        return oe.below_minimum(name, minimum, value)
    return None


def string_error(name: str, value: Any, maximum: int) -> SimError | None:
    """OpenAI's refusal of a parameter that is no string, or one longer than `maximum`."""
    if not isinstance(value, str):
        return oe.invalid_type(name, "a string", value)
    if len(value) > maximum:
        return oe.string_too_long(name, maximum, len(value))
    return None
