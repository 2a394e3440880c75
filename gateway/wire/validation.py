"""The shape of a chat completion or Responses API request, checked before the gateway spends anything on it.

Everything after this (routing, token counting, compatibility patches, emulation) reads the
payload, so a wrong type there would surface as a 500 deep inside; here it is a 400 that names
the field, in OpenAI's own wording. Only what OpenAI itself would refuse is refused: unknown
fields and unknown content part types go upstream as they are, so new API features keep working.

Pure: no I/O, no clock, no environment. It runs on every request, so it sticks to `type() is`
tests and plain loops.
"""

from __future__ import annotations

from typing import Any, Protocol

import orjson

from gateway.wire import errors

# How OpenAI's messages name the types it expected.
_EXPECTED: dict[type, str] = {str: "a string", list: "an array", dict: "an object"}

ROLES = ("system", "assistant", "user", "function", "tool", "developer")
_ROLES = frozenset(ROLES)
MAX_COMPLETION_TOKENS = 1_000_000
MAX_TOOLS = 128
MAX_STOP_SEQUENCES = 4
# OpenAI's model ids are short; a long one is garbage that would otherwise be echoed in errors.
MAX_MODEL_CHARS = 256
# orjson turns integers beyond 64 bits into floats; such a float was an absurd integer.
_HUGE = float(2**63)

_TOKEN_CAPS = (
    ("max_tokens", 1, MAX_COMPLETION_TOKENS),
    ("max_completion_tokens", 1, MAX_COMPLETION_TOKENS),
)
_SAMPLING_INTEGERS = (("n", 1, 128),)
# What a chat request's hold multiplies: its completion cap, for each of `n`.
_INTEGERS = _TOKEN_CAPS + _SAMPLING_INTEGERS
_DECIMALS = (
    ("temperature", 0, 2),
    ("top_p", 0, 1),
    ("presence_penalty", -2, 2),
    ("frequency_penalty", -2, 2),
)
_CONTENT = "one of a string or array of objects"
_TYPE_NAMES: dict[type, str] = {
    str: "a string",
    int: "an integer",
    float: "a decimal",
    bool: "a boolean",
    dict: "an object",
    list: "an array",
    type(None): "null",
}


class InputLimits(Protocol):
    """What the validator needs from the config; `ServerConfig` provides it."""

    @property
    def max_messages(self) -> int: ...

    @property
    def max_json_depth(self) -> int: ...


def check_chat(payload: dict[str, Any], limits: InputLimits) -> None:
    """Raise a 400 GatewayError for the first thing OpenAI would refuse in a chat request."""
    _check_model(payload)

    messages = _required(payload, "messages", "messages", list)
    if not messages:
        raise errors.empty_array("messages")
    if len(messages) > limits.max_messages:
        raise errors.array_too_long("messages", limits.max_messages, len(messages))
    for i, message in enumerate(messages):
        _check_message(i, message)

    # The counts first (a batch line is checked for these alone), then n and the decimals.
    check_chat_counts(payload)
    refused = sampling_value_error(payload)
    if refused is not None:
        raise refused
    _check_options(payload)
    _check_depth(payload, limits.max_json_depth)


def check_chat_counts(payload: dict[str, Any]) -> None:
    """The counts a chat request's hold multiplies (its completion cap, for each of `n`): a
    batch line is checked for these alone, as upstream fails a line of another shape alone."""
    _check_integers(payload, _INTEGERS)


def sampling_value_error(payload: dict[str, Any]) -> errors.GatewayError | None:
    """The first of `n`, `temperature`, `top_p` and the penalties of a chat request that is no
    number of their kind or out of their range, or None; the simulated upstream answers the
    same (after refusing them on a model whose sampling is fixed)."""
    try:
        _check_integers(payload, _SAMPLING_INTEGERS)
        _check_decimals(payload, _DECIMALS)
    except errors.GatewayError as refused:
        return refused
    return None


# Chat values OpenAI refuses on every model that takes the parameter, after its checks of what
# the model takes (a model without the parameter refuses it first). A patch that drops such a
# parameter for a model without it must still refuse what no model would take, or the client
# breaks once pointed at a model that takes it; the simulated upstream answers the same.
MAX_TOP_LOGPROBS = 20


