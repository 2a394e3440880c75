"""Batches: the create checks, the input file's lines, the `batch` object and its life. Pure.

Life: a batch is created `validating`; each retrieval moves it one step, `validating` ->
`in_progress` -> `finalizing` -> `completed`, so a client's poll loop ends after three polls
(the knobs `x-sim-batch: complete` on create and `POST /_sim/batches/{id}/complete` run every
step at once). Leaving `validating`, a file with a bad line fails the batch (`failed`, with
`errors`); entering `completed`, the caller runs the lines (`Batch.finish`). Cancel moves an
unfinished batch to `cancelling`, and the next retrieval to `cancelled`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.simulator import openai_errors as oe
from gateway.simulator.openai_errors import SimError
from gateway.wire.validation import metadata_error

ENDPOINTS = (
    "/v1/chat/completions",
    "/v1/embeddings",
    "/v1/completions",
    "/v1/responses",
    "/v1/moderations",
)
COMPLETION_WINDOWS = ("24h",)
MAX_LINES = 50_000
EXPIRES_AFTER_S = 24 * 3600
STEPS = ("validating", "in_progress", "finalizing", "completed")
FINISHED = ("completed", "failed", "expired", "cancelled")
# The tokens an organization's batches may queue for one model (tier 1's for gpt-4o).
ENQUEUED_TOKEN_LIMIT = 90_000


def check_create(body: dict[str, Any]) -> SimError | None:
    for name in ("input_file_id", "endpoint", "completion_window"):
        if body.get(name) is None:
            return oe.missing_parameter(name)
        if not isinstance(body[name], str):
            return oe.invalid_type(name, "a string", body[name])
    if body["endpoint"] not in ENDPOINTS:
        return oe.invalid_value("endpoint", body["endpoint"], ENDPOINTS)
    if body["completion_window"] not in COMPLETION_WINDOWS:
        return oe.invalid_value("completion_window", body["completion_window"], COMPLETION_WINDOWS)
    refused = metadata_error(body)
    return None if refused is None else oe.from_gateway(refused)


def output_expires_s(body: dict[str, Any]) -> int | None:
    """The `seconds` of a create's `output_expires_after` (anchored at the files' creation)."""
    asked = body.get("output_expires_after")
    seconds = asked.get("seconds") if isinstance(asked, dict) else None
    return seconds if isinstance(seconds, int) and not isinstance(seconds, bool) else None


def _line_error(code: str, line: int, message: str, param: str | None = None) -> dict[str, Any]:
    return {"code": code, "line": line, "message": message, "param": param}


def queue_full(model: str | None) -> dict[str, Any]:
    """The error a batch fails validation with when the organization's batches already queue
    as many tokens of its model as its limit lets them (worded as users quote it: no recorded
    payload has it)."""
    return {
        "code": "token_limit_exceeded",
        "line": None,
        "message": f"Enqueued token limit reached for {model} in organization {oe.ORGANIZATION_ID}. "
        f"Limit: {ENQUEUED_TOKEN_LIMIT:,} enqueued tokens. Please try submitting an older batch "
        "after the current one is completed.",
        "param": None,
    }


def parse_lines(data: bytes, endpoint: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The input file's requests, and the errors of the lines that are not valid ones.

    Error codes follow OpenAI's batch error objects (`invalid_json_line`, `mismatched_url`...;
    the exact codes and messages are unconfirmed).
    """
    lines: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    for number, raw in enumerate(data.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            line = orjson.loads(raw)
        except orjson.JSONDecodeError:
            errors.append(_line_error("invalid_json_line", number, "This line is not valid JSON."))
            continue
        if not isinstance(line, dict):
            errors.append(_line_error("invalid_json_line", number, "Expected a JSON object."))
            continue
        custom_id = line.get("custom_id")
        if not isinstance(custom_id, str) or not custom_id:
            errors.append(
                _line_error("missing_custom_id", number, "Missing 'custom_id'.", "custom_id")
            )
        elif custom_id in seen:
            errors.append(
                _line_error(
                    "duplicate_custom_id",
                    number,
                    f"The custom_id '{custom_id}' is used by more than one request.",
                    "custom_id",
                )
            )
        elif line.get("method") != "POST":
            errors.append(
                _line_error("invalid_method", number, "Only POST is supported.", "method")
            )
        elif line.get("url") != endpoint:
            errors.append(
                _line_error(
                    "mismatched_url",
                    number,
                    f"The URL provided for this request does not match the batch endpoint "
                    f"{endpoint}.",
                    "url",
                )
            )
        elif not isinstance(line.get("body"), dict):
            errors.append(_line_error("invalid_body", number, "Missing request 'body'.", "body"))
        else:
            seen.add(custom_id)
            lines.append(line)
    if not lines and not errors:
        errors.append(_line_error("empty_file", 0, "The input file has no requests."))
    if len(lines) > MAX_LINES:
        errors.append(
            _line_error("too_many_requests", 0, f"A batch holds at most {MAX_LINES} requests.")
        )
    return lines, errors


def batch_object(
    batch_id: str, body: dict[str, Any], created_at: int, model: str | None
) -> dict[str, Any]:
    return {
        "id": batch_id,
        "object": "batch",
        "endpoint": body["endpoint"],
        "model": model,
        "errors": None,
        "input_file_id": body["input_file_id"],
        "completion_window": body["completion_window"],
        "status": "validating",
        "output_file_id": None,
        "error_file_id": None,
        "created_at": created_at,
        "in_progress_at": None,
        "expires_at": created_at + EXPIRES_AFTER_S,
        "finalizing_at": None,
        "completed_at": None,
        "failed_at": None,
        "expired_at": None,
        "cancelling_at": None,
        "cancelled_at": None,
        "request_counts": {"total": 0, "completed": 0, "failed": 0},
        "metadata": body.get("metadata"),
        "usage": None,
    }


def output_line(
    line_id: str, custom_id: str, status: int, request_id: str, body: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": line_id,
        "custom_id": custom_id,
        "response": {"status_code": status, "request_id": request_id, "body": body},
        "error": None,
    }


def usage_of(details: list[dict[str, int]]) -> dict[str, Any]:
    """The batch's `usage` (Responses shape) from its lines' bill details."""
    input_tokens = sum(d.get("input_tokens", 0) for d in details)
    output_tokens = sum(d.get("output_tokens", 0) for d in details)
    input_details = {"cached_tokens": sum(d.get("cached_tokens", 0) for d in details)}
    written = sum(d.get("cache_write_tokens", 0) for d in details)
    if written:
        input_details["cache_write_tokens"] = written
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": input_details,
        "output_tokens": output_tokens,
        "output_tokens_details": {
            "reasoning_tokens": sum(d.get("reasoning_tokens", 0) for d in details)
        },
        "total_tokens": input_tokens + output_tokens,
    }


