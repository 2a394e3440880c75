"""The error answers of the simulated upstream, worded as OpenAI worded them in September 2024.

Pure: every function builds a `SimError` value; nothing here reads a clock or does I/O.
Messages are copied from recorded OpenAI API payloads; clients and the gateway match on them,
so keep them byte-exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from gateway.wire.errors import GatewayError, error_body, mask_key

INVALID_REQUEST = "invalid_request_error"
# The id of the organization the simulated key belongs to, as OpenAI names it to the key's owner
# (24 characters after the prefix, as a real one has).
ORGANIZATION_ID = "org-simulatedOrganization001"
# OpenAI's 502 comes from its Cloudflare edge as HTML, not JSON: clients must cope with that.
CLOUDFLARE_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
CLOUDFLARE_504 = (
    b"<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n"
    b"<center><h1>504 Gateway Time-out</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
    b"</body>\r\n</html>\r\n"
)


@dataclass(frozen=True, slots=True)
class SimError:
    """An error response: HTTP status plus OpenAI's `{"error": {...}}` fields."""

    status: int
    message: str
    type: str = INVALID_REQUEST
    param: str | None = None
    code: str | None = None

    def body(self) -> bytes:
        return error_body(self.message, self.type, self.param, self.code)

    def payload(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


def from_gateway(error: GatewayError) -> SimError:
    """A refusal whose definition the simulator shares with the gateway's checks."""
    return SimError(error.status, error.message, error.type, error.param, error.code)


def json_type(value: Any) -> str:
    """How OpenAI names a JSON value's type in 'Invalid type' messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def echo(value: Any) -> str:
    """A request value as OpenAI quotes it back: JSON spelling (0.2, true, "x")."""
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def missing_model() -> SimError:
    return SimError(400, "you must provide a model parameter")


def model_not_found(model: str) -> SimError:
    return SimError(
        404,
        f"The model `{model}` does not exist or you do not have access to it.",
        code="model_not_found",
    )


def missing_parameter(param: str) -> SimError:
    return SimError(
        400,
        f"Missing required parameter: '{param}'.",
        param=param,
        code="missing_required_parameter",
    )


def invalid_type(param: str, expected: str, value: Any) -> SimError:
    return SimError(
        400,
        f"Invalid type for '{param}': expected {expected}, but got {json_type(value)} instead.",
        param=param,
        code="invalid_type",
    )


def empty_array(param: str) -> SimError:
    return SimError(
        400,
        f"Invalid '{param}': empty array. Expected an array with minimum length 1, "
        "but got an empty array instead.",
        param=param,
        code="empty_array",
    )


def below_minimum(param: str, minimum: float, value: Any, kind: str = "integer") -> SimError:
    """`kind` is "integer" or "decimal", the schema type OpenAI names in the message and code."""
    return SimError(
        400,
        f"Invalid '{param}': {kind} below minimum value. Expected a value >= {minimum}, "
        f"but got {echo(value)} instead.",
        param=param,
        code=f"{kind}_below_min_value",
    )


def above_maximum(param: str, maximum: float, value: Any, kind: str = "integer") -> SimError:
    return SimError(
        400,
        f"Invalid '{param}': {kind} above maximum value. Expected a value <= {maximum}, "
        f"but got {echo(value)} instead.",
        param=param,
        code=f"{kind}_above_max_value",
    )


def unrecognized_argument(name: str) -> SimError:
    return SimError(400, f"Unrecognized request argument supplied: {name}")


def invalid_role(index: int, role: Any) -> SimError:
    return SimError(
        400,
        f"Invalid value: '{echo(role)}'. Supported values are: 'system', 'assistant', 'user', "
        "'function', and 'tool'.",
        param=f"messages[{index}].role",
        code="invalid_value",
    )


def unsupported_role(index: int, role: str) -> SimError:
    param = f"messages[{index}].role"
    return SimError(
        400,
        f"Unsupported value: '{param}' does not support '{role}' with this model.",
        param=param,
        code="unsupported_value",
    )


def unsupported_stream() -> SimError:
    return SimError(
        400,
        "Unsupported value: 'stream' does not support true with this model. "
        "Only the default (false) value is supported.",
        param="stream",
        code="unsupported_value",
    )


def unsupported_parameter(name: str, hint: str = "") -> SimError:
    return SimError(
        400,
        f"Unsupported parameter: '{name}' is not supported with this model.{hint}",
        param=name,
        code="unsupported_parameter",
    )


def unsupported_max_tokens() -> SimError:
    return unsupported_parameter("max_tokens", " Use 'max_completion_tokens' instead.")


def unsupported_default(name: str, value: Any, default: str) -> SimError:
    return SimError(
        400,
        f"Unsupported value: '{name}' does not support {echo(value)} with this model. "
        f"Only the default ({default}) value is supported.",
        param=name,
        code="unsupported_value",
    )


def tools_not_supported() -> SimError:
    # 404, param and code null: OpenAI's odd answer for tools on o1-preview/o1-mini.
    return SimError(
        404,
        "tools is not supported in this model. For a list of supported models, refer to "
        "https://platform.openai.com/docs/guides/function-calling#models-supporting-function-calling.",
    )


def unsupported_effort(param: str, value: str, supported: tuple[str, ...]) -> SimError:
    """A reasoning effort outside the model's range (chat and Responses word it alike)."""
    return SimError(
        400,
        f"Unsupported value: '{param}' does not support '{value}' with this model. "
        f"Supported values are: {_listed(supported)}.",
        param=param,
        code="unsupported_value",
    )


def tools_need_no_effort(model: str) -> SimError:
    # Recorded for gpt-5.4 to gpt-6-astra: chat takes function tools only at effort none.
    return SimError(
        400,
        f"Function tools with reasoning_effort are not supported for {model} in "
        "/v1/chat/completions. To use function tools, use /v1/responses or set "
        "reasoning_effort to 'none'.",
        param="reasoning_effort",
    )


def response_format_not_supported(kind: str) -> SimError:
    return SimError(
        400,
        f"Invalid parameter: 'response_format' of type '{kind}' is not supported with this model.",
        param="response_format",
    )


def image_not_supported(message_index: int, part_index: int) -> SimError:
    return SimError(
        400,
        "Invalid content type. image_url is only supported by certain models.",
        param=f"messages.[{message_index}].content.[{part_index}].type",
    )


def json_word_required() -> SimError:
    return SimError(
        400,
        "'messages' must contain the word 'json' in some form, to use 'response_format' of type "
        "'json_object'.",
        param="messages",
    )


def stream_options_without_stream() -> SimError:
    return SimError(
        400,
        "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
        param="stream_options",
    )


def max_output_too_large(param: str, value: int, maximum: int) -> SimError:
    return SimError(
        400,
        f"{param} is too large: {value}. This model supports at most {maximum} completion tokens, "
        f"whereas you provided {value}.",
        param=param,
    )


def context_length_exceeded(
    context: int, prompt_tokens: int, completion_tokens: int = 0
) -> SimError:
    if completion_tokens:
        detail = (
            f"However, you requested {prompt_tokens + completion_tokens} tokens ({prompt_tokens} "
            f"in the messages, {completion_tokens} in the completion). Please reduce the length "
            "of the messages or completion."
        )
    else:
        detail = (
            f"However, your messages resulted in {prompt_tokens} tokens. "
            "Please reduce the length of the messages."
        )
    return SimError(
        400,
        f"This model's maximum context length is {context} tokens. {detail}",
        param="messages",
        code="context_length_exceeded",
    )


def missing_api_key() -> SimError:
    return SimError(
        401,
        "You didn't provide an API key. You need to provide your API key in an Authorization "
        "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field "
        "(with blank username) if you're accessing the API from your browser and are prompted for "
        "a username. You can obtain an API key from https://platform.openai.com/account/api-keys.",
    )


def invalid_api_key(key: str) -> SimError:
    return SimError(
        401,
        f"Incorrect API key provided: {mask_key(key)}. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        code="invalid_api_key",
    )


def invalid_url(method: str, path: str) -> SimError:
    return SimError(404, f"Invalid URL ({method} {path})")


def invalid_json(detail: str) -> SimError:
    return SimError(
        400,
        "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
        "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
        "sent was not valid JSON. If you have trouble figuring out how to fix this, please "
        f"contact us through our help center at help.openai.com.) Detail: {detail}",
    )


def rate_limited(
    model: str, kind: str, limit: int, used: int, requested: int, retry_after: str
) -> SimError:
    """`kind` is "requests" (RPM) or "tokens" (TPM); it is also the error's `type`."""
    unit = "requests per min (RPM)" if kind == "requests" else "tokens per min (TPM)"
    return SimError(
        429,
        f"Rate limit reached for {model} in organization {ORGANIZATION_ID} on {unit}: Limit {limit}, "
        f"Used {used}, Requested {requested}. Please try again in {retry_after}. Visit "
        "https://platform.openai.com/account/rate-limits to learn more.",
        type=kind,
        code="rate_limit_exceeded",
    )


def background_rate_limited(model: str, requested: int) -> SimError:
    """What fails a background response as it runs (`x-sim-background: failed`): the
    organization's token rate limit, in its 429's words (no recorded failed response behind
    them), which a failed response carries as its `error {code, message}`."""
    return rate_limited(model, "tokens", 30_000, 29_500, requested, "1.4s")


def insufficient_quota() -> SimError:
    return SimError(
        429,
        "You exceeded your current quota, please check your plan and billing details. For more "
        "information on this error, read the docs: "
        "https://platform.openai.com/docs/guides/error-codes/api-errors.",
        type="insufficient_quota",
        code="insufficient_quota",
    )


def server_error() -> SimError:
    return SimError(
        500,
        "The server had an error while processing your request. Sorry about that!",
        type="server_error",
    )


def stream_failure(fault: str | None) -> SimError:
    """What a stream the `fault` breaks ends with: the quota refusal OpenAI was recorded ending
    a stream with (`stream-quota`), else its server error."""
    return insufficient_quota() if fault == "stream-quota" else server_error()


def overloaded() -> SimError:
    return SimError(
        503,
        "The engine is currently overloaded, please try again later.",
        type="server_error",
    )


# --- Responses API (its wording differs from chat's in places: "Unknown parameter") ----------


def unknown_parameter(name: str) -> SimError:
    return SimError(400, f"Unknown parameter: '{name}'.", param=name, code="unknown_parameter")


def invalid_value(param: str, value: Any, supported: tuple[str, ...]) -> SimError:
    return SimError(
        400,
        f"Invalid value: '{echo(value)}'. Supported values are: {_listed(supported)}.",
        param=param,
        code="invalid_value",
    )


def _listed(values: tuple[str, ...]) -> str:
    quoted = [f"'{s}'" for s in values]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + f", and {quoted[-1]}"


def model_not_in_responses(model: str) -> SimError:
    # o1-preview's recorded refusal; o1-mini's is the same by a maintainer's word (unconfirmed).
    return SimError(
        400,
        f"The requested model '{model}' is not supported with the Responses API.",
        param="model",
    )


def previous_response_not_found(response_id: str) -> SimError:
    return SimError(
        400,
        f"Previous response with id '{response_id}' not found.",
        param="previous_response_id",
        code="previous_response_not_found",
    )


def item_not_found(item_id: str) -> SimError:
    # As recorded for a reasoning item given back by its id after `store: false` (404); any
    # input item's id is looked up so (an `item_reference` too: unconfirmed by a recording).
    return SimError(
        404,
        f"Item with id '{item_id}' not found. Items are not persisted when `store` is set to "
        "false. Try again with `store` set to true, or remove this item from your input.",
        param="input",
    )


def response_not_found(response_id: str) -> SimError:
    return SimError(404, f"Response with id '{response_id}' not found.")


def only_background_streamable() -> SimError:
    # Wording unconfirmed: only a background response's events are kept to stream again.
    return SimError(400, "Only background responses can be streamed.", param="stream")


def only_background_cancellable() -> SimError:
    return SimError(400, "Only background responses can be cancelled.")


def background_needs_store() -> SimError:
    # Wording unconfirmed; the rule (background responses must be stored) is documented.
    return SimError(
        400,
        "Invalid value for 'store': background mode requires 'store' to be true.",
        param="store",
    )


def json_word_required_in_input() -> SimError:
    return SimError(
        400,
        "Response input messages must contain the word 'json' in some form to use 'text.format' "
        "of type 'json_object'.",
        param="input",
    )


# --- Files, batches, fine-tuning, vector stores, stored chat completions -------------------


def not_found(kind: str, object_id: str) -> SimError:
    """OpenAI's 404 for an unknown object id: "No such File object: file-abc" (param `id`)."""
    return SimError(404, f"No such {kind} object: {object_id}", param="id")


def expected_multipart(content_type: str) -> SimError:
    # Wording unconfirmed: what a JSON body sent to an upload endpoint gets.
    return SimError(
        400,
        f"Invalid Content-Type header ({content_type or 'none'}), expected multipart/form-data. "
        "(HINT: If you're using curl, you can pass -F 'file=@path/to/file'.)",
    )


def invalid_file(param: str, detail: str) -> SimError:
    return SimError(400, f"Invalid '{param}': {detail}", param=param, code="invalid_file")


def cannot_cancel(kind: str, status: str) -> SimError:
    # Wording unconfirmed.
    return SimError(400, f"Cannot cancel a {kind} with status '{status}'.", code="invalid_state")


def invalid_image_value(param: str, value: Any, model: str, supported: tuple[str, ...]) -> SimError:
    quoted = ", ".join(f"'{s}'" for s in supported)
    return SimError(
        400,
        f"Invalid value: '{echo(value)}'. Supported values for {model} are: {quoted}.",
        param=param,
        code="invalid_value",
    )


def string_too_long(param: str, maximum: int, length: int) -> SimError:
    return _over_limit(
        param, "string too long", f"a string with maximum length {maximum}",
        f"a string with length {length}", "string_above_max_length",
    )  # fmt: skip


def _over_limit(param: str, problem: str, expected: str, got: str, code: str) -> SimError:
    return SimError(
        400, f"Invalid '{param}': {problem}. Expected {expected}, but got {got} instead.",
        param=param, code=code,
    )  # fmt: skip