def chat_value_error(payload: dict[str, Any]) -> errors.GatewayError | None:
    """The first value of a chat request OpenAI refuses whatever the model serving it (once it
    takes the parameter), or None: `logprobs`, `top_logprobs` and `parallel_tool_calls` of
    the wrong type or range, a `logit_bias` OpenAI refuses (`logit_bias_error`), `tool_choice` or
    `parallel_tool_calls` without `tools`, `top_logprobs` without `logprobs`."""
    for name in ("logprobs", "parallel_tool_calls"):
        value = payload.get(name)
        if value is not None and type(value) is not bool:
            return _wrong_type(name, "a boolean", value)
    top = payload.get("top_logprobs")
    refused = _top_logprobs_error(top)
    if refused is not None:
        return refused
    refused = logit_bias_error(payload)
    if refused is not None:
        return refused
    if not payload.get("tools"):
        for name in ("tool_choice", "parallel_tool_calls"):
            if payload.get(name) is not None:
                return errors.without_tools(name)
    if top is not None and payload.get("logprobs") is not True:
        return errors.top_logprobs_without_logprobs()
    return None


# `logit_bias`: at most this many tokens, each biased by at most this much either way.
MAX_LOGIT_BIAS_TOKENS = 1024
MAX_LOGIT_BIAS = 100


def logit_bias_error(payload: dict[str, Any]) -> errors.GatewayError | None:
    """The refusal of a chat or legacy completions `logit_bias` OpenAI refuses, or None: no
    object, more than 1,024 tokens, a key that is no token id, a bias that is no number from
    -100 to 100."""
    bias = payload.get("logit_bias")
    refused = _map_error("logit_bias", bias, MAX_LOGIT_BIAS_TOKENS)
    if refused is not None or bias is None:
        return refused
    for token, value in bias.items():
        if not (token.isascii() and token.isdigit()):
            return errors.logit_bias_key(token)
        try:
            _check_decimal(f"logit_bias.{token}", value, -MAX_LOGIT_BIAS, MAX_LOGIT_BIAS)
        except errors.GatewayError as refused:
            return refused
    return None


def _top_logprobs_error(top: Any) -> errors.GatewayError | None:
    if top is None:
        return None
    try:
        _check_integer("top_logprobs", top, 0, MAX_TOP_LOGPROBS)
    except errors.GatewayError as refused:
        return refused
    return None


# What `reasoning.summary` takes, on every model (one that does not reason too).
SUMMARIES = ("auto", "concise", "detailed")
TRUNCATIONS = ("auto", "disabled")


def responses_value_error(payload: dict[str, Any]) -> errors.GatewayError | None:
    """The first value of a Responses API request OpenAI refuses whatever the model serving it
    (once it takes the parameter), or None: a `reasoning.summary` it does not know, a
    `top_logprobs` out of range, a `truncation` it does not know. The patches drop
    `reasoning` for a model that does not reason and `top_logprobs` for one without logprobs,
    and a request translated for o1 sends no `truncation`, so none of them may drop these
    unseen."""
    reasoning = payload.get("reasoning")
    summary = reasoning.get("summary") if type(reasoning) is dict else None
    if summary is not None and summary not in SUMMARIES:
        return errors.invalid_value("reasoning.summary", echo(summary), SUMMARIES)
    refused = _top_logprobs_error(payload.get("top_logprobs"))
    if refused is not None:
        return refused
    truncation = payload.get("truncation")
    if truncation is not None and truncation not in TRUNCATIONS:
        return errors.invalid_value("truncation", echo(truncation), TRUNCATIONS)
    return None


# `metadata`: at most this many pairs, keys and values at most this long; `safety_identifier`
# at most as long as a key.
MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512
# What a Responses API request may ask `include`d in its answer.
INCLUDABLE = (
    "file_search_call.results",
    "web_search_call.results",
    "web_search_call.action.sources",
    "message.input_image.image_url",
    "computer_call_output.output.image_url",
    "code_interpreter_call.outputs",
    "reasoning.encrypted_content",
    "message.output_text.logprobs",
)