@dataclass(slots=True)
class Batch:
    object: dict[str, Any]
    # The input file's bytes, read at create (the file may be deleted while the batch runs).
    data: bytes
    lines: list[dict[str, Any]] = field(default_factory=list)
    # How long after they are made its output and error files expire (`output_expires_after`).
    output_expires_s: int | None = None
    # The organization's enqueued tokens were at their limit when it was made: it fails
    # validation (`queue_full`), whatever its lines.
    queue_full: bool = False

    @property
    def status(self) -> str:
        return str(self.object["status"])

    def advance(self, now: int) -> str:
        """Move one step on; the new status. "completed" is left to the caller (`finish`)."""
        status = self.status
        obj = self.object
        if status == "cancelling":
            obj.update(status="cancelled", cancelled_at=now)
        elif status == "validating":
            lines, errors = parse_lines(self.data, obj["endpoint"])
            if self.queue_full:
                errors = [queue_full(obj["model"])]
            if errors:
                obj.update(
                    status="failed", failed_at=now, errors={"object": "list", "data": errors}
                )
            else:
                self.lines = lines
                counts = {"total": len(lines), "completed": 0, "failed": 0}
                obj.update(status="in_progress", in_progress_at=now, request_counts=counts)
        elif status == "in_progress":
            obj.update(status="finalizing", finalizing_at=now)
        return self.status

    def finish(
        self,
        now: int,
        output_file_id: str | None,
        error_file_id: str | None,
        failed: int,
        usage: dict[str, Any],
    ) -> None:
        total = len(self.lines)
        self.object.update(
            status="completed",
            completed_at=now,
            output_file_id=output_file_id,
            error_file_id=error_file_id,
            request_counts={"total": total, "completed": total - failed, "failed": failed},
            usage=usage,
        )

    def cancel(self, now: int) -> SimError | None:
        if self.status in FINISHED or self.status == "cancelling":
            return oe.cannot_cancel("batch", self.status)
        self.object.update(status="cancelling", cancelling_at=now)
        return None
