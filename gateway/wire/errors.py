"""Every error the gateway answers, by name: the catalog.

Code that finds a problem raises what one of these builders returns; the ASGI edge turns the
`GatewayError` into the answer (its status, its headers, and the body every client SDK reads,
`{"error": {"message", "type", "param", "code"}}`), and a stream whose headers have left sends
the same object as an event. The wording is OpenAI's where OpenAI has an error for the case, so
clients handle both alike. Grouped by `type`; `{kind}` is a value the builder is given, `*` any
status, `-` no code:

invalid_request_error
  400  invalid_request               invalid_content_length    Content-Length is not a number
  400  malformed_request             malformed_request         not HTTP/1.x: a bad request line or header
  400  unsupported_upgrade           upgrade_with_body         a body with an Upgrade the gateway does not do
  400  invalid_json                  invalid_json              the body is empty or not JSON
  400  invalid_multipart             invalid_form              a form not in the one shape read here
  400  unsupported_form              urlencoded_form           pass-through: a urlencoded body
  400  ambiguous_query               ambiguous_query           pass-through: a `;` in the query
  400  invalid_type                  body_not_object           the JSON body is not an object
  400  missing_required_parameter    missing_model             a chat request names no model
  400  missing_required_parameter    missing_parameter         a required field is absent
  400  invalid_type                  invalid_type              a field has the wrong JSON type
  400  invalid_value                 invalid_value             a value OpenAI does not accept
  400  invalid_function_parameters   invalid_function_parameters  a function schema not of an object
  400  -                             invalid_response_schema   a response_format schema not of an object
  400  -                             unknown_forced_function   tool_choice names no declared function
  400  -                             stream_options_without_stream  stream_options, stream not true
  400  -                             without_tools             tool_choice or parallel_tool_calls, no tools
  400  -                             top_logprobs_without_logprobs  top_logprobs, logprobs not true
  400  -                             logit_bias_key            a logit_bias key that is no token id
  400  {kind}_below_min_value        below_minimum             a number under its minimum
  400  {kind}_above_max_value        above_maximum             a number over its maximum
  400  empty_array                   empty_array               an array that must not be empty
  400  array_above_max_length        array_too_long            an array over its length limit
  400  string_above_max_length       string_too_long           a string over its length limit
  400  object_above_max_properties   too_many_properties       an object with too many keys
  400  nesting_too_deep              nested_too_deep           a field nests objects too deeply
  400  unsupported_content           image_input_unsupported   an image for a text-only model
  400  unsupported_value             audio_unpriced            audio in or out of a chat completion, into a response
  400  unsupported_value             tool_unsupported          a hosted tool the model lacks
  400  tool_not_priced               tool_price_unset          a hosted tool without a configured price
  400  tool_not_priced               prompt_tools_unpriced     a stored prompt, hosted tools not all priced
  400  invalid_value                 unknown_model_or_policy   /v1/route: no such policy or model
  400  previous_response_not_found   previous_response_not_found  no such response of the team's
  400  invalid_batch_line            batch_line_invalid        a batch line the gateway cannot price
  400  empty_file                    batch_file_empty          a batch input file of no requests
  400  invalid_training_line         training_line_invalid     a training line not read alike by every parser, or too long
  400  model_not_available           not_fine_tunable          a model without a training price
  400  integration_not_allowed       integration_not_allowed   a fine-tuning integration the team may not use
  400  -                             not_background_response   cancel: a response not in background
  400  -                             not_background_stream     ?stream=true: a response not in background
  400  unsupported_parameter         translated_unsupported    background or prompt, on a translated model
  400  unsupported_parameter         unsupported_reference     an object kind the gateway does not own
  401  missing_api_key               missing_key               no API key
  401  invalid_api_key               invalid_key               unknown, revoked or expired key
  401  invalid_api_key               authorization_too_long    an Authorization header too long
  401  invalid_api_key               malformed_authorization   an Authorization header, no Bearer key
  404  model_not_found               model_not_found           no such model, or not the team's
  404  model_not_found               model_shut_down           shut down upstream, and no successor stands in
  404  -                             response_not_found        no such response of the team's
  404  -                             item_not_found            an input item's id: no item of the team's
  404  -                             file_not_found            no such file of the team's
  404  -                             vector_store_not_found    no such vector store of the team's
  404  -                             batch_not_found           no such batch of the team's
  404  -                             fine_tuning_job_not_found  no such fine-tuning job of the team's
  404  -                             chat_completion_not_found  no such stored chat completion of the team's
  404  unknown_url                   invalid_url               no such path
  404  unknown_url                   not_served                an OpenAI path the gateway keeps shut
  405  method_not_allowed            method_not_allowed        the path exists, the method not
  408  request_timeout               head_timeout              the request head came too slowly
  408  request_timeout               body_stalled              the request body stopped coming
  413  request_too_large             body_too_large            the body is over the size limit
  413  request_too_large             unsized_upload_too_large  an upload sent chunked, over the body limit
  415  unsupported_media_type        unsupported_media_type    a body that says it is not JSON
  415  unsupported_content_encoding  unsupported_content_encoding  a body in a Content-Encoding
  501  unsupported_transfer_encoding  unsupported_transfer_encoding  a transfer coding but chunked
  400  unsendable_request            unsendable_request        a header or path no wire can carry
  431  request_headers_too_large     headers_too_large         headers over the size limit
  499  client_closed                 client_closed             the client left before the answer
  *    -                             http_error                any other HTTP error of the router
  400  invalid_value                 admin_body_not_object     admin: the body is no JSON object
  400  invalid_value                 invalid_setting           admin: a setting the rules refuse
  400  invalid_value                 budget_too_large          admin: a budget too large to store
  400  invalid_value                 unknown_key_field         admin: a key field it does not know
  400  invalid_value                 key_name_invalid          admin: a key name too long
  400  invalid_value                 expires_at_invalid        admin: an expiry that is no Unix time
  400  invalid_value                 expires_at_in_past        admin: an expiry already past
  400  invalid_value                 invalid_team_name         admin: a malformed team name
  400  invalid_value                 team_rename_refused       admin: a change of team name
  400  invalid_value                 invalid_digest            teams file: no SHA-256 digest
  401  missing_{kind}_key            missing_operator_key      admin, /metrics: no admin (metrics) key
  401  invalid_{kind}_key            invalid_operator_key      admin, /metrics: a wrong one
  429  too_many_failed_keys          key_attempts_throttled    admin, metrics: too many wrong keys
  404  unknown_url                   metrics_not_served        /metrics: not on this port, or no key set
  404  not_found                     team_not_found            admin: no such team
  404  not_found                     key_not_found             admin: no such key
  409  conflict                      team_exists               admin: the team exists
  409  team_name_retired             team_name_retired         admin: a deleted team's name, no `inherit`
permission_error
  403  forbidden_path                account_path_forbidden    the upstream account's admin paths
  403  realtime_not_governed         realtime_not_governed     realtime sessions/secrets, unless allowed
insufficient_quota
  429  insufficient_quota            budget_exceeded           the team's monthly budget is spent
  429  request_over_budget           request_over_budget       a worst case over what is left
{kind}: tokens or requests, the limit's unit
  429  rate_limit_exceeded           rate_limit_reached        a rate limit is used up for now
  429  rate_limit_exceeded           request_over_limit        one request over a limit's size
  429  too_many_requests_in_flight   too_many_requests_in_flight  server.max_team_requests in flight
server_error
  500  internal_error                internal_error            a bug: the log has the traceback
  503  store_unavailable             store_unavailable         Redis did not answer a read needed
  503  too_many_connections          too_many_connections      server.max_connections are open
  503  upstream_key_missing          team_upstream_key_missing a team's own upstream key is unset
  503  budget_store_unavailable      budget_store_unavailable  Redis down, budgets fail closed
  503  rate_limit_store_unavailable  rate_limits_unchecked     Redis down, rate limits fail closed
upstream_error
  502  upstream_unreachable          upstream_unreachable      no connection, or it broke
  502  upstream_truncated            upstream_truncated        the answer's body was cut off
  502  upstream_encoding             unsupported_encoding      a 2xx body encoding it cannot decode
  502  upstream_encoding             undecodable_body          a 2xx body its encoding does not decode
  502  upstream_invalid_answer       upstream_invalid_answer   a 200 that is no JSON object
  *    upstream_error                upstream_status           an error page without OpenAI's
                                                               error object (its status kept)
  *    upstream_error                edge_page                 the same, a front end's 504 or
                                                               524 to a request sent: maybe
                                                               answered and billed
  502  upstream_redirect             upstream_redirect         a 3xx: a front end that passed
                                                               the call on to no one
  502  invalid_model_output          invalid_model_output      an emulated answer wrong twice (or
                                                               once, with no room left to repair)
  503  upstream_circuit_open         circuit_open              the upstream kept failing: paused
  504  upstream_timeout              upstream_timeout          the upstream took too long

Upstream's own error object reaches the client with its status, `type`, `param` and `code`;
its message too, unless it is about the upstream account every team shares
(`upstream_message`).

`x-should-retry: false` (which the OpenAI SDKs obey) marks every error a repeat cannot fix, and
every upstream failure the gateway already retried (`mark_retries_spent`).

An upstream failure also says whether the request had been written before it failed (`sent`:
upstream may be working on it, and bills a whole answer it finishes), which decides whether the
gateway may try again and what it charges (`billed`).

Pure: builds exceptions and bytes, never touches I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from gateway.wire import sse
from gateway.wire.headers import go_duration


def error_body(
    message: str, type_: str, param: str | None = None, code: str | None = None
) -> bytes:
    return orjson.dumps(error_object(message, type_, param, code))


def error_object(
    message: str, type_: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """The body as a dict: what a stream sends as its error event once headers have left."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


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
        # Upstream failures only. `sent`: the request had been written to the upstream when the
        # call failed, so upstream may be generating (and billing) an answer nobody reads.
        # `billed`: the call ended so on a whole answer, which upstream bills whole: charged
        # its hold, never retried.
        self.sent = False
        self.billed = False

    def body(self) -> bytes:
        return error_body(self.message, self.type, self.param, self.code)

    def payload(self) -> dict[str, Any]:
        return error_object(self.message, self.type, self.param, self.code)


