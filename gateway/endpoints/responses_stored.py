"""The team's stored responses: `GET` and `DELETE /v1/responses/{id}`, `POST .../cancel` and
`GET .../input_items`.

Every call looks the id up among the caller's team's responses first: another team's response,
like one that never existed, is a 404. It then counts against the team's request limits, once
(and once more for each `owned.READS_A_COUNT` pages of input items it reads upstream), and is
never charged (reading costs nothing). A response upstream stores is read from upstream; one
the gateway made by translation is answered from its store (counted all the same: its client
cannot tell which).
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from gateway.endpoints.attempt import Attempt
from gateway.endpoints.owned import CountedReads, as_shown, attempt_for, counted
from gateway.objects.responses import StoredResponse
from gateway.runtime.gateway import Gateway
from gateway.server.caller import Caller, identify
from gateway.server.entry import gateway_of
from gateway.wire import errors, pages, sse, validation
from gateway.wire.errors import GatewayError
from gateway.wire.headers import new_request_id
from gateway.wire.usage import item_ids, reasoning_carried

JSON = "application/json"
_NO_PREVIOUS = re.compile(rb'"previous_response_id"\s*:\s*null')
_ITEM_DONE = b"response.output_item.done"
log = logging.getLogger("gateway")


Serve = Callable[[Request, Attempt, StoredResponse], Awaitable[Response]]


def _counted(suffix: str) -> Callable[[Serve], Callable[[Request], Awaitable[Response]]]:
    """A handler of the team's response the path names (`_owned`), counted against the team's
    request limits before it is served; the call upstream, if it makes one, is to the response's
    path and `suffix`. What it answers, errors too, says what the count left."""

    def wrap(serve: Serve) -> Callable[[Request], Awaitable[Response]]:
        async def handler(request: Request) -> Response:
            attempt, stored = await _owned(request, suffix)
            try:
                return await serve(request, attempt, stored)
            except GatewayError as exc:
                attempt.failed(exc)
                raise

        return handler

    return wrap


@_counted("")
async def retrieve(request: Request, attempt: Attempt, stored: StoredResponse) -> Response:
    """The team's response; the items it shows are the team's to give back (a background
    response's output appears here). One whose conversation the gateway spelled out for
    upstream names the `previous_response_id` its client gave."""
    caller = attempt.caller
    if stored.native:
        response = await attempt.forward(b"", stream=None)
        answer = _own_items(request, caller, response, "output")
        previous = stored.previous_response_id
        if isinstance(response, StreamingResponse) and response.status_code == 200:
            # A background response's stream picked up again: its items, as they are done.
            own = gateway_of(request).responses.own_items
            response.body_iterator = _owning_items(
                response.body_iterator, lambda ids: own(caller.team.name, ids)
            )
            if previous is not None:
                response.body_iterator = restore_previous(response.body_iterator, previous)
            return response
        if answer is None:
            return response
        return answered_as_shown(response, answer, previous, attempt.told)
    if request.query_params.get("stream") == "true":
        raise errors.not_background_stream()  # the gateway never runs one in the background
    return _json(stored.response, attempt)


@_counted("")
async def delete(request: Request, attempt: Attempt, stored: StoredResponse) -> Response:
    gw, team = gateway_of(request), attempt.caller.team.name
    response_id = request.path_params["response_id"]
    if stored.native:
        await _settle_if_ended(gw, response_id)
        response = await attempt.forward(b"", stream=None)
        if response.status_code == 200:
            await gw.responses.delete(team, response_id)
        return response
    await gw.responses.delete(team, response_id)
    return _json({"id": response_id, "object": "response", "deleted": True}, attempt)


async def _settle_if_ended(gw: Gateway, response_id: str) -> None:
    """A background response the gateway follows is settled before it is deleted, if it ended:
    deleted, it can no longer say what it cost, and is charged its whole hold (a client that
    polls its response until it ended, then deletes it, deletes it before the follower's next
    look). Not settled now, it is still settled then."""
    if gw.follower is None:
        return
    try:
        await gw.follower.settle_ended("response", response_id)
    except (GatewayError, RedisError, OSError) as exc:
        log.warning("response %s: not settled before its delete (%r)", response_id, exc)


@_counted("/cancel")
async def cancel(request: Request, attempt: Attempt, stored: StoredResponse) -> Response:
    if stored.native:
        response = await attempt.forward(b"", stream=None)
        return as_shown(response, lambda answer: shown_response(answer, attempt.told))
    raise errors.not_background_response()  # the gateway answers before it returns an id


@_counted("/input_items")
async def input_items(request: Request, attempt: Attempt, stored: StoredResponse) -> Response:
    """The team's response's input items, which upstream gave ids: the team's to give back.
    Of a response whose conversation the gateway spelled out for upstream, those its client
    gave: upstream's list, read whole, without the earlier turns it was sent."""
    caller = attempt.caller
    query = dict(request.query_params)
    if stored.native and stored.previous_response_id is not None:
        pages.cursor(query)  # a bad limit or order is refused before upstream is asked
        items = await _all_input_items(request, attempt)
        if isinstance(items, Response):
            return items
        given = items[stored.spelled_items :]
        gateway_of(request).responses.own_items(caller.team.name, item_ids(given))
        return _json(pages.page(given, query), attempt)
    if stored.native:
        response = await attempt.forward(b"", stream=None)
        _own_items(request, caller, response, "data")
        return response
    return _json(pages.page(stored.input_items, query), attempt)


async def _all_input_items(request: Request, attempt: Attempt) -> list[dict[str, Any]] | Response:
    """Every input item of a response upstream stores, oldest first, its pages counted as a
    list's reads (`CountedReads`); upstream's answer as it came when a page cannot be read."""
    gw, caller = gateway_of(request), attempt.caller
    headers = gw.upstream_headers(request.scope["headers"], caller.team)
    path = f"/responses/{request.path_params['response_id']}/input_items"
    # What the items should include (`include[]=...`) is the client's to ask.
    parts = request.scope["query_string"].split(b"&")
    query = b"order=asc&limit=100" + b"".join(b"&" + p for p in parts if p.startswith(b"include"))
    items: list[dict[str, Any]] = []
    after = b""
    reads = CountedReads(request, caller, path, attempt)
    while True:
        await reads.one()
        resp = await gw.upstream.send("GET", path, query + after, headers, b"")
        try:
            content = await resp.read()
        finally:
            await resp.close()
        page = orjson.loads(content) if resp.status == 200 else None
        if not isinstance(page, dict):
            return attempt.relayed(content, resp.status, attempt.client_headers(resp.headers))
        items += [item for item in page.get("data") or () if isinstance(item, dict)]
        if not page.get("has_more") or not page.get("last_id"):
            return items
        after = b"&after=" + str(page["last_id"]).encode()


def answered_as_shown(
    response: Response, answer: dict[str, Any], previous: str | None, tell: errors.Tell
) -> Response:
    """A response's whole answer (`answer`, parsed) as its team sees it (`shown_response`),
    naming the `previous_response_id` its client gave when the gateway spelled its
    conversation out for upstream."""
    shown = shown_response(answer, tell)
    if previous is not None:
        shown = {**shown, "previous_response_id": previous}
    return as_shown(response, lambda _: shown, answer)


def shown_response(response: dict[str, Any], tell: errors.Tell) -> dict[str, Any]:
    """A response upstream answered with as its team sees it: the error a failed one carries
    as `tell` tells it (upstream words a background response's failure for the account whose
    key the team's calls go on: its organization's rate limit, its quota). The same object
    when that changes nothing."""
    error = response.get("error")
    told = tell(error) if isinstance(error, dict) else error
    return response if told is error else {**response, "error": told}


def _own_items(
    request: Request, caller: Caller, response: Response, field: str
) -> dict[str, Any] | None:
    """Record the items a whole answer of upstream's lists (under `field`) as the team's; the
    answer, parsed (None if it is no JSON object)."""
    if response.status_code != 200 or isinstance(response, StreamingResponse):
        return None
    try:
        answer = orjson.loads(bytes(response.body))
    except orjson.JSONDecodeError:
        return None
    if not isinstance(answer, dict):
        return None
    responses = gateway_of(request).responses
    responses.own_items(caller.team.name, item_ids(answer.get(field)))
    if field == "output":  # a response read once it ended: the reasoning its items carry
        responses.note_reasoning(caller.team.name, reasoning_carried(answer))
    return answer


async def _owning_items(
    chunks: AsyncIterable[str | bytes | memoryview], own: Callable[[list[str]], None]
) -> AsyncIterator[bytes]:
    """A Responses event stream relayed as it comes, `own` told the id of each output item
    it finishes (`response.output_item.done`)."""
    decoder = sse.Decoder()
    try:
        async for chunk in chunks:
            raw = chunk.encode() if isinstance(chunk, str) else bytes(chunk)
            block = decoder.complete(raw)
            if _ITEM_DONE in block:
                own([i for data in sse.events(block) for i in _done_item_ids(data)])
            yield raw
    finally:
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()


def _done_item_ids(data: bytes) -> list[str]:
    """The id of the item an event's data finishes, if it is a `response.output_item.done`."""
    try:
        event = orjson.loads(data)
    except orjson.JSONDecodeError:
        return []
    if not isinstance(event, dict) or event.get("type") != "response.output_item.done":
        return []
    return item_ids([event.get("item")])


async def restore_previous(
    chunks: AsyncIterable[str | bytes | memoryview], previous: str
) -> AsyncIterator[bytes]:
    """A native stream whose request the gateway spelled out: its response objects name the
    `previous_response_id` the client gave, as if upstream had been given it."""
    decoder = sse.Decoder()
    named = b'"previous_response_id":' + orjson.dumps(previous)
    try:
        async for chunk in chunks:
            block = decoder.complete(chunk.encode() if isinstance(chunk, str) else bytes(chunk))
            if block:
                yield _NO_PREVIOUS.sub(lambda _: named, block)
        if rest := decoder.pending():
            yield rest
    finally:
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()


async def _owned(request: Request, suffix: str) -> tuple[Attempt, StoredResponse]:
    """The caller's team's response the path names (the 404 of a missing one otherwise), and
    the call about it, counted. Read, cancelled or deleted where upstream keeps it, it is
    called once at the path made from the id that was checked, never as the request spelled
    it."""
    gw = gateway_of(request)
    caller = await identify(gw, request)
    response_id = request.path_params["response_id"]
    stored = await owned_response(gw, caller, response_id)
    attempt = attempt_for(request, caller, f"/responses/{response_id}{suffix}")
    await counted(attempt)
    return attempt, stored


async def owned_response(gw: Gateway, caller: Caller, response_id: str) -> StoredResponse:
    """The caller's team's response `response_id`; the 404 of a missing one otherwise."""
    if len(response_id) > validation.MAX_MODEL_CHARS:
        raise errors.response_not_found(response_id[:64] + "...")
    stored = await gw.responses.get(caller.team.name, response_id)
    if stored is None:
        raise errors.response_not_found(response_id)
    return stored


def _json(payload: Any, attempt: Attempt) -> Response:
    """An answer the gateway makes itself, with what the call's count left."""
    own = {"x-request-id": new_request_id()}
    if attempt.ticket is not None:
        own.update(attempt.ticket.headers)
    return Response(orjson.dumps(payload), media_type=JSON, headers=own)
