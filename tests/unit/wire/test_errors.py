"""The error catalog: its docstring table and its builders say the same thing, and every builder
answers in OpenAI's shape."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from datetime import UTC, datetime

import orjson
import pytest

from gateway.wire import errors
from gateway.wire.errors import GatewayError

ROW = re.compile(r"^  (?P<status>\d{3}|\*)\s+(?P<code>\S+)\s+(?P<builder>\w+)\s+\S")


def table() -> dict[str, tuple[str, str, str]]:
    """builder -> (status, type, code) as the module docstring lists them."""
    rows: dict[str, tuple[str, str, str]] = {}
    group = ""
    for line in (errors.__doc__ or "").splitlines():
        if line and not line[0].isspace():
            group = line.split(":", 1)[0].split()[0]
        elif row := ROW.match(line):
            assert row["builder"] not in rows, f"{row['builder']} is listed twice"
            rows[row["builder"]] = (row["status"], group, row["code"])
    return rows


def builders() -> set[str]:
    return {
        name
        for name, value in vars(errors).items()
        if inspect.isfunction(value)
        and value.__module__ == errors.__name__
        and not name.startswith("_")
        and value.__annotations__.get("return") == "GatewayError"
    }


LIMIT_HEADERS = {"x-ratelimit-limit-tokens": "1000"}


def budget_spent() -> GatewayError:
    return errors.budget_exceeded(
        who="team a", budget=5_000_000, spent=4_990_000, held=5_000, reserve=20_000,
        resets_at=datetime(2026, 1, 1, tzinfo=UTC), headers=LIMIT_HEADERS,
    )  # fmt: skip


def worst_case_over_budget(held: int = 0) -> GatewayError:
    return errors.request_over_budget(
        who="team a", budget=1_000_000, spent=900_000, held=held, reserve=163_900,
        left=100_000 - held, param="max_completion_tokens", fitting_cap=9_987,
        fits_once_settled=True, resets_at=datetime(2026, 1, 1, tzinfo=UTC),
        headers=LIMIT_HEADERS,
    )  # fmt: skip


def tokens_used_up() -> GatewayError:
    return errors.rate_limit_reached(
        model="o1", scope="team a", label="tokens per min (TPM)", kind="tokens", limit=1000,
        used=900, requested=200, wait_ms=1500, headers=LIMIT_HEADERS,
    )  # fmt: skip


def request_too_large() -> GatewayError:
    return errors.request_over_limit(
        model="o1", scope="key k1", label="tokens per min (TPM)", kind="tokens", limit=1000,
        requested=5000, headers=LIMIT_HEADERS,
    )  # fmt: skip


SAMPLES: dict[str, Callable[[], GatewayError]] = {
    "invalid_content_length": errors.invalid_content_length,
    "malformed_request": lambda: errors.malformed_request("Invalid header value char"),
    "head_timeout": lambda: errors.head_timeout(10),
    "body_stalled": lambda: errors.body_stalled(30),
    "too_many_connections": lambda: errors.too_many_connections(4096),
    "invalid_json": lambda: errors.invalid_json("unexpected end of data"),
    "invalid_form": lambda: errors.invalid_form("a part has no name"),
    "urlencoded_form": errors.urlencoded_form,
    "ambiguous_query": errors.ambiguous_query,
    "body_not_object": lambda: errors.body_not_object([1]),
    "unsupported_media_type": lambda: errors.unsupported_media_type("text/plain"),
    "upgrade_with_body": lambda: errors.upgrade_with_body("h2c"),
    "unsupported_content_encoding": lambda: errors.unsupported_content_encoding("gzip"),
    "unsupported_transfer_encoding": lambda: errors.unsupported_transfer_encoding("gzip"),
    "body_too_large": lambda: errors.body_too_large(1024),
    "unsized_upload_too_large": lambda: errors.unsized_upload_too_large(1024, 4096),
    "headers_too_large": lambda: errors.headers_too_large(70_000, 65_536),
    "invalid_url": lambda: errors.invalid_url("GET", "/v2/nothing"),
    "not_served": lambda: errors.not_served("POST", "/v1/assistants"),
    "method_not_allowed": lambda: errors.method_not_allowed("PUT", "/v1/models"),
    "http_error": lambda: errors.http_error(400, "Bad Request"),
    "client_closed": errors.client_closed,
    "missing_key": errors.missing_key,
    "invalid_key": lambda: errors.invalid_key("sk-team-0123456789"),
    "authorization_too_long": lambda: errors.authorization_too_long(9000, 8192),
    "account_path_forbidden": errors.account_path_forbidden,
    "realtime_not_governed": errors.realtime_not_governed,
    "missing_model": errors.missing_model,
    "missing_parameter": lambda: errors.missing_parameter("messages[0].content"),
    "invalid_type": lambda: errors.invalid_type("n", "an integer", "a string"),
    "invalid_value": lambda: errors.invalid_value("messages[0].role", "boss", ("user", "tool")),
    "invalid_function_parameters": lambda: errors.invalid_function_parameters(
        "tools[0].function.parameters", "f", "string"
    ),
    "unknown_forced_function": lambda: errors.unknown_forced_function("tool_choice", "f"),
    "stream_options_without_stream": errors.stream_options_without_stream,
    "without_tools": lambda: errors.without_tools("parallel_tool_calls"),
    "top_logprobs_without_logprobs": errors.top_logprobs_without_logprobs,
    "logit_bias_key": lambda: errors.logit_bias_key("AI"),
    "invalid_response_schema": lambda: errors.invalid_response_schema(
        "response_format", "answer", "array"
    ),
    "below_minimum": lambda: errors.below_minimum("n", "integer", 1, 0),
    "above_maximum": lambda: errors.above_maximum("temperature", "decimal", 2.0, 2.5),
    "empty_array": lambda: errors.empty_array("messages"),
    "array_too_long": lambda: errors.array_too_long("stop", 4, 5),
    "string_too_long": lambda: errors.string_too_long("model", 256, 300),
    "too_many_properties": lambda: errors.too_many_properties("metadata", 16, 17),
    "nested_too_deep": lambda: errors.nested_too_deep("metadata", 32),
    "model_not_found": lambda: errors.model_not_found("gpt-9"),
    "model_shut_down": lambda: errors.model_shut_down("dall-e-3", "2026-05-12"),
    "unknown_model_or_policy": lambda: errors.unknown_model_or_policy("auto2", ["auto"]),
    "image_input_unsupported": lambda: errors.image_input_unsupported(1, 0, "image_url"),
    "response_not_found": lambda: errors.response_not_found("resp_abc"),
    "item_not_found": lambda: errors.item_not_found("rs_abc"),
    "file_not_found": lambda: errors.file_not_found("file-abc"),
    "vector_store_not_found": lambda: errors.vector_store_not_found("vs_abc"),
    "batch_not_found": lambda: errors.batch_not_found("batch_abc"),
    "batch_line_invalid": lambda: errors.batch_line_invalid(3, "it is not JSON"),
    "training_line_invalid": lambda: errors.training_line_invalid(2, "it gives the key 'a' twice"),
    "batch_file_empty": errors.batch_file_empty,
    "fine_tuning_job_not_found": lambda: errors.fine_tuning_job_not_found("ftjob-abc"),
    "not_fine_tunable": lambda: errors.not_fine_tunable("o1-mini"),
    "integration_not_allowed": lambda: errors.integration_not_allowed(
        "integrations[0].wandb.entity", "entity 'rivals' is not team a's ('ml')"
    ),
    "chat_completion_not_found": lambda: errors.chat_completion_not_found("chatcmpl-abc"),
    "previous_response_not_found": lambda: errors.previous_response_not_found("resp_abc"),
    "not_background_response": errors.not_background_response,
    "not_background_stream": errors.not_background_stream,
    "unsupported_reference": lambda: errors.unsupported_reference("conversation"),
    "translated_unsupported": lambda: errors.translated_unsupported("background", "o1-mini"),
    "tool_unsupported": lambda: errors.tool_unsupported("tools[0].type", "web_search", "o1-mini"),
    "tool_price_unset": lambda: errors.tool_price_unset(
        "tools[0].type", "web_search", "hosted_tools.web_search"
    ),
    "prompt_tools_unpriced": lambda: errors.prompt_tools_unpriced("hosted_tools.shell"),
    "audio_unpriced": lambda: errors.audio_unpriced("modalities"),
    "budget_exceeded": budget_spent,
    "request_over_budget": worst_case_over_budget,
    "rate_limit_reached": tokens_used_up,
    "request_over_limit": request_too_large,
    "too_many_requests_in_flight": lambda: errors.too_many_requests_in_flight("a", 256),
    "budget_store_unavailable": errors.budget_store_unavailable,
    "rate_limits_unchecked": errors.rate_limits_unchecked,
    "upstream_unreachable": lambda: errors.upstream_unreachable(
        "cannot connect (refused)", sent=False
    ),
    "upstream_timeout": lambda: errors.upstream_timeout(30.0, sent=True),
    "upstream_truncated": lambda: errors.upstream_truncated("connection lost mid-response"),
    "unsupported_encoding": lambda: errors.unsupported_encoding("zstd"),
    "undecodable_body": lambda: errors.undecodable_body("gzip", "incorrect header check"),
    "upstream_invalid_answer": lambda: errors.upstream_invalid_answer("no JSON object"),
    "upstream_status": lambda: errors.upstream_status(502),
    "edge_page": lambda: errors.edge_page(504),
    "upstream_redirect": lambda: errors.upstream_redirect(302),
    "unsendable_request": lambda: errors.unsendable_request("a header holds a line break"),
    "circuit_open": lambda: errors.circuit_open("o1", 12.2),
    "invalid_model_output": lambda: errors.invalid_model_output("no JSON object found"),
    "internal_error": errors.internal_error,
    "missing_operator_key": lambda: errors.missing_operator_key("admin", "GATEWAY_ADMIN_KEY"),
    "invalid_operator_key": lambda: errors.invalid_operator_key("metrics"),
    "key_attempts_throttled": lambda: errors.key_attempts_throttled(2.5),
    "metrics_not_served": lambda: errors.metrics_not_served("GET", "/metrics"),
    "malformed_authorization": errors.malformed_authorization,
    "team_upstream_key_missing": lambda: errors.team_upstream_key_missing("TEAM_A_OPENAI_KEY"),
    "store_unavailable": lambda: errors.store_unavailable("ConnectionError"),
    "admin_body_not_object": errors.admin_body_not_object,
    "invalid_setting": lambda: errors.invalid_setting("limits.rpm: expected an integer >= 1"),
    "budget_too_large": lambda: errors.budget_too_large("1e400", 10**12),
    "unknown_key_field": lambda: errors.unknown_key_field("colour", ("name", "limits")),
    "key_name_invalid": lambda: errors.key_name_invalid(128),
    "expires_at_invalid": errors.expires_at_invalid,
    "expires_at_in_past": errors.expires_at_in_past,
    "invalid_team_name": errors.invalid_team_name,
    "team_rename_refused": errors.team_rename_refused,
    "invalid_digest": errors.invalid_digest,
    "team_not_found": lambda: errors.team_not_found("a"),
    "key_not_found": lambda: errors.key_not_found("k1"),
    "team_exists": lambda: errors.team_exists("a"),
    "team_name_retired": lambda: errors.team_name_retired("a", 1_790_000_000),
}


def test_the_docstring_table_lists_every_builder_and_nothing_else() -> None:
    assert set(table()) == builders()


def test_every_builder_has_a_sample_here() -> None:
    assert set(SAMPLES) == builders()


def as_pattern(documented: str) -> re.Pattern[str]:
    return re.compile(re.escape(documented).replace(r"\{kind\}", r"\w+"))


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_each_builder_answers_what_the_table_says(name: str) -> None:
    error = SAMPLES[name]()
    status, type_, code = table()[name]
    assert status == "*" or error.status == int(status)
    assert as_pattern(type_).fullmatch(error.type)
    if code == "-":
        assert error.code is None
    else:
        assert error.code is not None and as_pattern(code).fullmatch(error.code)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_each_builder_answers_in_openais_shape(name: str) -> None:
    error = SAMPLES[name]()
    body = orjson.loads(error.body())
    assert body == {
        "error": {
            "message": error.message,
            "type": error.type,
            "param": error.param,
            "code": error.code,
        }
    }
    assert error.payload() == body
    assert isinstance(error.message, str) and error.message.strip()
    assert str(error) == error.message


def test_builders_do_not_share_their_headers() -> None:
    # A refusal's headers are changed later (route and fallback headers are added to them).
    first = budget_spent()
    first.headers["x-gateway-fallback"] = "o1 -> o1-mini (429)"
    assert LIMIT_HEADERS == {"x-ratelimit-limit-tokens": "1000"}
    assert errors.missing_key().headers == {}


def test_refusals_tell_clients_whether_and_when_to_retry() -> None:
    budget = budget_spent()
    assert budget.headers == {**LIMIT_HEADERS, "x-should-retry": "false"}
    assert budget.message == (
        "You exceeded your team's monthly budget: team a may spend $5.00 this month and has "
        "spent $4.99, with $0.005000 held for requests in flight; this request could cost up to "
        "$0.02. The budget resets on 2026-01-01 00:00 UTC."
    )
    over = worst_case_over_budget()
    assert over.headers == {**LIMIT_HEADERS, "x-should-retry": "false"}
    assert over.param == "max_completion_tokens"
    assert over.message == (
        "This request could cost up to $0.163900 (its worst case), more than team a has left "
        "of its monthly budget: $0.10 of $1.00 ($0.90 spent, $0.00 held for requests in "
        "flight). Set max_completion_tokens to at most 9987 for it to fit. The budget resets "
        "on 2026-01-01 00:00 UTC."
    )
    # Held by requests in flight, and fitting once they settle: worth a retry.
    held = worst_case_over_budget(held=50_000)
    assert held.headers == {**LIMIT_HEADERS, "retry-after": "1", "retry-after-ms": "200"}
    assert held.message.endswith(
        "What requests in flight hold is freed as they finish: retry then."
    )
    reached = tokens_used_up()
    assert reached.headers == {**LIMIT_HEADERS, "retry-after": "2", "retry-after-ms": "1500"}
    assert reached.message.endswith("Used 900, Requested 200. Please try again in 1.5s.")
    assert request_too_large().headers["x-should-retry"] == "false"


def test_a_failed_emulation_is_not_retried_by_the_sdks() -> None:
    # A 502 would otherwise be retried twice by openai-python, each time with a repair attempt.
    assert errors.invalid_model_output("no JSON").headers == {"x-should-retry": "false"}
    # None was made (the hold had no room for one): the client's retry is held anew.
    unrepaired = errors.invalid_model_output("no JSON", repaired=False)
    assert unrepaired.headers == {} and "no room for a repair" in unrepaired.message


def test_an_upstream_failure_says_whether_the_request_was_written() -> None:
    """What decides a retry and the charge: a request written may be answered, and billed,
    upstream although the gateway stopped waiting."""
    assert errors.upstream_timeout(5, sent=True).sent
    assert not errors.upstream_timeout(5, sent=False).sent
    assert not errors.upstream_unreachable("refused", sent=False).sent
    assert errors.upstream_truncated("cut").sent  # after the answer's headers
    assert not errors.circuit_open("o1", 1).sent and not errors.missing_model().sent
    assert not any(builder().billed for builder in SAMPLES.values())  # the attempt decides


def test_setting_errors_name_the_setting_as_param() -> None:
    assert SAMPLES["invalid_setting"]().param == "limits.rpm"


def test_image_refusal_names_the_content_part() -> None:
    error = SAMPLES["image_input_unsupported"]()
    assert error.param == "messages.[1].content.[0].type"
    assert error.message == (
        "Invalid content type at 'messages.[1].content.[0].type': this model does not accept "
        "images ('image_url'). Send text only, or choose a model that supports image input."
    )


def test_unknown_model_or_policy_says_when_no_policy_is_configured() -> None:
    assert "(none configured)" in errors.unknown_model_or_policy("x", []).message


def test_an_open_circuit_says_when_it_half_opens_and_whether_the_sdk_should_wait() -> None:
    soon = errors.circuit_open("o1", 12.2)
    assert soon.headers == {"retry-after": "13", "x-should-retry": "true"}
    assert soon.message.endswith("Please retry in 13 s.")
    # Longer than the SDKs wait for: their own short backoff would meet the open circuit again.
    late = errors.circuit_open("o1", 61)
    assert late.headers == {"retry-after": "61", "x-should-retry": "false"}
    assert errors.circuit_open("o1", 0).headers["retry-after"] == "1"


def test_what_repeating_cannot_fix_is_not_retried_by_the_sdks() -> None:
    assert errors.unsupported_encoding("zstd").headers["x-should-retry"] == "false"
    spent = errors.upstream_timeout(30, sent=False)
    errors.mark_retries_spent(spent.headers)
    assert spent.headers == {"x-should-retry": "false"}


def test_an_upstream_error_body_is_kept_when_openais_and_replaced_otherwise() -> None:
    openai_body = b'{\n  "error": {"message": "Overloaded", "type": "server_error"}\n}'
    assert errors.upstream_error_body(503, openai_body) is openai_body
    for other in (b"<html>502 Bad Gateway</html>", b'{"detail": "x"}', b"", b"[1]"):
        told = orjson.loads(errors.upstream_error_body(502, other))
        assert told["error"]["code"] == "upstream_error" and "502" in told["error"]["message"]


def test_an_upstream_message_about_the_request_is_kept_but_for_the_accounts_ids() -> None:
    own = (
        b'{"error": {"message": "Invalid \'messages[0].content\': too long.", "type": '
        b'"invalid_request_error", "param": "messages", "code": "string_above_max_length"}}'
    )
    assert errors.upstream_error_body(400, own) is own
    named = {
        "message": (
            "Project proj_Ab3dEf6hIj9kLm2nOp5qRs8t of org-Xy12Ab34Cd56Ef78Gh90Ij12 may not use "
            "key sk-ab***yz here, nor an org-chart or sk-learn."
        ),
        "type": "invalid_request_error", "param": None, "code": None,
    }  # fmt: skip
    told = orjson.loads(errors.upstream_error_body(404, orjson.dumps({"error": named})))
    assert told["error"] == {
        **named,
        "message": (
            "Project [redacted] of [redacted] may not use key [redacted] here, nor an "
            "org-chart or sk-learn."
        ),
    }
    # A code that is no string (no OpenAI error's) is told as any other.
    odd = {"message": "org-Xy12Ab34Cd56Ef78Gh90Ij12", "type": ["x"], "code": {"y": 1}}
    assert errors.upstream_message(400, odd) == "[redacted]"
    assert errors.upstream_message(401, odd).startswith("The upstream API refused the gateway's")
    # A project without access to a model: the project's id is the account's, not the caller's.
    project = {"message": "Project `proj_abc` does not have access to model `o1`", "code": None}
    assert errors.upstream_message(403, project) == (
        "The upstream API refused this request for the gateway's account (HTTP 403). Please "
        "tell the gateway's operator."
    )


def test_a_refusal_of_a_teams_own_upstream_key_says_it_was_that_key() -> None:
    # The team's to fix; its key's organization may be the gateway's, so no words of upstream's.
    def told(status: int, error: dict[str, object]) -> str:
        message = errors.upstream_message(
            status, {"message": "org-Xy12Ab34Cd56Ef78Gh90", **error}, own_key=True
        )
        assert isinstance(message, str) and "org-" not in message
        return message

    assert told(401, {"code": "invalid_api_key"}) == (
        "The upstream API refused your team's own upstream key (HTTP 401, invalid_api_key), not "
        "your gateway key. Please check that key's OpenAI project, or ask the gateway's operator."
    )
    assert told(403, {"code": None}).startswith(
        "The upstream API refused this request for your team's own upstream key (HTTP 403)."
    )
    assert told(429, {"type": "tokens"}) == (
        "The upstream API's rate limit on tokens for your team's own upstream key was reached."
    )
    assert told(429, {"code": "insufficient_quota"}).startswith(
        "The upstream account of your team's own upstream key cannot serve requests now "
        "(insufficient_quota)."
    )


def test_a_streams_error_events_are_told_and_the_rest_passed_as_it_came() -> None:
    routine = b'data: {"choices":[{"delta":{"content":"an \\"error\\""}}]}\n\n'
    assert errors.told_events(routine) is routine
    limited = {
        "message": "Rate limit reached in organization org-X.",
        "code": "rate_limit_exceeded",
    }
    flat = {"type": "error", "sequence_number": 3, "param": None, **limited}
    created = b'event: response.created\ndata: {"response":{"error":null}}\n\n'
    block = (
        created
        + b"event: error\ndata: " + orjson.dumps(flat) + b"\n\n"
        + b'data: {"error": {"message": "Used 5 of org-X'
    )  # fmt: skip
    told = errors.told_events(block).split(b"\n\n")
    assert (
        told[0] + b"\n\n" == created and told[2] == b'data: {"error": {"message": "Used 5 of org-X'
    )
    kind, data = told[1].split(b"\n")
    assert kind == b"event: error"
    assert orjson.loads(data[6:]) == {
        **flat, "message": "The upstream API's rate limit, which every team of this gateway "
        "shares, was reached.",
    }  # fmt: skip


def test_a_responses_stream_ends_as_openai_ends_one() -> None:
    exc = errors.upstream_truncated("connection lost")
    response = {"id": "resp_1", "object": "response", "status": "in_progress", "usage": None}
    frames = errors.responses_stream_error(exc, response, 7).decode().split("\n\n")[:-1]
    (kind, data), (last_kind, last_data) = (frame.split("\n") for frame in frames)
    error, failed = orjson.loads(data[6:]), orjson.loads(last_data[6:])
    assert (kind, last_kind) == ("event: error", "event: response.failed")
    assert error == {"type": "error", "sequence_number": 7, **exc.payload()}
    assert failed["sequence_number"] == 8 and failed["response"]["id"] == "resp_1"
    assert failed["response"]["status"] == "failed" and failed["response"]["usage"] is None
    assert failed["response"]["error"] == {"code": "upstream_truncated", "message": exc.message}
    # A stream that never named its response ends with the error alone.
    assert errors.responses_stream_error(exc, None, 0).count(b"event: ") == 1