def responses_stream_error(
    exc: GatewayError, response: Mapping[str, Any] | None, sequence_number: int
) -> bytes:
    """`exc` ending a Responses API stream whose headers have gone out, as OpenAI ends one: an
    `error` event carrying the error object (which the SDKs raise), then `response.failed`
    with the error and no usage (when the stream named its response: `response`)."""
    error = {"type": "error", "sequence_number": sequence_number, **exc.payload()}
    out = b"event: error\ndata: " + orjson.dumps(error) + b"\n\n"
    if response is None:
        return out
    failed = {
        **response,
        "status": "failed",
        "error": {"code": exc.code or exc.type, "message": exc.message},
        "usage": None,
    }
    closing = {
        "type": "response.failed",
        "sequence_number": sequence_number + 1,
        "response": failed,
    }
    return out + b"event: response.failed\ndata: " + orjson.dumps(closing) + b"\n\n"


def mask_key(key: str) -> str:
    """Mask a secret the way OpenAI does in its 401 message: first 5, last 2."""
    if len(key) <= 8:
        return "*" * len(key)
    return f"{key[:5]}***{key[-2:]}"


# -- the request as it arrives --------------------------------------------------------------------


def invalid_content_length() -> GatewayError:
    return GatewayError(400, "Invalid Content-Length header.", code="invalid_request")


def invalid_json(detail: str) -> GatewayError:
    return GatewayError(
        400,
        "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
        "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
        f"sent was not valid JSON. If you have trouble figuring out how to fix this, please "
        f"contact us through our help center at help.openai.com.) Detail: {detail}",
        code="invalid_json",
    )


def invalid_form(detail: str) -> GatewayError:
    """A multipart form goes upstream as it came: one the gateway cannot read for certain as
    upstream will could carry a field it never checked."""
    return GatewayError(
        400,
        f"We could not read the multipart/form-data body of your request: {detail}. Send it as "
        "HTTP libraries encode forms (CRLF line breaks, quoted field names, one boundary).",
        code="invalid_multipart",
    )


def urlencoded_form() -> GatewayError:
    """A pass-through body is checked for the model and the ids it names; a urlencoded one is
    not read (parsers differ on `;`, `+` and repeated keys), so it is not sent unchecked."""
    return GatewayError(
        400,
        "An application/x-www-form-urlencoded body is not accepted on this path: send its "
        "fields as JSON (application/json) or as multipart/form-data.",
        code="unsupported_form",
    )


def ambiguous_query() -> GatewayError:
    """Some servers split a query at `;` as at `&`, others keep it in the value: an id the
    gateway read as part of another value could reach upstream as one of its own."""
    return GatewayError(
        400,
        "The query string contains ';', which servers read differently (a separator to some, "
        "part of a value to others). Percent-encode it as %3B.",
        code="ambiguous_query",
    )


def body_not_object(body: object) -> GatewayError:
    return GatewayError(
        400,
        f"Invalid type for request body: expected an object, but got {type(body).__name__} "
        "instead.",
        code="invalid_type",
    )


def unsupported_media_type(content_type: str) -> GatewayError:
    return GatewayError(
        415,
        f"Unsupported content type: '{content_type}'. This endpoint expects 'application/json'.",
        code="unsupported_media_type",
    )


