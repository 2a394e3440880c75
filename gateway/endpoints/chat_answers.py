"""Answers the gateway builds after the upstream call has finished: faked streams for models
that cannot stream, and tool calls or structured output emulated by prompting (parsed, with one
repair attempt). Also what every path shares once upstream answered: charging the call.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.admission.redis_side import Ticket
from gateway.compat import emulation, fake_stream, patches
from gateway.runtime.gateway import Gateway
from gateway.server.recording import Exchange, exchange_of
from gateway.server.stream_response import StreamResponse, cancel_on_disconnect
from gateway.upstream.contract import UpstreamResponse
from gateway.upstream.dispatch import PreparedCall
from gateway.wire import sse
from gateway.wire.errors import GatewayError
from gateway.wire.headers import client_response_headers, client_timeout_s, encoded, new_request_id
from gateway.wire.usage import Usage, response_usage, usage_from


def emulation_plan(
    original: dict[str, Any], adapted: patches.Adapted | None, emulated_as: emulation.Emulation
) -> patches.Adapted:
    options = original.get("stream_options")
    return patches.Adapted(
        payload=adapted.payload if adapted is not None else original,
        patches=emulated_as.patches + (adapted.patches if adapted is not None else ()),
        fake_stream=original.get("stream") is True,
        include_usage=isinstance(options, dict) and options.get("include_usage") is True,
        stop=adapted.stop if adapted is not None else (),
    )


async def answer_emulated(
    gw: Gateway,
    request: Request,
    payload: dict[str, Any],
    adapted: patches.Adapted,
    emulated_as: emulation.Emulation,
    ticket: Ticket | None,
) -> Response:
    """Tools or structured output by prompting: call, parse, repair once, then answer as JSON or
    as a faked stream."""
    headers = gw.upstream_headers(request.scope["headers"])
    call = _emulated_exchange(gw, request, payload, headers, emulated_as, ticket)
    if adapted.fake_stream:
        return await fake_streamed(gw, request, b"", adapted, ticket, call=call)
    async with cancel_on_disconnect(request.receive, gw.loop):
        status, upstream_headers, content = await call
    out_headers = client_response_headers(upstream_headers)
    out_headers.append((b"x-gateway-patched", ",".join(adapted.patches).encode()))
    if ticket is not None:
        out_headers += encoded(ticket.headers)
    if status == 200 and adapted.stop:
        content = orjson.dumps(patches.adapt_response(orjson.loads(content), adapted))
    if ticket is not None:
        charge(gw, ticket, status, content)
    return relayed(content, status, out_headers)


async def _emulated_exchange(
    gw: Gateway,
    request: Request,
    payload: dict[str, Any],
    headers: dict[str, str],
    emulated_as: emulation.Emulation,
    ticket: Ticket | None,
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    status, upstream_headers, content = await _exchange(gw, request, orjson.dumps(payload), headers)
    if status != 200:
        return status, upstream_headers, content
    completion = orjson.loads(content)
    parsed = emulation.parse_answer(_answer_text(completion), emulated_as, _call_ids())
    if isinstance(parsed, emulation.EmulationError):
        repair = {**payload, "messages": emulation.repair_messages(
            payload["messages"], _answer_text(completion) or "", parsed
        )}  # fmt: skip
        first_usage = completion.get("usage")
        status, upstream_headers, content = await _exchange(
            gw, request, orjson.dumps(repair), headers
        )
        if status != 200:
            if ticket is not None:
                ticket.settle(usage_from(first_usage))  # the first call still ran
            return status, upstream_headers, content
        completion = orjson.loads(content)
        completion["usage"] = _add_usage(first_usage, completion.get("usage"))
        parsed = emulation.parse_answer(_answer_text(completion), emulated_as, _call_ids())
        if isinstance(parsed, emulation.EmulationError):
            if ticket is not None:
                ticket.settle(usage_from(completion["usage"]))
            raise GatewayError(
                502,
                "The model's answer did not follow the required format, even after one repair "
                f"attempt: {parsed.message}",
                type_="upstream_error",
                code="invalid_model_output",
            )
    return 200, upstream_headers, orjson.dumps(emulation.apply(completion, parsed))


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


async def fake_streamed(
    gw: Gateway,
    request: Request,
    body: bytes,
    adapted: patches.Adapted,
    ticket: Ticket | None,
    call: Coroutine[Any, Any, tuple[int, list[tuple[bytes, bytes]], bytes]] | None = None,
    prepared: PreparedCall | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """Stream an answer from a model that cannot: one upstream call (`call`, or a plain one whose
    first try is `prepared`, with the upstream `headers` if made), then the real chunk format.

    An upstream error within `status_grace_s` keeps its status; after that the client has had
    a 200 and SSE comments (so proxies keep the connection open), and an error arrives in-stream.
    """
    if call is None:
        if headers is None:
            headers = gw.upstream_headers(request.scope["headers"])
        call = _exchange(gw, request, body, headers, prepared)
    # The loop the gateway kept: each running-loop lookup is a getpid() on Python 3.11.
    task = (gw.loop or asyncio.get_running_loop()).create_task(call)
    exchange = exchange_of(request.scope)
    own_headers = [
        ("x-request-id", new_request_id()),
        ("x-gateway-patched", ",".join(adapted.patches)),
    ]
    own_headers += ticket.headers if ticket is not None else []
    try:
        async with cancel_on_disconnect(request.receive, gw.loop):
            await _done_or_timeout(task, gw.config.compat.status_grace_s)
    except BaseException:
        task.cancel()
        raise
    if task.done():
        status, upstream_headers, content = task.result()  # a GatewayError propagates as is
        if status != 200:
            if ticket is not None:
                ticket.release()
            out_headers = client_response_headers(upstream_headers)
            return relayed(content, status, out_headers + encoded(own_headers))
        events, usage = _fake_stream_events(content, adapted)
        if ticket is not None:
            gw.after_response(ticket.settle, usage)
        exchange.first_token_at = time.perf_counter()
        response = Response(events, media_type=sse.CONTENT_TYPE)
        response.raw_headers += encoded(own_headers)
        return response
    return StreamResponse(
        _keepalive_then_answer(gw, task, exchange, adapted, ticket),
        media_type=sse.CONTENT_TYPE,
        headers=dict(own_headers),
        loop=gw.loop,
    )


def relayed(content: bytes, status: int, headers: list[tuple[bytes, bytes]]) -> Response:
    """A whole answer whose headers are raw already: no decode and re-encode per header."""
    response = Response(content, status_code=status)
    response.raw_headers += headers
    return response


async def _exchange(
    gw: Gateway,
    request: Request,
    body: bytes,
    headers: dict[str, str],
    prepared: PreparedCall | None = None,
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    resp = await send_upstream(
        gw, request, "/chat/completions", headers, body, buffer=True, prepared=prepared
    )
    try:
        return resp.status, resp.headers, await resp.read()
    finally:
        await resp.close()


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


def _fake_stream_events(content: bytes, adapted: patches.Adapted) -> tuple[bytes, Usage | None]:
    completion = patches.adapt_response(orjson.loads(content), adapted)
    events = fake_stream.encode_completion(completion, include_usage=adapted.include_usage)
    return events, usage_from(completion.get("usage"))


async def _keepalive_then_answer(
    gw: Gateway,
    call: asyncio.Future[tuple[int, list[tuple[bytes, bytes]], bytes]],
    exchange: Exchange,
    adapted: patches.Adapted,
    ticket: Ticket | None,
) -> AsyncIterator[bytes]:
    status = 200
    gw.metrics.open_streams.inc()
    try:
        while not call.done():
            yield fake_stream.KEEPALIVE
            await asyncio.wait({call}, timeout=gw.config.compat.keepalive_s)
        try:
            status, _, content = call.result()
        except GatewayError as exc:
            status = exc.status
            error = {"message": exc.message, "type": exc.type, "param": exc.param, "code": exc.code}
            yield sse.encode({"error": error})
            return
        if status != 200:
            try:
                payload = orjson.loads(content)
            except orjson.JSONDecodeError:
                payload = {
                    "error": {"message": content.decode(errors="replace"), "type": "upstream_error"}
                }
            yield sse.encode(
                payload if isinstance(payload, dict) and "error" in payload else {"error": payload}
            )
            return
        events, usage = _fake_stream_events(content, adapted)
        if ticket is not None:
            ticket.settle(usage)
        exchange.first_token_at = time.perf_counter()
        yield events
    finally:
        gw.metrics.open_streams.dec()
        if not call.done():
            call.cancel()  # the client left while the model was thinking
        if ticket is not None:
            if status != 200:
                ticket.release()
            elif not ticket.done:
                ticket.abandon()


async def send_upstream(
    gw: Gateway,
    request: Request,
    path: str,
    headers: dict[str, str],
    body: bytes,
    buffer: bool = False,
    prepared: PreparedCall | None = None,
) -> UpstreamResponse:
    """Chat calls go through the model's deployments with retries (the first try `prepared`,
    when given); pass-through calls (which may not be safe to repeat) go once to the default
    upstream."""
    exchange = exchange_of(request.scope)
    if not exchange.routed_model:
        return await gw.upstream.send(
            request.method, path, request.scope["query_string"], headers, body
        )
    timeout = client_timeout_s(request.scope["headers"])
    return await gw.dispatch.send(
        exchange.routed_model, request.method, path, request.scope["query_string"], headers,
        body, deadline=None if timeout is None else exchange.started + timeout, buffer=buffer,
        prepared=prepared,
    )  # fmt: skip


def charge(gw: Gateway, ticket: Ticket, status: int, content: bytes) -> None:
    """Settle a finished non-streamed call from the usage its answer reports."""
    if status >= 400:
        ticket.release()
        return
    usage, model = response_usage(content)
    if ticket.price is None and model:  # pass-through: price by the model that answered
        found = gw.models.get(model)
        if found is not None:
            ticket.settle(usage, found[1].price, found[0])
            return
    ticket.settle(usage)
