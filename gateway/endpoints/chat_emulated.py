"""Tools and structured output for a model that lacks them, answered by emulation: one
upstream call prompted to answer in a format, parsed, repaired once if it broke the format,
and converted to what the client asked for (as JSON, or as a faked stream).

Both calls are the request's, under its one hold: the repair may use only what the first call
left of it (its completion cap lowered to fit, and no repair when nothing fits), so the team is
never charged past what was held, and a repair that fails after its request was written (which
upstream may still bill) is charged the whole hold, never less than both calls cost."""

from __future__ import annotations

import secrets
from typing import Any

import orjson
from starlette.responses import Response

from gateway.admission.pricing import (
    chat_extra_prompt,
    cost_micros,
    largest_completion_cap,
    reads_files,
    requested_completion,
)
from gateway.admission.redis_side import Ticket
from gateway.compat import emulation
from gateway.compat.patches import Adapted, adapt_response
from gateway.config import ImageInputTokens, Price
from gateway.endpoints.attempt import Whole
from gateway.endpoints.charging import billed_failure, settle_whole
from gateway.endpoints.chat_fake_stream import fake_streamed
from gateway.endpoints.model_attempt import ModelAttempt
from gateway.wire import errors, tokens
from gateway.wire.errors import GatewayError
from gateway.wire.headers import encoded
from gateway.wire.usage import usage_from


async def answer_emulated(
    attempt: ModelAttempt,
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
    out_headers = attempt.client_headers(upstream_headers)
    out_headers.append((b"x-gateway-patched", ",".join(adapted.patches).encode()))
    if ticket is not None:
        out_headers += encoded(ticket.headers)
    if status == 200 and adapted.stop and attempt.answered is not None:
        attempt.answered = adapt_response(attempt.answered, adapted)
        content = orjson.dumps(attempt.answered)
    if ticket is not None:
        attempt.settle(status, content)
    return attempt.relayed(content, status, out_headers)


async def emulated_call(
    attempt: ModelAttempt, payload: dict[str, Any], emulated_as: emulation.Emulation
) -> Whole:
    """The upstream call and its answer converted; a second call when the first broke the
    format (the team pays for both)."""
    ticket = attempt.ticket
    status, upstream_headers, content = await attempt.fetch(orjson.dumps(payload))
    if status != 200:
        return status, upstream_headers, content
    completion = orjson.loads(content)
    superseded = None  # the first answer's id, once a repair replaced it
    parsed = emulation.parse_answer(
        _answer_text(completion), emulated_as, _call_ids(), _finish_reason(completion)
    )
    if isinstance(parsed, emulation.EmulationError):
        repair = {**payload, "messages": emulation.repair_messages(
            payload["messages"], _answer_text(completion) or "", parsed
        )}  # fmt: skip
        first_usage = completion.get("usage")
        room = _room(ticket, first_usage) if ticket is not None else None
        if ticket is not None and (
            room is None
            or not fit_repair(repair, *room, attempt.copies, attempt.config.image_input_tokens)
        ):
            settle_whole(ticket, usage_from(first_usage))
            raise errors.invalid_model_output(parsed.message, repaired=False)
        try:
            status, upstream_headers, content = await attempt.fetch(orjson.dumps(repair))
        except GatewayError as exc:
            if ticket is not None:
                if billed_failure(exc):
                    ticket.settle_at_reserve()  # both calls fit in it
                else:
                    settle_whole(ticket, usage_from(first_usage))  # the first call still ran
            raise
        if status != 200:
            if ticket is not None:
                settle_whole(ticket, usage_from(first_usage))  # the first call still ran
            return status, upstream_headers, content
        superseded = completion.get("id")
        completion = orjson.loads(content)
        completion["usage"] = _add_usage(first_usage, completion.get("usage"))
        parsed = emulation.parse_answer(
            _answer_text(completion), emulated_as, _call_ids(), _finish_reason(completion)
        )
        if isinstance(parsed, emulation.EmulationError):
            if ticket is not None:
                settle_whole(ticket, usage_from(completion["usage"]))
            raise errors.invalid_model_output(parsed.message)
    # What the client gets, with both calls' usage: what the attempt charges (`answered`).
    attempt.answered = emulation.apply(completion, parsed)
    await attempt.made_answer(attempt.answered, superseded)
    return 200, upstream_headers, orjson.dumps(attempt.answered)


def fit_repair(
    repair: dict[str, Any], price: Price, left: int, copies: int, images: ImageInputTokens
) -> bool:
    """Cap `repair`'s completion tokens (of each of `copies` answers) so that its worst case
    (its images by the model's `images` figures) costs at most `left` micro-dollars, what the
    hold has left after the first call; False, and `repair` as it was, when not even its prompt
    fits, or its length is unknown (a file's pages, read upstream)."""
    if reads_files(repair["messages"]):
        return False
    prompt = tokens.count_messages(repair["messages"]) + chat_extra_prompt(repair, images)
    cap = largest_completion_cap(price, prompt, copies, left)
    asked = requested_completion(repair)
    if asked is not None:
        cap = min(cap, asked)
    if cap < 1:
        return False
    legacy = "max_tokens" in repair and "max_completion_tokens" not in repair
    repair["max_tokens" if legacy else "max_completion_tokens"] = cap
    return True


def _room(ticket: Ticket, first_usage: Any) -> tuple[Price, int] | None:
    """The price, and what the hold has left after the first call; None when the first call
    did not say what it cost (it may have used the whole hold)."""
    used = usage_from(first_usage)
    if ticket.price is None or used is None:
        return None
    return ticket.price, ticket.plan.reserve - cost_micros(ticket.price, used)


def _answer_text(completion: Any) -> str | None:
    try:
        content = completion["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return None
    return content if isinstance(content, str) else None


def _finish_reason(completion: Any) -> Any:
    try:
        return completion["choices"][0]["finish_reason"]
    except (KeyError, IndexError, TypeError):
        return None


def _call_ids() -> list[str]:
    return ["call_" + secrets.token_urlsafe(18) for _ in range(16)]


def _add_usage(first: Any, second: Any) -> Any:
    """Both calls' usage: the team pays for the repair attempt too. None when either call's
    answer does not say what it cost: nor does their sum (the hold is charged)."""
    if not isinstance(first, dict) or not isinstance(second, dict):
        return None
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