def unsupported_content_encoding(coding: str) -> GatewayError:
    return GatewayError(
        415,
        f"Unsupported Content-Encoding: '{coding}'. Send the request body uncompressed.",
        code="unsupported_content_encoding",
    )


def unsupported_transfer_encoding(coding: str) -> GatewayError:
    # RFC 9112's answer to a transfer coding the server does not undo.
    return GatewayError(
        501,
        f"Unsupported Transfer-Encoding: '{coding}'. Only 'chunked' is accepted.",
        code="unsupported_transfer_encoding",
    )


def body_too_large(limit: int) -> GatewayError:
    message = f"Request body too large: the limit is {limit} bytes."
    return GatewayError(413, message, code="request_too_large")


def unsized_upload_too_large(limit: int, upload_limit: int) -> GatewayError:
    message = (
        f"Request body too large: a file upload sent without a Content-Length may be at most "
        f"{limit} bytes; one that declares its length, up to {upload_limit}."
    )
    return GatewayError(413, message, code="request_too_large")


def headers_too_large(size: int, limit: int) -> GatewayError:
    message = f"Request headers too large: {size} bytes; the limit is {limit}."
    return GatewayError(431, message, code="request_headers_too_large")


def malformed_request(detail: str) -> GatewayError:
    """What the HTTP parser could not read (httptools' reason, e.g. "Invalid header value char")."""
    return GatewayError(
        400, f"The request is not valid HTTP/1.1: {detail}.", code="malformed_request"
    )


def upgrade_with_body(protocol: str) -> GatewayError:
    return GatewayError(
        400,
        f"The request asks to switch to another protocol (Upgrade: {protocol}), which this "
        "gateway does not do, and then its body cannot be read: send it without the Upgrade "
        "header (curl: --http1.1 instead of --http2 on an http:// URL).",
        code="unsupported_upgrade",
    )


# The SDKs retry a 408: a request slowed down on its way may well pass next time.
def head_timeout(seconds: float) -> GatewayError:
    message = f"The request's headers did not all arrive within {seconds:g} s."
    return GatewayError(408, message, code="request_timeout")


def body_stalled(seconds: float) -> GatewayError:
    message = f"The request body stopped arriving: nothing came for {seconds:g} s."
    return GatewayError(408, message, code="request_timeout")


def invalid_url(method: str, path: str) -> GatewayError:
    # OpenAI's own wording for an unknown route.
    return GatewayError(404, f"Invalid URL ({method} {path})", code="unknown_url")


def not_served(method: str, path: str) -> GatewayError:
    """A path outside the endpoint table: the gateway serves only what it can govern."""
    return GatewayError(
        404,
        f"Invalid URL ({method} {path}): this gateway does not serve this endpoint. Ask its "
        "operator to allow it (passthrough.allow) if you need it.",
        code="unknown_url",
    )


def method_not_allowed(method: str, path: str) -> GatewayError:
    return GatewayError(
        405, f"Method {method} is not allowed for {path}.", code="method_not_allowed"
    )


def http_error(status: int, detail: str) -> GatewayError:
    """Any other HTTP error the router raises, passed on with its own status and detail."""
    return GatewayError(status, detail)


def client_closed() -> GatewayError:
    # 499 is nginx's "client closed request": nobody reads this answer, but logs and metrics do.
    return GatewayError(
        499, "The client closed the connection before the answer was ready.", code="client_closed"
    )


# -- who is calling -------------------------------------------------------------------------------


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


def malformed_authorization() -> GatewayError:
    """An Authorization header that carries no bearer key: a key that fails, never no key (only
    a request without the header may be served as the anonymous team)."""
    return GatewayError(
        401,
        "The Authorization header is not a bearer key. Send your API key as "
        "Authorization: Bearer YOUR_KEY.",
        code="invalid_api_key",
    )


def authorization_too_long(size: int, limit: int) -> GatewayError:
    # 401, not 431: the SDKs raise AuthenticationError for it, and a key that long is no key.
    return GatewayError(
        401,
        f"The Authorization header is {size} bytes long; the gateway accepts at most {limit}. "
        "Send your API key as: Authorization: Bearer YOUR_KEY.",
        code="invalid_api_key",
    )


def realtime_not_governed() -> GatewayError:
    return GatewayError(
        403,
        "Realtime sessions and client secrets are not available through this gateway: the "
        "credential they hand out is used directly with OpenAI, so their cost cannot be "
        "metered or charged to your team. Ask the gateway's operator to allow them for your "
        "team (passthrough.allow with teams).",
        type_="permission_error",
        code="realtime_not_governed",
    )


def account_path_forbidden() -> GatewayError:
    return GatewayError(
        403,
        "The upstream account's organization endpoints are not available through the gateway.",
        type_="permission_error",
        code="forbidden_path",
    )


# -- request validation, in OpenAI's wording ------------------------------------------------------


def missing_model() -> GatewayError:
    return GatewayError(
        400, "you must provide a model parameter", param="model",
        code="missing_required_parameter",
    )  # fmt: skip


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


def stream_options_without_stream() -> GatewayError:
    """`stream_options` in a request that does not stream: OpenAI refuses it whatever the
    model, so a patched request that would drop it is refused as an unpatched one is."""
    return GatewayError(
        400, "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
        param="stream_options",
    )  # fmt: skip


def without_tools(param: str) -> GatewayError:
    """`tool_choice` or `parallel_tool_calls` (`param`) in a chat request without `tools`:
    OpenAI refuses either whatever the model (its recorded words)."""
    return GatewayError(
        400,
        f"Invalid value for '{param}': '{param}' is only allowed when 'tools' are specified.",
        param=param,
    )


def top_logprobs_without_logprobs() -> GatewayError:
    """`top_logprobs` in a request whose `logprobs` is not true (OpenAI's recorded words)."""
    return GatewayError(
        400, "The 'top_logprobs' parameter is only allowed when 'logprobs' is enabled.",
        param="top_logprobs",
    )  # fmt: skip


def logit_bias_key(token: str) -> GatewayError:
    """A `logit_bias` key that is no token id (OpenAI's recorded words)."""
    message = f"Invalid key in 'logit_bias': {token}."
    return GatewayError(
        400, message + " You should only be submitting non-negative integers.", param="logit_bias"
    )


def invalid_function_parameters(param: str, name: str, got: object) -> GatewayError:
    """A function's `parameters` schema whose root is no object: arguments are always one."""
    return GatewayError(
        400, _schema_not_object(f"function '{name}'", got), param=param,
        code="invalid_function_parameters",
    )  # fmt: skip


def unknown_forced_function(param: str, name: str) -> GatewayError:
    """A `tool_choice` (or legacy `function_call`) forcing a function the request does not
    declare: no model can call it. OpenAI's form for an invalid value (wording unconfirmed)."""
    listed = "'functions'" if param == "function_call" else "'tools'"
    return GatewayError(
        400, f"Invalid value for '{param}': function '{name}' is not declared in {listed}.",
        param=param,
    )  # fmt: skip


