"""A streamed answer from a model that cannot stream: one whole upstream call, then the real
chunk format (`compat.fake_stream`). While the model thinks, the client gets a 200 and SSE
comments so proxies keep the connection open."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Coroutine
from functools import partial
from typing import Any

import orjson
from starlette.responses import Response

from gateway.admission.redis_side import Ticket
from gateway.compat import fake_stream
from gateway.compat.patches import Adapted, adapt_response
from gateway.endpoints.attempt import ACCOUNT_REFUSED, Attempt, Whole
from gateway.endpoints.charging import settle_failure, settle_whole
from gateway.server.stream_response import StreamResponse, cancel_on_disconnect
from gateway.upstream.dispatch import PreparedCall
from gateway.wire import errors, sse
from gateway.wire.errors import GatewayError
from gateway.wire.headers import encoded, new_request_id
from gateway.wire.usage import Usage, usage_from, whole_answer


async def fake_streamed(
    attempt: Attempt,
    adapted: Adapted,
    body: bytes = b"",
    *,
    call: Coroutine[Any, Any, Whole] | None = None,
    prepared: PreparedCall | None = None,
) -> Response:
    """Stream an answer from a model that cannot: one upstream call (`call`, or a plain one of
    `body` whose first try is `prepared`), then the real chunk format.

    An upstream error within `status_grace_s` keeps its status; after that the client has had
    a 200 and SSE comments (so proxies keep the connection open), and an error arrives in-stream.
    """
    gw, ticket = attempt.gw, attempt.ticket
    if call is None:
        call = attempt.fetch(body, prepared)
    loop = gw.loop or asyncio.get_running_loop()  # not started: a unit test's own gateway
    task = loop.create_task(call)
    own_headers = [
        ("x-request-id", new_request_id()),
        ("x-gateway-patched", ",".join(adapted.patches)),
    ]
    own_headers += ticket.headers if ticket is not None else []
    try:
        async with cancel_on_disconnect(attempt.request.receive, loop, unless=attempt.leaving):
            await _done_or_timeout(task, gw.config.compat.status_grace_s)
    except BaseException as exc:
        if ticket is not None and isinstance(exc, GatewayError) and exc.status == 499:
            # The client left; upstream still answers and bills: charge that answer.
            attempt.ticket = None
            charge_when_done(task, ticket, attempt.answer_fees(None))
        else:
            task.cancel()
        raise
    if task.done():
        status, upstream_headers, content = task.result()  # a GatewayError propagates as is
        if status != 200:
            if ticket is not None:
                ticket.release()
            out_headers = attempt.client_headers(upstream_headers)
            return attempt.relayed(content, status, out_headers + encoded(own_headers))
        events, usage = _fake_stream_events(content, adapted)
        if ticket is not None:
            gw.after_response(settle_whole, ticket, usage, attempt.answer_fees(None))
        attempt.exchange.first_token_at = time.perf_counter()
        response = Response(events, media_type=sse.CONTENT_TYPE)
        response.raw_headers += encoded(own_headers)
        return response
    # Set when its client leaves (`on_gone`, which the response cache may hold back while
    # identical requests wait for this answer: it is then read whole, and kept for them).
    gone: asyncio.Future[None] = loop.create_future()
    return StreamResponse(
        _keepalive_then_answer(attempt, task, adapted, gone),
        media_type=sse.CONTENT_TYPE,
        headers=dict(own_headers),
        loop=loop,
        on_gone=partial(_left, gone),
        on_close=partial(_charge_unsent, attempt, task),
    )


def _left(gone: asyncio.Future[None]) -> None:
    if not gone.done():
        gone.set_result(None)


# Calls whose client left, kept until they end and are charged (the loop holds tasks weakly).
_CHARGING: set[asyncio.Future[Whole]] = set()


def charge_when_done(call: asyncio.Future[Whole], ticket: Ticket, fees: int = 0) -> None:
    """Charge a whole upstream answer when it arrives, whoever waits for it, as one the client
    read would be: its usage and `fees` (`settle_whole`), or as its failure says
    (`settle_failure`)."""

    def done(finished: asyncio.Future[Whole]) -> None:
        _CHARGING.discard(finished)
        if finished.cancelled():
            ticket.release()
            return
        failure = finished.exception()
        if failure is not None:
            if isinstance(failure, GatewayError):
                settle_failure(ticket, failure)
            else:
                ticket.release()
            return
        status, _, content = finished.result()
        if status != 200:
            ticket.release()
            return
        answer = whole_answer(content)  # a 200 that is no JSON object failed in `fetch`
        settle_whole(ticket, usage_from(answer.get("usage")) if answer is not None else None, fees)

    _CHARGING.add(call)
    call.add_done_callback(done)


async def _done_or_timeout(task: asyncio.Future[Any], seconds: float) -> None:
    """Wait until `task` is done or `seconds` have passed (asyncio.wait, for one future, at a
    fraction of its cost: no sets, no per-call closures)."""
    if task.done():
        return
    loop = task.get_loop()
    waiter = loop.create_future()

    def wake(_: object = None) -> None:
        if not waiter.done():
            waiter.set_result(None)

    task.add_done_callback(wake)
    timer = loop.call_later(seconds, wake)
    try:
        await waiter
    finally:
        timer.cancel()
        task.remove_done_callback(wake)


async def _charge_unsent(attempt: Attempt, call: asyncio.Future[Whole]) -> None:
    """The faked stream's response is done with. One whose body never began (its task
    cancelled while its headers were written: at shutdown, on a full socket buffer) charged
    nothing, and upstream answers and bills it whole all the same: charged as that answer
    comes, as one whose client left (not left held until the hold expires)."""
    ticket = attempt.ticket
    if ticket is not None and not ticket.done:
        attempt.ticket = None
        charge_when_done(call, ticket, attempt.answer_fees(None))


def _fake_stream_events(content: bytes, adapted: Adapted) -> tuple[bytes, Usage | None]:
    completion = adapt_response(orjson.loads(content), adapted)
    events = fake_stream.encode_completion(completion, include_usage=adapted.include_usage)
    return events, usage_from(completion.get("usage"))


async def _keepalive_then_answer(
    attempt: Attempt, call: asyncio.Future[Whole], adapted: Adapted, gone: asyncio.Future[None]
) -> AsyncIterator[bytes]:
    gw, ticket = attempt.gw, attempt.ticket
    status = 200
    gw.metrics.open_streams.inc()
    try:
        while not call.done():
            yield fake_stream.KEEPALIVE
            await asyncio.wait((call, gone), timeout=gw.config.compat.keepalive_s)
            if gone.done() and not call.done():
                raise errors.client_closed()  # charged as its answer comes (`finally`)
        try:
            status, _, content = call.result()
        except GatewayError as exc:
            status = exc.status
            attempt.exchange.error_code = exc.code or exc.type
            if ticket is not None:
                settle_failure(ticket, exc)
            yield sse.encode(exc.payload())
            return
        if status != 200:
            # The client has had its 200: only the metrics and the log tell of the failure.
            code = errors.upstream_status(status).code or ""
            attempt.exchange.error_code = code
            if status < 500 and status not in ACCOUNT_REFUSED:  # counted as it came (`send`)
                gw.metrics.upstream_errors.labels(code).inc()
            yield sse.encode(orjson.loads(attempt.told_body(status, content)))
            return
        events, usage = _fake_stream_events(content, adapted)
        if ticket is not None:
            settle_whole(ticket, usage, attempt.answer_fees(None))
        attempt.exchange.first_token_at = time.perf_counter()
        yield events
    finally:
        gw.metrics.open_streams.dec()
        if ticket is not None and not ticket.done:
            # The client left (while the model thought, or before the answer went out):
            # upstream answers and bills it whole, so that answer is what is charged.
            attempt.ticket = None  # charged here, not again by `_charge_unsent`
            charge_when_done(call, ticket, attempt.answer_fees(None))
        elif not call.done():
            call.cancel()  # nothing left to charge: no need to wait for it