def responses_extras_error(payload: dict[str, Any]) -> errors.GatewayError | None:
    """The first of a Responses API request's `safety_identifier`, `metadata` and `include`
    that OpenAI refuses whatever the model, or None: no string, or one over 64 characters;
    no map of strings, or one past 16 pairs, 64-character keys or 512-character values; no
    array, or one naming what OpenAI does not include. A request translated for a model
    without the Responses API sends none of them upstream, so they are checked where it is
    translated (the simulated upstream answers the same)."""
    identifier = payload.get("safety_identifier")
    if identifier is not None:
        refused = _string_error("safety_identifier", identifier, MAX_METADATA_KEY)
        if refused is not None:
            return refused
    refused = metadata_error(payload)
    if refused is not None:
        return refused
    included = payload.get("include")
    if included is not None:
        if type(included) is not list:
            return _wrong_type("include", "an array", included)
        for i, name in enumerate(included):
            if type(name) is not str:
                return _wrong_type(f"include[{i}]", "a string", name)
            if name not in INCLUDABLE:
                return errors.invalid_value(f"include[{i}]", name, INCLUDABLE)
    return None


def metadata_error(payload: dict[str, Any]) -> errors.GatewayError | None:
    """The refusal of a request's `metadata` (chat, Responses, batches, fine-tuning jobs, vector
    stores take the same) that OpenAI refuses, or None: no map of strings, or one past 16
    pairs, 64-character keys or 512-character values."""
    metadata = payload.get("metadata")
    refused = _map_error("metadata", metadata, MAX_METADATA_PAIRS)
    if refused is not None or metadata is None:
        return refused
    for key, value in metadata.items():
        if len(key) > MAX_METADATA_KEY:
            # The param OpenAI names for a long key is unrecorded: the object's.
            return errors.string_too_long("metadata", MAX_METADATA_KEY, len(key))
        refused = _string_error(f"metadata.{key}", value, MAX_METADATA_VALUE)
        if refused is not None:
            return refused
    return None


def _map_error(param: str, value: Any, maximum: int) -> errors.GatewayError | None:
    """A map parameter that is no object, or one past `maximum` pairs (None: not sent)."""
    if value is None:
        return None
    if type(value) is not dict:
        return _wrong_type(param, "an object", value)
    if len(value) > maximum:
        return errors.too_many_properties(param, maximum, len(value))
    return None


def _string_error(param: str, value: Any, maximum: int) -> errors.GatewayError | None:
    if type(value) is not str:
        return _wrong_type(param, "a string", value)
    if len(value) > maximum:
        return errors.string_too_long(param, maximum, len(value))
    return None


def echo(value: Any) -> str:
    """A request value as OpenAI quotes it back in an error: a string as it is, anything else
    in its JSON spelling."""
    return value if type(value) is str else orjson.dumps(value).decode()


TOOL_CHOICES = ("none", "auto", "required")


def responses_tool_choice_error(choice: Any) -> errors.GatewayError | None:
    """A Responses API `tool_choice` OpenAI refuses: a mode it does not know, a function it
    does not name. A translated request would otherwise choose as if `auto`. Other objects
    (a hosted tool's choice) are left to upstream, or refused where translated."""
    if type(choice) is str and choice not in TOOL_CHOICES:
        return errors.invalid_value("tool_choice", choice, TOOL_CHOICES)
    named = type(choice) is dict and choice.get("type") == "function"
    if named and type(choice.get("name")) is not str:
        return errors.missing_parameter("tool_choice.name")
    return None


# The Responses API's own bounds: `max_output_tokens` has a minimum of 16.
MIN_OUTPUT_TOKENS = 16
_RESPONSES_INTEGERS = (
    ("max_output_tokens", MIN_OUTPUT_TOKENS, MAX_COMPLETION_TOKENS),
    # Every hosted tool call is held at its price: a bound keeps the hold a number.
    ("max_tool_calls", 0, MAX_COMPLETION_TOKENS),
)
_RESPONSES_FLAGS = ("stream", "store", "background", "parallel_tool_calls")
_RESPONSES_STRINGS = ("instructions", "previous_response_id", "user")