def invalid_response_schema(param: str, name: str, got: object) -> GatewayError:
    """A `json_schema` response format whose root is no object: a structured answer is one."""
    return GatewayError(400, _schema_not_object(f"response_format '{name}'", got), param=param)


def _schema_not_object(subject: str, got: object) -> str:
    # OpenAI's words: 'type: "None"' for no type; a type that is no string is not echoed.
    if got is not None and type(got) is not str:
        got = "an unknown type"
    return (
        f"Invalid schema for {subject}: schema must be a JSON Schema of 'type: \"object\"', "
        f"got 'type: \"{got}\"'."
    )


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


def too_many_properties(param: str, maximum: int, got: int) -> GatewayError:
    """OpenAI's recorded words (`logit_bias` over 1,024 tokens); the code is as its other
    schema errors spell theirs (unrecorded)."""
    return GatewayError(
        400,
        f"Invalid '{param}': too many properties. Expected an object with at most {maximum} "
        f"properties, but got an object with {got} properties instead.",
        param=param,
        code="object_above_max_properties",
    )


def nested_too_deep(param: str, maximum: int) -> GatewayError:
    return GatewayError(
        400,
        f"Invalid '{param}': JSON nested too deeply. Expected at most {maximum} levels of "
        "objects and arrays in the request body.",
        param=param,
        code="nesting_too_deep",
    )


def _number(value: float) -> str:
    # 1000000, not 1e+06: the caller compares it with what they sent.
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return str(value)


# -- stored responses ----------------------------------------------------------------------------


def response_not_found(response_id: str) -> GatewayError:
    """Another team's response reads exactly like one that never existed."""
    return GatewayError(404, f"Response with id '{response_id}' not found.")


def item_not_found(item_id: str) -> GatewayError:
    """Upstream's own 404 for an input item given by an id it does not store (recorded for a
    reasoning item); another team's item reads exactly like it."""
    return GatewayError(
        404,
        f"Item with id '{item_id}' not found. Items are not persisted when `store` is set to "
        "false. Try again with `store` set to true, or remove this item from your input.",
        param="input",
    )


def previous_response_not_found(response_id: str) -> GatewayError:
    return GatewayError(
        400, f"Previous response with id '{response_id}' not found.",
        param="previous_response_id", code="previous_response_not_found",
    )  # fmt: skip


def not_background_response() -> GatewayError:
    return GatewayError(400, "Only background responses can be cancelled.")


def not_background_stream() -> GatewayError:
    """`GET /v1/responses/{id}?stream=true` of a response not run in the background: its
    events are not kept to stream again (wording unconfirmed, as the simulator's)."""
    return GatewayError(400, "Only background responses can be streamed.", param="stream")


def unsupported_reference(param: str) -> GatewayError:
    """A body naming an object of a kind the gateway does not serve: it belongs to no team."""
    return GatewayError(
        400, f"Unsupported parameter: '{param}' names an object this gateway does not serve.",
        param=param, code="unsupported_parameter",
    )  # fmt: skip


def translated_unsupported(param: str, model: str) -> GatewayError:
    """The gateway serves this model's Responses API itself, answering while the client waits,
    from what the request spells out (a stored prompt template lives upstream only)."""
    return GatewayError(
        400,
        f"Unsupported parameter: '{param}' is not supported with the model '{model}', "
        "whose Responses API this gateway serves by translation to chat completions.",
        param=param, code="unsupported_parameter",
    )  # fmt: skip


# -- objects a team made upstream: another team's reads exactly like one that never existed ------


def file_not_found(file_id: str) -> GatewayError:
    """Upstream's own 404 for an unknown file id."""
    return GatewayError(404, f"No such File object: {file_id}", param="id")


def batch_not_found(batch_id: str) -> GatewayError:
    return GatewayError(404, f"No such Batch object: {batch_id}", param="id")


def batch_line_invalid(line: int, why: str) -> GatewayError:
    """A batch input line the gateway cannot hold a worst case for."""
    return GatewayError(
        400, f"Line {line} of the batch's input file cannot be accepted: {why}.",
        param="input_file_id", code="invalid_batch_line",
    )  # fmt: skip


def batch_file_empty() -> GatewayError:
    """A batch's input file of no lines but blank ones: upstream would fail the batch
    (`empty_file`), and the gateway has no model to count it against."""
    return GatewayError(
        400, "The batch's input file has no requests.", param="input_file_id", code="empty_file"
    )


def training_line_invalid(line: int, why: str) -> GatewayError:
    """A training file line the gateway cannot count as upstream would train it."""
    return GatewayError(
        400, f"Line {line} of the job's training file cannot be accepted: {why}.",
        param="training_file", code="invalid_training_line",
    )  # fmt: skip


def fine_tuning_job_not_found(job_id: str) -> GatewayError:
    return GatewayError(404, f"No such FineTuningJob object: {job_id}", param="id")


def not_fine_tunable(name: str) -> GatewayError:
    """A model the team may use that the gateway has no training price for: OpenAI's words for
    a model it does not fine-tune."""
    return GatewayError(
        400, f"Model {name} is not available for fine-tuning or does not exist.", param="model",
        code="model_not_available",
    )  # fmt: skip


def integration_not_allowed(param: str, why: str) -> GatewayError:
    """A fine-tuning job's integration that would send its metrics where the team may not: the
    upstream account's Weights & Biases key reaches every entity of the account."""
    return GatewayError(
        400,
        f"Integration not allowed ('{param}'): {why}. A team's fine-tuning jobs report to the "
        "W&B entity and projects the gateway's admin allowed it (wandb_entity, wandb_projects).",
        param=param,
        code="integration_not_allowed",
    )


def vector_store_not_found(store_id: str) -> GatewayError:
    return GatewayError(404, f"No such VectorStore object: {store_id}", param="id")


def chat_completion_not_found(completion_id: str) -> GatewayError:
    return GatewayError(404, f"Completion with id '{completion_id}' not found.")


# -- models and what they accept ------------------------------------------------------------------


def model_not_found(name: str) -> GatewayError:
    message = f"The model `{name}` does not exist or you do not have access to it."
    return GatewayError(404, message, code="model_not_found")


def model_shut_down(name: str, shutdown: str, successor: str = "") -> GatewayError:
    """A model upstream no longer serves, that no successor serves instead here (`successor`:
    the model serving requests that name it where one can stand in, never this one)."""
    if successor:
        message = (
            f"The model `{name}` was shut down on {shutdown}; its successor `{successor}` cannot"
            " stand in for it here (a fine-tune, fine-tuning, an upload's form): name a model"
            " served today."
        )
    else:
        message = (
            f"The model `{name}` was shut down on {shutdown} and no successor is configured for"
            " it; ask your gateway operator which model replaces it."
        )
    return GatewayError(404, message, code="model_not_found")


