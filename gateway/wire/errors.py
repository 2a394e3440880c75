"""OpenAI-shaped errors: the body every client SDK knows how to read.

Pure: builds bytes, never touches I/O.
"""

from __future__ import annotations

import orjson


def error_body(
    message: str, type_: str, param: str | None = None, code: str | None = None
) -> bytes:
    return orjson.dumps(
        {"error": {"message": message, "type": type_, "param": param, "code": code}}
    )


class GatewayError(Exception):
    """An error the gateway itself answers with, in OpenAI's shape and status."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> bytes:
        return error_body(self.message, self.type, self.param, self.code)


def invalid_json(detail: str) -> GatewayError:
    return GatewayError(
        400,
        "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
        "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
        f"sent was not valid JSON. If you have trouble figuring out how to fix this, please "
        f"contact us through our help center at help.openai.com.) Detail: {detail}",
        code="invalid_json",
    )


def unsupported_media_type(content_type: str) -> GatewayError:
    return GatewayError(
        415,
        f"Unsupported content type: '{content_type}'. This endpoint expects 'application/json'.",
        code="unsupported_media_type",
    )


def body_too_large(limit: int) -> GatewayError:
    return GatewayError(
        413,
        f"Request body too large: the limit is {limit} bytes.",
        code="request_too_large",
    )


def invalid_url(method: str, path: str) -> GatewayError:
    # OpenAI's own wording for an unknown route.
    return GatewayError(404, f"Invalid URL ({method} {path})", code="unknown_url")


def method_not_allowed(method: str, path: str) -> GatewayError:
    return GatewayError(
        405, f"Method {method} is not allowed for {path}.", code="method_not_allowed"
    )


def missing_key() -> GatewayError:
    return GatewayError(
        401,
        "You didn't provide an API key. You need to provide your API key in an Authorization "
        "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
        code="missing_api_key",
    )


def invalid_key(key: str) -> GatewayError:
    return GatewayError(
        401,
        f"Incorrect API key provided: {mask_key(key)}. Ask your gateway administrator for a valid key.",
        code="invalid_api_key",
    )


def upstream_unreachable(detail: str) -> GatewayError:
    return GatewayError(
        502,
        f"The gateway could not reach the upstream API: {detail}",
        type_="upstream_error",
        code="upstream_unreachable",
    )


def upstream_timeout(seconds: float) -> GatewayError:
    return GatewayError(
        504,
        f"The upstream API did not answer within {seconds:g} s.",
        type_="upstream_error",
        code="upstream_timeout",
    )


def client_closed() -> GatewayError:
    # 499 is nginx's "client closed request": nobody reads this answer, but logs and metrics do.
    return GatewayError(
        499, "The client closed the connection before the answer was ready.", code="client_closed"
    )


def mask_key(key: str) -> str:
    """Mask a secret the way OpenAI does in its 401 message: first 5, last 2."""
    if len(key) <= 8:
        return "*" * len(key)
    return f"{key[:5]}***{key[-2:]}"


# -- request validation, in OpenAI's wording ------------------------------------------------------


def missing_parameter(param: str) -> GatewayError:
    return GatewayError(
        400, f"Missing required parameter: '{param}'.", param=param,
        code="missing_required_parameter",
    )  # fmt: skip


def invalid_type(param: str, expected: str, got: str) -> GatewayError:
    return GatewayError(
        400, f"Invalid type for '{param}': expected {expected}, but got {got} instead.",
        param=param, code="invalid_type",
    )  # fmt: skip


def invalid_value(param: str, value: str, supported: tuple[str, ...]) -> GatewayError:
    listed = ", ".join(f"'{s}'" for s in supported[:-1]) + f", and '{supported[-1]}'"
    return GatewayError(
        400, f"Invalid value: '{value}'. Supported values are: {listed}.", param=param,
        code="invalid_value",
    )  # fmt: skip


def below_minimum(param: str, kind: str, minimum: float, got: float) -> GatewayError:
    """`kind` is OpenAI's word for the number: "integer" or "decimal"."""
    return GatewayError(
        400,
        f"Invalid '{param}': {kind} below minimum value. Expected a value >= {_number(minimum)}, "
        f"but got {_number(got)} instead.",
        param=param,
        code=f"{kind}_below_min_value",
    )


def above_maximum(param: str, kind: str, maximum: float, got: float) -> GatewayError:
    return GatewayError(
        400,
        f"Invalid '{param}': {kind} above maximum value. Expected a value <= {_number(maximum)}, "
        f"but got {_number(got)} instead.",
        param=param,
        code=f"{kind}_above_max_value",
    )


def empty_array(param: str) -> GatewayError:
    return GatewayError(
        400,
        f"Invalid '{param}': empty array. Expected an array with minimum length 1, but got an "
        "empty array instead.",
        param=param,
        code="empty_array",
    )


def array_too_long(param: str, maximum: int, got: int) -> GatewayError:
    return GatewayError(
        400,
        f"Invalid '{param}': array too long. Expected an array with maximum length {maximum}, "
        f"but got an array with length {got} instead.",
        param=param,
        code="array_above_max_length",
    )


def string_too_long(param: str, maximum: int, got: int) -> GatewayError:
    return GatewayError(
        400,
        f"Invalid '{param}': string too long. Expected a string with maximum length {maximum}, "
        f"but got a string with length {got} instead.",
        param=param,
        code="string_above_max_length",
    )


def nested_too_deep(param: str, maximum: int) -> GatewayError:
    return GatewayError(
        400,
        f"Invalid '{param}': JSON nested too deeply. Expected at most {maximum} levels of "
        "objects and arrays in the request body.",
        param=param,
        code="nesting_too_deep",
    )


def authorization_too_long(size: int, limit: int) -> GatewayError:
    # 401, not 431: the SDKs raise AuthenticationError for it, and a key that long is no key.
    return GatewayError(
        401,
        f"The Authorization header is {size} bytes long; the gateway accepts at most {limit}. "
        "Send your API key as: Authorization: Bearer YOUR_KEY.",
        code="invalid_api_key",
    )


def _number(value: float) -> str:
    # 1000000, not 1e+06: the caller compares it with what they sent.
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return str(value)


def circuit_open(model: str) -> GatewayError:
    return GatewayError(
        503,
        f"The upstream for {model} is failing; the gateway stopped sending it requests for now. "
        "Please retry shortly.",
        type_="upstream_error",
        code="upstream_circuit_open",
    )


def headers_too_large(size: int, limit: int) -> GatewayError:
    return GatewayError(
        431,
        f"Request headers too large: {size} bytes; the limit is {limit}.",
        code="request_headers_too_large",
    )