def check_responses(payload: dict[str, Any], limits: InputLimits) -> None:
    """Raise a 400 GatewayError for the first thing OpenAI would refuse in a Responses API
    request; the items inside `input` are the translator's to check, where it reads them."""
    _check_model(payload)
    given = payload.get("input")
    if given is None:
        if payload.get("previous_response_id") is None:
            raise errors.missing_parameter("input")
    elif type(given) is list:
        if len(given) > limits.max_messages:
            raise errors.array_too_long("input", limits.max_messages, len(given))
        for i, item in enumerate(given):
            if type(item) is not dict:
                raise _wrong_type(f"input[{i}]", "an object", item)
    elif type(given) is not str:
        raise _wrong_type("input", _CONTENT, given)
    _check_integers(payload, _RESPONSES_INTEGERS)
    _check_decimals(payload, _DECIMALS[:2])
    _check_flags(payload, _RESPONSES_FLAGS)
    _check_strings(payload, _RESPONSES_STRINGS)
    for name in ("text", "reasoning", "metadata"):
        value = payload.get(name)
        if value is not None and type(value) is not dict:
            raise _wrong_type(name, "an object", value)
    refused = responses_value_error(payload)
    if refused is not None:
        raise refused
    form = (payload.get("text") or {}).get("format")
    if type(form) is dict and form.get("type") == "json_schema":
        _check_json_schema(form, "text.format", "text.format.schema")
    tools = payload.get("tools")
    if tools is not None:
        if type(tools) is not list:
            raise _wrong_type("tools", "an array", tools)
        if len(tools) > MAX_TOOLS:
            raise errors.array_too_long("tools", MAX_TOOLS, len(tools))
        for i, tool in enumerate(tools):
            if type(tool) is not dict:
                raise _wrong_type(f"tools[{i}]", "an object", tool)
            if _required(tool, "type", f"tools[{i}].type", str) == "function":
                _required(tool, "name", f"tools[{i}].name", str)
    choice = payload.get("tool_choice")
    if choice is not None and type(choice) is not str and type(choice) is not dict:
        raise _wrong_type("tool_choice", "one of a string or object", choice)
    refused = responses_tool_choice_error(choice)
    if refused is not None:
        raise refused
    _check_depth(payload, limits.max_json_depth)


def _check_model(payload: dict[str, Any]) -> None:
    model = payload.get("model")
    if type(model) is not str:
        if model is None:
            raise errors.missing_model()
        raise _wrong_type("model", "a string", model)
    if not model:
        raise errors.missing_model()
    if len(model) > MAX_MODEL_CHARS:
        raise errors.string_too_long("model", MAX_MODEL_CHARS, len(model))


def _check_message(i: int, message: Any) -> None:
    if type(message) is not dict:
        raise _wrong_type(f"messages[{i}]", "an object", message)
    role = _required(message, "role", f"messages[{i}].role", str)
    if role not in _ROLES:
        raise errors.invalid_value(f"messages[{i}].role", role, ROLES)

    content = message.get("content")
    if type(content) is list:
        for j, part in enumerate(content):
            _check_part(i, j, part)
    elif content is None:
        # An assistant turn that only called tools has no text; a function result may be empty.
        calls = role == "assistant" and (
            message.get("tool_calls") or message.get("function_call") or message.get("audio")
        )
        if not calls and role != "function":
            if "content" not in message:
                raise errors.missing_parameter(f"messages[{i}].content")
            raise _wrong_type(f"messages[{i}].content", _CONTENT, content)
    elif type(content) is not str:
        raise _wrong_type(f"messages[{i}].content", _CONTENT, content)

    # Most messages are just role and content: skip the rest of the checks for them.
    if len(message) > 2 or role == "tool" or content is None:
        _check_message_extras(i, role, message)


def _check_message_extras(i: int, role: str, message: dict[str, Any]) -> None:
    name = message.get("name")
    if name is not None and type(name) is not str:
        raise _wrong_type(f"messages[{i}].name", "a string", name)
    if role == "tool":
        _required(message, "tool_call_id", f"messages[{i}].tool_call_id", str)
    calls = message.get("tool_calls")
    if calls is not None:
        param = f"messages[{i}].tool_calls"
        if type(calls) is not list:
            raise _wrong_type(param, "an array", calls)
        for j, call in enumerate(calls):
            if type(call) is not dict:
                raise _wrong_type(f"{param}[{j}]", "an object", call)
            function = call.get("function")
            if function is not None and type(function) is not dict:
                raise _wrong_type(f"{param}[{j}].function", "an object", function)
    legacy = message.get("function_call")
    if legacy is not None and type(legacy) is not dict:
        raise _wrong_type(f"messages[{i}].function_call", "an object", legacy)


def _required(obj: dict[str, Any], key: str, param: str, kind: type) -> Any:
    """`obj[key]`, which must be present and of exactly `kind` (bool is not int, and so on)."""
    value = obj.get(key)
    if type(value) is not kind:
        if value is None:
            raise errors.missing_parameter(param)
        raise _wrong_type(param, _EXPECTED[kind], value)
    return value