def unknown_model_or_policy(name: str, policies: Iterable[str]) -> GatewayError:
    listed = ", ".join(policies) or "none configured"
    return _invalid_value("model", f"`{name}` is neither a routing policy ({listed}) nor a model.")


def image_input_unsupported(message_index: int, part_index: int, part_type: str) -> GatewayError:
    """An image in a message's content part, for a model without image input."""
    param = f"messages.[{message_index}].content.[{part_index}].type"
    return GatewayError(
        400,
        f"Invalid content type at '{param}': this model does not accept images ('{part_type}'). "
        "Send text only, or choose a model that supports image input.",
        param=param,
        code="unsupported_content",
    )


def audio_unpriced(param: str, api: str = "chat completions") -> GatewayError:
    """Audio in or out of a chat completion, or into a response: OpenAI bills its tokens at
    their own prices, which neither path holds nor charges."""
    return GatewayError(
        400,
        f"Audio is not available on {api} through this gateway ('{param}'): OpenAI "
        "bills audio tokens at their own prices, which it cannot hold or charge here. Use "
        "/v1/audio/speech or /v1/audio/transcriptions for audio.",
        param=param,
        code="unsupported_value",
    )


def tool_unsupported(param: str, tool_type: str, model: str) -> GatewayError:
    """A Responses API tool OpenAI hosts (web_search, file_search, ...) for a model served on
    chat completions, where only function tools exist."""
    return GatewayError(
        400,
        f"Tool '{tool_type}' is not supported with {model}: it is served through chat "
        "completions, which has only function tools.",
        param=param,
        code="unsupported_value",
    )


def tool_price_unset(param: str, tool_type: str, config_key: str) -> GatewayError:
    """A hosted tool OpenAI bills by the call or the container, whose price the operator has
    not configured: without it the gateway could neither hold nor charge what it costs."""
    return GatewayError(
        400,
        f"Tool '{tool_type}' is not available: OpenAI bills each of its calls beside the "
        f"tokens, and this gateway has no price for it. An operator can set `{config_key}` "
        "(USD) in the gateway's configuration to serve it.",
        param=param,
        code="tool_not_priced",
    )


def prompt_tools_unpriced(config_key: str) -> GatewayError:
    """A stored prompt template, which may bring any hosted tool the gateway cannot see, while
    one of them has no configured price."""
    return GatewayError(
        400,
        "A stored prompt template can bring hosted tools (web search, file search, image "
        "generation, code interpreter, shell) that OpenAI bills beside the tokens, and this "
        "gateway has no price for one of them. Send `max_tool_calls: 0` if the template uses none, or an operator "
        f"can set `{config_key}` (USD) in the gateway's configuration to serve it.",
        param="prompt",
        code="tool_not_priced",
    )


# -- admission: limits and budgets ----------------------------------------------------------------


def budget_exceeded(
    *,
    who: str,
    budget: int,
    spent: int,
    held: int,
    reserve: int,
    resets_at: datetime,
    headers: Mapping[str, str],
) -> GatewayError:
    """The monthly budget is spent. Amounts are micro-dollars; `who` says whose budget it is
    ("team NAME"). Retrying cannot help before the reset, so the SDKs are told not to."""
    return GatewayError(
        429,
        f"You exceeded your team's monthly budget: {who} may spend {_usd(budget)} this month "
        f"and has spent {_usd(spent)}, with {_usd(held)} held for requests in flight; this "
        f"request could cost up to {_usd(reserve)}. The budget resets on "
        f"{resets_at:%Y-%m-%d %H:%M} UTC.",
        type_="insufficient_quota",
        code="insufficient_quota",
        headers={**headers, "x-should-retry": "false"},
    )


# When what requests in flight hold is all that keeps a request out: the time to wait.
HELD_RETRY_MS = 200


def request_over_budget(
    *,
    who: str,
    budget: int,
    spent: int,
    held: int,
    reserve: int,
    left: int,
    param: str | None,
    fitting_cap: int | None,
    fits_once_settled: bool,
    resets_at: datetime,
    headers: Mapping[str, str],
) -> GatewayError:
    """The budget is not spent, but this request's worst case is more than what is left of it.
    `param` names the field that caps the answer (None: the request has no such field), and
    `fitting_cap` the largest value of it that fits (None: none does). Repeating helps only
    when what requests in flight hold is in the way (`fits_once_settled`)."""
    message = (
        f"This request could cost up to {_usd(reserve)} (its worst case), more than {who} has "
        f"left of its monthly budget: {_usd(left)} of {_usd(budget)} ({_usd(spent)} spent, "
        f"{_usd(held)} held for requests in flight)."
    )
    if param is not None and fitting_cap is not None:
        message += f" Set {param} to at most {fitting_cap} for it to fit."
    elif param is not None:
        message += (
            f" No {param} makes it fit: its input (and any hosted tool calls, `max_tool_calls`)"
            " alone costs about that much."
        )
    else:
        message += " A smaller request may fit."
    out = dict(headers)
    if fits_once_settled and held > 0:
        message += " What requests in flight hold is freed as they finish: retry then."
        # Soon: what is in the way is often a call just answered by another worker or replica,
        # whose charge lands within milliseconds (the SDKs read retry-after-ms first).
        out["retry-after"] = "1"
        out["retry-after-ms"] = str(HELD_RETRY_MS)
    else:
        message += f" The budget resets on {resets_at:%Y-%m-%d %H:%M} UTC."
        out["x-should-retry"] = "false"
    return GatewayError(
        429, message, type_="insufficient_quota", param=param, code="request_over_budget",
        headers=out,
    )  # fmt: skip


