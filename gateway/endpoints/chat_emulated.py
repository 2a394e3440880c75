"""Tools and structured output for a model that lacks them, answered by emulation: one
upstream call prompted to answer in a format, parsed, repaired once if it broke the format,
and converted to what the client asked for (as JSON, or as a faked stream)."""

from __future__ import annotations

import secrets
from typing import Any

import orjson
from starlette.responses import Response

from gateway.compat import emulation
from gateway.compat.patches import Adapted, adapt_response
from gateway.endpoints.attempt import Attempt, Whole, relayed, settle_whole
from gateway.endpoints.chat_fake_stream import fake_streamed
from gateway.wire import errors
from gateway.wire.headers import client_response_headers, encoded
from gateway.wire.usage import usage_from


async def answer_emulated(
    attempt: Attempt,
    payload: dict[str, Any],
    adapted: Adapted,
    emulated_as: emulation.Emulation,
) -> Response:
    """Call, parse, repair once, then answer as JSON or as a faked stream."""
    call = emulated_call(attempt, payload, emulated_as)
    if adapted.fake_stream:
        return await fake_streamed(attempt, adapted, call=call)
    ticket = attempt.ticket
    # Billed whole upstream: read to the end (and charged) whoever leaves.
    status, upstream_headers, content = await call
    out_headers = client_response_headers(upstream_headers)
    out_headers.append((b"x-gateway-patched", ",".join(adapted.patches).encode()))
    if ticket is not None:
        out_headers += encoded(ticket.headers)
    if status == 200 and adapted.stop and attempt.answered is not None:
        attempt.answered = adapt_response(attempt.answered, adapted)
        content = orjson.dumps(attempt.answered)
    if ticket is not None:
        attempt.settle(status, content)
    return relayed(content, status, out_headers)


async def emulated_call(
    attempt: Attempt, payload: dict[str, Any], emulated_as: emulation.Emulation
) -> Whole:
    """The upstream call and its answer converted; a second call when the first broke the
    format (the team pays for both)."""
    ticket = attempt.ticket
    status, upstream_headers, content = await attempt.fetch(orjson.dumps(payload))
    if status != 200:
        return status, upstream_headers, content
    completion = orjson.loads(content)
    parsed = emulation.parse_answer(_answer_text(completion), emulated_as, _call_ids())
    if isinstance(parsed, emulation.EmulationError):
        repair = {**payload, "messages": emulation.repair_messages(
            payload["messages"], _answer_text(completion) or "", parsed
        )}  # fmt: skip
        first_usage = completion.get("usage")
        status, upstream_headers, content = await attempt.fetch(orjson.dumps(repair))
        if status != 200:
            if ticket is not None:
                settle_whole(ticket, usage_from(first_usage))  # the first call still ran
            return status, upstream_headers, content
        completion = orjson.loads(content)
        completion["usage"] = _add_usage(first_usage, completion.get("usage"))
        parsed = emulation.parse_answer(_answer_text(completion), emulated_as, _call_ids())
        if isinstance(parsed, emulation.EmulationError):
            if ticket is not None:
                settle_whole(ticket, usage_from(completion["usage"]))
            raise errors.invalid_model_output(parsed.message)
    # What the client gets, with both calls' usage: what the attempt charges (`answered`).
    attempt.answered = emulation.apply(completion, parsed)
    return 200, upstream_headers, orjson.dumps(attempt.answered)


def _answer_text(completion: Any) -> str | None:
    try:
        content = completion["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return None
    return content if isinstance(content, str) else None


def _call_ids() -> list[str]:
    return ["call_" + secrets.token_urlsafe(18) for _ in range(16)]


def _add_usage(first: Any, second: Any) -> Any:
    """Both calls' usage: the team pays for the repair attempt too."""
    if not isinstance(first, dict) or not isinstance(second, dict):
        return second if isinstance(second, dict) else first
    total: dict[str, Any] = {}
    for key in {*first, *second}:
        a, b = first.get(key), second.get(key)
        if isinstance(a, dict) or isinstance(b, dict):
            total[key] = _add_usage(a or {}, b or {})
        elif isinstance(a, int) and isinstance(b, int):
            total[key] = a + b
        else:
            total[key] = b if b is not None else a
    return total