def _check_part(i: int, j: int, part: Any) -> None:
    param = f"messages[{i}].content[{j}]"
    if type(part) is not dict:
        raise _wrong_type(param, "an object", part)
    kind = _required(part, "type", f"{param}.type", str)
    if kind == "text":
        _required(part, "text", f"{param}.text", str)


def _check_integer(name: str, value: Any, low: int, high: int) -> None:
    kind = type(value)
    if kind is float and abs(value) >= _HUGE:
        pass  # compared below as the integer it was sent as
    elif kind is not int:
        raise _wrong_type(name, "an integer", value)
    if value < low:
        raise errors.below_minimum(name, "integer", low, value)
    if value > high:
        raise errors.above_maximum(name, "integer", high, value)


def _check_decimal(name: str, value: Any, low: float, high: float) -> None:
    kind = type(value)
    if kind is not float and kind is not int:
        raise _wrong_type(name, "a decimal", value)
    if value < low:
        raise errors.below_minimum(name, "decimal", low, value)
    if value > high:
        raise errors.above_maximum(name, "decimal", high, value)


def _check_options(payload: dict[str, Any]) -> None:
    stream = payload.get("stream")
    if stream is not None and type(stream) is not bool:
        raise _wrong_type("stream", "a boolean", stream)
    options = payload.get("stream_options")
    if options is not None:
        if type(options) is not dict:
            raise _wrong_type("stream_options", "an object", options)
        usage = options.get("include_usage")
        if usage is not None and type(usage) is not bool:
            raise _wrong_type("stream_options.include_usage", "a boolean", usage)
    tools = payload.get("tools")
    if tools is not None:
        if type(tools) is not list:
            raise _wrong_type("tools", "an array", tools)
        if len(tools) > MAX_TOOLS:
            raise errors.array_too_long("tools", MAX_TOOLS, len(tools))
        for i, tool in enumerate(tools):
            _check_tool(f"tools[{i}]", tool)
    functions = payload.get("functions")
    if functions is not None:
        if type(functions) is not list:
            raise _wrong_type("functions", "an array", functions)
        for i, function in enumerate(functions):
            if type(function) is not dict:
                raise _wrong_type(f"functions[{i}]", "an object", function)
            _check_function(f"functions[{i}]", function)
    for name in ("tool_choice", "function_call"):
        choice = payload.get(name)
        if choice is not None and type(choice) is not str and type(choice) is not dict:
            raise _wrong_type(name, "one of a string or object", choice)
    response_format = payload.get("response_format")
    if response_format is not None:
        if type(response_format) is not dict:
            raise _wrong_type("response_format", "an object", response_format)
        if _required(response_format, "type", "response_format.type", str) == "json_schema":
            spec = _required(response_format, "json_schema", "response_format.json_schema", dict)
            _check_json_schema(spec, "response_format.json_schema", "response_format")
    stop = payload.get("stop")
    if stop is not None and type(stop) is not str:
        if type(stop) is not list:
            raise _wrong_type("stop", "one of a string or array of strings", stop)
        if len(stop) > MAX_STOP_SEQUENCES:
            raise errors.array_too_long("stop", MAX_STOP_SEQUENCES, len(stop))
        for i, sequence in enumerate(stop):
            if type(sequence) is not str:
                raise _wrong_type(f"stop[{i}]", "a string", sequence)


def _check_tool(param: str, tool: Any) -> None:
    if type(tool) is not dict:
        raise _wrong_type(param, "an object", tool)
    kind = _required(tool, "type", f"{param}.type", str)
    if kind == "function":
        _check_function(f"{param}.function", _required(tool, "function", f"{param}.function", dict))


def _check_function(param: str, function: dict[str, Any]) -> None:
    """A function's name and parameters, as OpenAI checks them: a model emulating tools would
    otherwise be asked to call a function it cannot name or answer arguments that are no object."""
    name = _required(function, "name", f"{param}.name", str)
    parameters = function.get("parameters")
    if parameters is None or parameters == {}:  # no parameters: an empty argument object
        return
    if type(parameters) is not dict:
        raise _wrong_type(f"{param}.parameters", "an object", parameters)
    kind = parameters.get("type")
    if kind != "object":
        raise errors.invalid_function_parameters(f"{param}.parameters", name, kind)