def rate_limit_reached(
    *,
    model: str,
    scope: str,
    label: str,
    kind: str,
    limit: int,
    used: int,
    requested: int,
    wait_ms: int,
    headers: Mapping[str, str],
) -> GatewayError:
    """A rate limit is used up for now: OpenAI's wording, with when to retry. `kind` is the
    limit's unit ("tokens" or "requests"), `label` its name ("tokens per min (TPM)"), `scope`
    whose it is ("team NAME" or "key ID")."""
    return GatewayError(
        429,
        f"Rate limit reached for {model} in {scope} on {label}: Limit {limit}, Used {used}, "
        f"Requested {requested}. Please try again in {go_duration(wait_ms / 1000)}.",
        type_=kind,
        code="rate_limit_exceeded",
        headers={
            **headers,
            "retry-after": str(max(1, -(-wait_ms // 1000))),
            "retry-after-ms": str(wait_ms),
        },
    )


def request_over_limit(
    *,
    model: str,
    scope: str,
    label: str,
    kind: str,
    limit: int,
    requested: int,
    headers: Mapping[str, str],
) -> GatewayError:
    """One request costs more than the limit ever allows, so waiting would not help."""
    return GatewayError(
        429,
        f"Request too large for {model} in {scope} on {label}: Limit {limit}, "
        f"Requested {requested}. The input or output tokens must be reduced in order to run "
        "successfully.",
        type_=kind,
        code="rate_limit_exceeded",
        headers={**headers, "x-should-retry": "false"},
    )


def budget_store_unavailable() -> GatewayError:
    return GatewayError(
        503,
        "The gateway cannot check your team's budget right now (its store is unreachable). "
        "Please retry shortly.",
        type_="server_error",
        code="budget_store_unavailable",
    )


def rate_limits_unchecked() -> GatewayError:
    return GatewayError(
        503,
        "The gateway cannot check rate limits right now (its store is unreachable). "
        "Please retry shortly.",
        type_="server_error",
        code="rate_limit_store_unavailable",
    )


def _usd(micros: int) -> str:
    return f"${micros / 1_000_000:,.2f}" if micros % 10_000 == 0 else f"${micros / 1_000_000:,.6f}"


# -- the upstream ---------------------------------------------------------------------------------


def _upstream(status: int, message: str, code: str, sent: bool = True) -> GatewayError:
    error = GatewayError(status, message, type_="upstream_error", code=code)
    error.sent = sent
    return error


def upstream_unreachable(detail: str, *, sent: bool) -> GatewayError:
    """No connection (`sent` False: the request reached no one), or one that broke after the
    request was written and before any answer (`sent`)."""
    message = f"The gateway could not reach the upstream API: {detail}"
    return _upstream(502, message, "upstream_unreachable", sent)


def upstream_timeout(seconds: float, *, sent: bool) -> GatewayError:
    """No connection within `seconds` (not `sent`), or no answer within them after the request
    was written (`sent`)."""
    message = f"The upstream API did not answer within {seconds:g} s."
    return _upstream(504, message, "upstream_timeout", sent)


def upstream_truncated(detail: str) -> GatewayError:
    """The answer's headers came, its body was cut off (a reset, an unclean TLS close, a
    compressed body that stops early): never relayed as a whole answer."""
    return _upstream(502, f"The upstream API's answer was cut off: {detail}", "upstream_truncated")


def upstream_invalid_answer(detail: str) -> GatewayError:
    """A 200 whose body is not the JSON object the API answers with: never relayed as an
    answer, which no client could read."""
    message = f"The upstream API's answer could not be read: {detail}"
    return _upstream(502, message, "upstream_invalid_answer")


def upstream_status(status: int) -> GatewayError:
    """An upstream error answer without OpenAI's error object (a proxy's or CDN's HTML page),
    told in OpenAI's shape with the status it came with."""
    message = f"The upstream API answered with HTTP status {status} and no error object."
    return _upstream(status, message, "upstream_error")


def upstream_redirect(status: int) -> GatewayError:
    """A redirect (3xx) where the API answers: a front end (an SSO proxy, a host that moved)
    that passed the call on to no one, so nothing was generated or billed (not `sent`). The
    gateway follows no redirects, and relayed, the status would be one no client reads as an
    error, its `Location` one the gateway does not vouch for. The same call is redirected
    again: not worth a retry."""
    error = _upstream(
        502,
        f"The upstream API answered with a redirect (HTTP status {status}), which the gateway "
        "does not follow.",
        "upstream_redirect",
        sent=False,
    )
    error.headers["x-should-retry"] = "false"
    return error


def edge_page(status: int) -> GatewayError:
    """A front end's own timeout page (a load balancer's 504, a CDN's 524: no OpenAI error
    object) to a request written whole, which may stand where an answer the API went on to
    finish, and bill, should have come (the front end stopped waiting for it). So it is not
    repeated, by the gateway or its client: a repeat would be billed again."""
    error = _upstream(
        status,
        f"The upstream API's front end answered with HTTP status {status} and no error object, "
        "after the request was sent: the API may have answered it, and billed it.",
        "upstream_error",
    )
    error.headers["x-should-retry"] = "false"
    return error


def is_error_object(content: bytes) -> bool:
    """Whether an error answer's body is OpenAI's error object (`{"error": {...}}`)."""
    try:
        payload = orjson.loads(content)
    except orjson.JSONDecodeError:
        return False
    return isinstance(payload, dict) and isinstance(payload.get("error"), dict)


def upstream_error_body(
    status: int, content: bytes, heard: Heard | None = None, *, own_key: bool = False
) -> bytes:
    """An upstream error answer's body as the client gets it: OpenAI's error object, its status,
    `type`, `param` and `code` as they came (what the SDKs act on) and its message as
    `upstream_message` tells it (upstream's own words to `heard`, when they differ); anything
    else replaced by `upstream_status`, so every SDK can read the error."""
    try:
        payload = orjson.loads(content)
    except orjson.JSONDecodeError:
        payload = None
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        return upstream_status(status).body()
    told = told_error(error, heard, status, own_key=own_key)
    return content if told is error else orjson.dumps({**payload, "error": told})


# Codes upstream refuses with for the account as a whole (its quota, its billing, its standing),
# whatever the request.
_ACCOUNT_CODES = frozenset(
    {
        "insufficient_quota", "billing_hard_limit_reached", "billing_not_active",
        "account_deactivated", "access_terminated",
    }
)  # fmt: skip
# What names the upstream account in a message: its organization and project ids (24
# characters after the prefix), and a key of its (OpenAI quotes a refused key masked, its head
# and tail still shown). Words a request echoes (`org-chart`, `sk-learn`) are too short for one.
_KEY = r"sk-(?=[A-Za-z0-9_-]*[*0-9])[A-Za-z0-9_*-]{6,}"
_ACCOUNT_IDS = re.compile(rf"\b(?:org-[A-Za-z0-9]{{12,}}|proj_[A-Za-z0-9]{{12,}}|{_KEY})")
_KEYS = re.compile(rf"\b{_KEY}")
_RETRY_IN = re.compile(r"Please try again in ([0-9][0-9hms.]*)\.")
# The status an error has when it comes without one (in a stream, in a failed response).
# A batch's `token_limit_exceeded` is the organization's limit on the tokens its batches queue.
_STATUS_OF_CODE = {"rate_limit_exceeded": 429, "token_limit_exceeded": 429, "invalid_api_key": 401}


def upstream_message(status: int, error: Mapping[str, Any], *, own_key: bool = False) -> Any:
    """The message of upstream's error object `error` as a team is told it. Every team shares the
    gateway's upstream key, and upstream words its refusals of that key's account for the
    account's owner: a 429 names the organization and its usage across every team ("Rate
    limit reached for gpt-4o in organization org-... on tokens per min (TPM): Limit 30000,
    Used 29500, Requested 700"), a 401 quotes the key's head and tail. So a 401, a 403, a 429
    and an account's refusal (`_ACCOUNT_CODES`) are told in the gateway's words, keeping of
    upstream's only when to try again; any other message (a 400's, about the request) as it
    came, but for the account's ids in it. A call on the team's own upstream key (`own_key`,
    its `upstream_key_env`) is told that the refusal was of that key: the team's to fix, not
    the operator's (its organization may be the gateway's still, so upstream's words are not
    told either)."""
    message = error.get("message")
    if not isinstance(message, str):
        return message
    code, type_ = error.get("code"), error.get("type")
    code = code if isinstance(code, str) else None  # an unhashable one would fail `in`
    type_ = type_ if isinstance(type_, str) else None
    status = status or _STATUS_OF_CODE.get(code or "", 0)
    if own_key:
        key = whose = "your team's own upstream key"
        account, shared = f"The upstream account of {key}", f" for {key}"
        ask = "Please check that key's OpenAI project, or ask the gateway's operator."
    else:
        key, whose = "the gateway's own credentials", "the gateway's account"
        account = "The gateway's upstream account"
        shared = ", which every team of this gateway shares,"
        ask = "Please tell the gateway's operator."
    if code in _ACCOUNT_CODES or type_ in _ACCOUNT_CODES:
        return f"{account} cannot serve requests now ({code or type_}). {ask}"
    named = f", {code}" if code else ""
    if status == 429:
        unit = f" on {type_}" if type_ in ("requests", "tokens") else ""
        retry = _RETRY_IN.search(message)
        when = f" Please try again in {retry.group(1)}." if retry else ""
        return f"The upstream API's rate limit{unit}{shared} was reached.{when}"
    if status == 401:
        return f"The upstream API refused {key} (HTTP 401{named}), not your gateway key. {ask}"
    if status == 403:
        return f"The upstream API refused this request for {whose} (HTTP 403{named}). {ask}"
    return _ACCOUNT_IDS.sub("[redacted]", message)


# Hears upstream's error object (and its status, 0 when it came without one) whose message a
# team was told in other words: for the operator's log, which keeps upstream's.
Heard = Callable[[int, Mapping[str, Any]], None]
# Tells a team upstream's error object that came without a status (a stored object's: a failed
# batch's, job's or response's) as `told_error` tells it for that team's calls: on whose key
# they go, and where upstream's own words go (an `Attempt`'s `told`).
Tell = Callable[[dict[str, Any]], dict[str, Any]]


def logged_message(error: Mapping[str, Any]) -> str:
    """Upstream's message in `error` as the operator's log keeps it: whole, but for a key it
    quotes (a 401 quotes the refused key's head and tail), as no log holds keys."""
    return _KEYS.sub("[key]", str(error.get("message")))


def told_events(block: bytes, heard: Heard | None = None, *, own_key: bool = False) -> bytes:
    """Events of an upstream stream as the client is told them (what follows the last whole
    one as it came): an error's message in one as `upstream_message` tells it, in chat's
    `{"error": {...}}`, the Responses API's `error` event (nested or flat) and its
    `response.failed`. A block naming no error is passed on as it came."""
    if _ERROR_KEY not in block or _ERROR_OBJECT.search(block) is None:
        return block
    *events, rest = block.split(b"\n\n")
    told = (_told_event(event, heard, own_key) for event in events)
    return b"\n\n".join([*told, rest])


_ERROR_KEY = b'"error"'
# An error object, or the flat error event: not the `"error": null` every response carries.
_ERROR_OBJECT = re.compile(rb'"error"\s*:\s*\{|"type"\s*:\s*"error"')


def _told_event(event: bytes, heard: Heard | None, own_key: bool) -> bytes:
    data = sse.data_of(event) if _ERROR_OBJECT.search(event) is not None else None
    try:
        payload = orjson.loads(data) if data is not None else None
    except orjson.JSONDecodeError:
        return event
    if not isinstance(payload, dict):
        return event
    told = payload
    if payload.get("type") == "error" and "message" in payload:  # the flat error event
        told = told_error(payload, heard, own_key=own_key)
    elif isinstance(payload.get("error"), dict):
        told = {**payload, "error": told_error(payload["error"], heard, own_key=own_key)}
    response = payload.get("response")
    if isinstance(response, dict) and isinstance(response.get("error"), dict):
        error = told_error(response["error"], heard, own_key=own_key)
        told = {**payload, "response": {**response, "error": error}}
    if told == payload:
        return event
    kept = [line for line in event.split(b"\n") if not line.startswith(b"data:")]
    return b"\n".join([*kept, b"data: " + orjson.dumps(told)])


def told_error(
    error: dict[str, Any], heard: Heard | None = None, status: int = 0, *, own_key: bool = False
) -> dict[str, Any]:
    """An error object of upstream's (in an error answer of `status`, a stream, or an object:
    a failed response's, a failed batch's) as its client is told it: `upstream_message`'s
    (upstream's own words to `heard`, when they differ); the same object when they do not."""
    message = upstream_message(status, error, own_key=own_key)
    if message == error.get("message"):
        return error
    if heard is not None:
        heard(status, error)
    return {**error, "message": message}


def unsupported_encoding(coding: str) -> GatewayError:
    """The upstream compressed a successful answer with a coding the gateway cannot read (it
    asks for `identity`): relayed, it could be neither metered nor, by most clients, read. The
    answer came (`sent`): upstream generated it, and bills it."""
    error = _upstream(
        502,
        f"The upstream API answered with Content-Encoding {coding!r}, which the gateway cannot "
        "decode.",
        "upstream_encoding",
    )
    error.headers["x-should-retry"] = "false"  # the same request gets the same encoding
    return error


def undecodable_body(coding: str, detail: str) -> GatewayError:
    """A successful answer whose body its Content-Encoding does not decode (a corrupt gzip or
    deflate stream): upstream generated it, and bills it, but nobody can read it."""
    message = (
        f"The upstream API's answer could not be decoded: its {coding} body is corrupt ({detail})."
    )
    return _upstream(502, message, "upstream_encoding")


def unsendable_request(detail: str) -> GatewayError:
    """A request the HTTP/1.1 wire cannot carry as it is: nothing was sent upstream, so it says
    nothing about the upstream's health."""
    return GatewayError(
        400, f"The request cannot be sent upstream: {detail}.", code="unsendable_request"
    )


#: The OpenAI SDKs wait for a `retry-after` up to this long; a longer one they replace with
#: their own short backoff, which would only meet the same refusal again.
SDK_RETRY_AFTER_MAX_S = 60


def circuit_open(model: str, reopens_in_s: float) -> GatewayError:
    """`reopens_in_s`: how long until the breaker lets a probe call through."""
    wait = max(1, -int(-reopens_in_s // 1))
    return GatewayError(
        503,
        f"The upstream for {model} is failing; the gateway stopped sending it requests for now. "
        f"Please retry in {wait} s.",
        type_="upstream_error",
        code="upstream_circuit_open",
        headers={
            "retry-after": str(wait),
            "x-should-retry": "true" if wait <= SDK_RETRY_AFTER_MAX_S else "false",
        },
    )


def mark_retries_spent(headers: dict[str, str]) -> None:
    """An answer after the gateway spent its own retries on it: the client's retries would
    multiply the upstream calls, not the chances."""
    headers["x-should-retry"] = "false"


def invalid_model_output(detail: str, *, repaired: bool = True) -> GatewayError:
    """An emulated answer (tools, JSON) the model got wrong, even after one repair attempt.

    The SDKs retry every 5xx; this one is no passing fault (the gateway already retried once,
    with the repair prompt), so they are told not to spend their retries on it. Not
    `repaired`: what the request held left no room for a repair attempt, which the client's
    own retry (held anew) may make up for."""
    if not repaired:
        return GatewayError(
            502,
            "The model's answer did not follow the required format, and the request's "
            f"budget hold left no room for a repair attempt: {detail}",
            type_="upstream_error",
            code="invalid_model_output",
        )
    return GatewayError(
        502,
        "The model's answer did not follow the required format, even after one repair "
        f"attempt: {detail}",
        type_="upstream_error",
        code="invalid_model_output",
        headers={"x-should-retry": "false"},
    )


# -- the gateway itself ---------------------------------------------------------------------------


def too_many_requests_in_flight(team: str, limit: int) -> GatewayError:
    """A team has as many requests in flight on this gateway worker as one team may."""
    return GatewayError(
        429,
        f"Too many requests in flight for team {team}: Limit {limit} at once. Please retry "
        "once some of them have finished.",
        type_="requests",
        code="too_many_requests_in_flight",
        headers={"retry-after": "1"},
    )


def too_many_connections(limit: int) -> GatewayError:
    return GatewayError(
        503,
        f"The gateway has {limit} connections open, as many as it takes. Please retry shortly.",
        type_="server_error",
        code="too_many_connections",
        headers={"retry-after": "1"},
    )


def internal_error() -> GatewayError:
    return GatewayError(
        500, "The gateway had an internal error.", type_="server_error", code="internal_error"
    )


# -- the admin API and the teams file -------------------------------------------------------------


def missing_operator_key(kind: str, env: str) -> GatewayError:
    """No `kind` key ("admin", "metrics") where the operator set one; `env` is its variable."""
    return GatewayError(
        401,
        f"You didn't provide the {kind} key. Send it in an Authorization header using "
        f"Bearer auth (i.e. Authorization: Bearer ${env}).",
        code=f"missing_{kind}_key",
    )


def invalid_operator_key(kind: str) -> GatewayError:
    return GatewayError(401, f"Incorrect {kind} key provided.", code=f"invalid_{kind}_key")


def key_attempts_throttled(retry_after_s: float) -> GatewayError:
    """Too many wrong admin or metrics keys from this client address are waiting their turn:
    refused without looking at the key."""
    seconds = max(1, int(-(-retry_after_s // 1)))
    return GatewayError(
        429,
        f"Too many wrong keys from your address: try again in {seconds} s.",
        code="too_many_failed_keys",
        headers={"retry-after": str(seconds)},
    )


def metrics_not_served(method: str, path: str) -> GatewayError:
    return GatewayError(
        404,
        f"Invalid URL ({method} {path}): metrics are served on the metrics port "
        "(server.metrics_port), or here with the metrics key (GATEWAY_METRICS_KEY) when one is set.",
        code="unknown_url",
    )


def team_upstream_key_missing(env: str) -> GatewayError:
    """The team calls upstream with its own key, which the environment does not have: it is
    refused rather than served (and billed) on the gateway's shared key."""
    return GatewayError(
        503, f"The team's upstream key is not available (environment variable {env} is unset). "
        "Ask the gateway's operator.", type_="server_error", code="upstream_key_missing",
        headers={"x-should-retry": "false"},  # no retry sets an environment variable
    )  # fmt: skip


def store_unavailable(reason: str) -> GatewayError:
    message = f"The gateway's store (Redis) cannot be reached: {reason}. Please retry shortly."
    return GatewayError(503, message, type_="server_error", code="store_unavailable")


def admin_body_not_object() -> GatewayError:
    return GatewayError(400, "The body must be a JSON object.", code="invalid_value")


def invalid_setting(message: str) -> GatewayError:
    """A setting the admin API refuses; the message starts with the setting's dotted path (as a
    configuration rule's does), which becomes `param`."""
    return _invalid_value(message.split(":", 1)[0], message)


def budget_too_large(value: object, maximum: int) -> GatewayError:
    got = str(value)[:40]
    return invalid_setting(f"budget_usd: expected a USD amount of at most {maximum}, got {got!r}.")


def unknown_key_field(field: str, expected: Iterable[str]) -> GatewayError:
    return invalid_setting(f"{field}: unknown field (expected {', '.join(expected)}).")


def key_name_invalid(maximum: int) -> GatewayError:
    return invalid_setting(f"name: expected a string of at most {maximum} characters.")


def expires_at_invalid() -> GatewayError:
    return invalid_setting("expires_at: expected Unix seconds (an integer) or null.")


def expires_at_in_past() -> GatewayError:
    return invalid_setting("expires_at: must be in the future.")


def invalid_team_name() -> GatewayError:
    return _invalid_value(
        "name",
        "Team names are 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit.",
    )


def team_rename_refused() -> GatewayError:
    return _invalid_value("name", "Teams cannot be renamed.")


def invalid_digest() -> GatewayError:
    return _invalid_value("sha256", "Expected a lowercase hex SHA-256 digest.")


def _invalid_value(param: str, message: str) -> GatewayError:
    return GatewayError(400, message, param=param, code="invalid_value")


def team_not_found(name: str) -> GatewayError:
    return GatewayError(404, f"Team '{name}' was not found.", code="not_found")


def key_not_found(key_id: str) -> GatewayError:
    return GatewayError(404, f"Key '{key_id}' was not found.", code="not_found")


def team_exists(name: str) -> GatewayError:
    return GatewayError(409, f"Team '{name}' already exists.", param="name", code="conflict")


def team_name_retired(name: str, deleted_at: int) -> GatewayError:
    """A new team under a deleted team's name would inherit what is still kept under it; the
    admin has to say that it should."""
    when = datetime.fromtimestamp(deleted_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return GatewayError(
        409, f"The name '{name}' belonged to a team deleted on {when}. Its files, vector "
        "stores, batches, fine-tuning jobs, stored chat completions and responses, cached "
        f"answers and spend are still kept under that name: a new team '{name}' would "
        "inherit them all. Choose another name or, if the new team is to take them "
        'over, create it with "inherit": true (o1-gateway teams create --inherit).',
        param="name", code="team_name_retired",
    )  # fmt: skip