def _check_json_schema(spec: dict[str, Any], param: str, refused_param: str) -> None:
    """A structured answer's format (`spec` at `param`), as OpenAI checks it: named, and its
    schema's root an object (a model emulating structured output would otherwise be asked for
    an answer that is none)."""
    name = _required(spec, "name", f"{param}.name", str)
    schema = spec.get("schema")
    if schema is None:
        return
    if type(schema) is not dict:
        raise _wrong_type(f"{param}.schema", "an object", schema)
    kind = schema.get("type")
    if kind != "object":
        raise errors.invalid_response_schema(refused_param, name, kind)


def _check_depth(payload: dict[str, Any], limit: int) -> None:
    field = too_deep(payload, limit)
    if field is not None:
        raise errors.nested_too_deep(field, limit)


def too_deep(payload: dict[str, Any], limit: int) -> str | None:
    """The first field of a body nested deeper than `limit` levels of objects and arrays (the
    body itself is level 1), or None. Level by level, not recursively: a deep body must not
    cost stack, only a bounded loop."""
    for key, value in payload.items():
        kind = type(value)
        if kind is not dict and kind is not list:
            continue
        level: list[Any] = [value]
        depth = 2  # the body object itself is level 1
        while level:
            if depth > limit:
                return str(key)
            below: list[Any] = []
            for node in level:
                for child in node.values() if type(node) is dict else node:
                    kind = type(child)
                    if kind is dict or kind is list:
                        below.append(child)
            level = below
            depth += 1
    return None


def _wrong_type(param: str, expected: str, value: Any) -> errors.GatewayError:
    return errors.invalid_type(param, expected, _TYPE_NAMES.get(type(value), "an unknown type"))


# -- the other governed endpoints: what their hold reads, as upstream reads it --------------------

_TOKEN_INPUT = (
    "one of a string, array of strings, array of integers, or array of arrays of integers"
)
_COMPLETIONS_INTEGERS = (
    # 0 writes no token (an echoed prompt's logprobs); the hold reads it as the default 16.
    ("max_tokens", 0, MAX_COMPLETION_TOKENS),
    ("n", 1, 128),
    ("best_of", 0, 20),
    ("logprobs", 0, 5),
)
_IMAGES_INTEGERS = (("n", 1, 10), ("partial_images", 0, 3), ("output_compression", 0, 100))
_IMAGES_STRINGS = (
    "size", "quality", "style", "response_format", "background", "output_format", "moderation",
    "user",
)  # fmt: skip
MAX_SPEECH_CHARACTERS = 4096


def check_completions(payload: dict[str, Any]) -> None:
    """A legacy completion: its prompt, suffix and every count its hold multiplies (`max_tokens`
    for each of `best_of`, at least `n`) of the type and within the bounds OpenAI accepts; a
    lenient upstream reading `true`, "20" or 20.0 as a count would write more than was held.
    Its `logit_bias` as chat's (the simulated upstream refuses the same)."""
    _check_model(payload)
    check_completions_counts(payload)
    _check_strings(payload, ("suffix", "user"))
    _check_flags(payload, ("stream", "echo"))
    refused = logit_bias_error(payload)
    if refused is not None:
        raise refused


def check_completions_counts(payload: dict[str, Any]) -> None:
    """The prompt's tokens and the counts a legacy completion's hold multiplies: a batch line
    is checked for these alone."""
    _check_token_input("prompt", payload.get("prompt"))
    _check_integers(payload, _COMPLETIONS_INTEGERS)


def check_embeddings(payload: dict[str, Any]) -> None:
    """An embeddings request: its input, held at its tokens, and `dimensions`."""
    _check_model(payload)
    if payload.get("input") is None:
        raise errors.missing_parameter("input")
    check_embeddings_counts(payload)
    _check_strings(payload, ("encoding_format", "user"))


def check_embeddings_counts(payload: dict[str, Any]) -> None:
    """The input's tokens, which the hold counts, and `dimensions`: a batch line is checked
    for these alone."""
    _check_token_input("input", payload.get("input"))
    _check_integers(payload, (("dimensions", 1, MAX_COMPLETION_TOKENS),))


def check_images(payload: dict[str, Any]) -> None:
    """An image generation: `n` images held at the price of their size and quality (and a
    stream's partial images), each as upstream reads it."""
    _check_model(payload)
    _required(payload, "prompt", "prompt", str)
    _check_integers(payload, _IMAGES_INTEGERS)
    _check_strings(payload, _IMAGES_STRINGS)
    _check_flags(payload, ("stream",))


def check_speech(payload: dict[str, Any]) -> None:
    """Text to speech: its input's characters (and instructions' tokens) are held, more at a
    speed below 1: each must be what upstream reads."""
    _check_model(payload)
    text = _required(payload, "input", "input", str)
    if len(text) > MAX_SPEECH_CHARACTERS:
        raise errors.string_too_long("input", MAX_SPEECH_CHARACTERS, len(text))
    _check_strings(payload, ("instructions", "response_format", "stream_format"))
    speed = payload.get("speed")
    if speed is not None:
        _check_decimal("speed", speed, 0.25, 4)


def check_moderations(payload: dict[str, Any]) -> None:
    """A moderation: free, but its model (`omni-moderation-latest` when none) is checked."""
    if "model" in payload:
        _check_model(payload)
    if payload.get("input") is None:
        raise errors.missing_parameter("input")


# -- fine-tuning: the epochs a job's hold multiplies -------------------------------------------

MAX_EPOCHS = 50


def training_hyperparameters(payload: dict[str, Any]) -> list[tuple[str, Any]]:
    """The hyperparameters of a fine-tuning job that upstream may read, each with where it
    stands: its method's (of the type the method names; a method without a type nests none
    upstream reads) and the legacy `hyperparameters`."""
    found: list[tuple[str, Any]] = []
    method = payload.get("method")
    kind = method.get("type") if type(method) is dict else None
    inner = method.get(kind) if type(method) is dict and type(kind) is str else None
    if type(inner) is dict and inner.get("hyperparameters") is not None:
        found.append((f"method.{kind}.hyperparameters", inner["hyperparameters"]))
    if payload.get("hyperparameters") is not None:
        found.append(("hyperparameters", payload["hyperparameters"]))
    return found


def check_training_epochs(payload: dict[str, Any]) -> None:
    """Every `n_epochs` a fine-tuning job gives is `auto` or an integer from 1 to 50, as
    upstream takes it: one held as `auto` ("50", 50.0, true) but read by a lenient upstream
    as the count it spells would train more epochs than were held."""
    for where, hyper in training_hyperparameters(payload):
        if type(hyper) is not dict:
            raise _wrong_type(where, "an object", hyper)
        epochs = hyper.get("n_epochs")
        if epochs is not None and epochs != "auto":
            _check_integer(f"{where}.n_epochs", epochs, 1, MAX_EPOCHS)


def _check_integers(payload: dict[str, Any], bounds: tuple[tuple[str, int, int], ...]) -> None:
    for name, low, high in bounds:
        value = payload.get(name)
        if value is not None:
            _check_integer(name, value, low, high)


def _check_decimals(payload: dict[str, Any], bounds: tuple[tuple[str, float, float], ...]) -> None:
    for name, low, high in bounds:
        value = payload.get(name)
        if value is not None:
            _check_decimal(name, value, low, high)


def _check_strings(payload: dict[str, Any], names: tuple[str, ...]) -> None:
    for name in names:
        value = payload.get(name)
        if value is not None and type(value) is not str:
            raise _wrong_type(name, "a string", value)


def _check_flags(payload: dict[str, Any], names: tuple[str, ...]) -> None:
    for name in names:
        value = payload.get(name)
        if value is not None and type(value) is not bool:
            raise _wrong_type(name, "a boolean", value)


def _check_token_input(name: str, value: Any) -> None:
    """A completions prompt or embeddings input: a string, or an array of strings, of tokens
    (integers; upstream reads JSON's true as 1, and it is counted so) or of token arrays, one
    kind throughout. A float token (1.0) would be a token to a lenient reader and none to the
    count."""
    if value is None or type(value) is str:
        return
    if type(value) is not list:
        raise _wrong_type(name, _TOKEN_INPUT, value)
    first = _token_kind(value[0]) if value else None
    for i, item in enumerate(value):
        kind = _token_kind(item)
        if kind is None or kind is not first:
            raise _wrong_type(f"{name}[{i}]", _TOKEN_INPUT, item)
        if kind is list:
            for j, token in enumerate(item):
                if _token_kind(token) is not int:
                    raise _wrong_type(f"{name}[{i}][{j}]", "an integer", token)


def _token_kind(item: Any) -> type | None:
    kind = type(item)
    if kind is bool:
        return int
    return kind if kind is str or kind is int or kind is list else None
