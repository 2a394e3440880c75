"""The team's stored responses: `GET` and `DELETE /v1/responses/{id}`, `POST .../cancel` and
`GET .../input_items`.

Every call looks the id up among the caller's team's responses first: another team's response,
like one that never existed, is a 404. A response upstream stores is then read from upstream
(never charged again: reading costs nothing); one the gateway made by translation is answered
from its store.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from gateway.endpoints.attempt import Attempt
from gateway.objects.responses import StoredResponse
from gateway.runtime.gateway import Gateway
from gateway.server.caller import Caller, identify
from gateway.server.entry import exchange_of, gateway_of
from gateway.wire import errors, pages, validation
from gateway.wire.headers import new_request_id
from gateway.wire.usage import item_ids

JSON = "application/json"


async def retrieve(request: Request) -> Response:
    """The team's response; the items it shows are the team's to give back (a background
    response's output appears here)."""
    caller, stored = await _owned(request)
    if stored.native:
        response = await _upstream(request, caller, "")
        _own_items(request, caller, response, "output")
        return response
    return _json(stored.response)


async def delete(request: Request) -> Response:
    gw = gateway_of(request)
    caller, stored = await _owned(request)
    response_id = request.path_params["response_id"]
    if stored.native:
        response = await _upstream(request, caller, "")
        if response.status_code == 200:
            await gw.responses.delete(caller.team.name, response_id)
        return response
    await gw.responses.delete(caller.team.name, response_id)
    return _json({"id": response_id, "object": "response", "deleted": True})


async def cancel(request: Request) -> Response:
    caller, stored = await _owned(request)
    if stored.native:
        return await _upstream(request, caller, "/cancel")
    raise errors.not_background_response()  # the gateway answers before it returns an id


async def input_items(request: Request) -> Response:
    """The team's response's input items, which upstream gave ids: the team's to give back."""
    caller, stored = await _owned(request)
    if stored.native:
        response = await _upstream(request, caller, "/input_items")
        _own_items(request, caller, response, "data")
        return response
    return _json(pages.page(stored.input_items, dict(request.query_params)))


def _own_items(request: Request, caller: Caller, response: Response, field: str) -> None:
    """Record the items a whole answer of upstream's lists (under `field`) as the team's."""
    if response.status_code != 200 or isinstance(response, StreamingResponse):
        return
    try:
        answer = orjson.loads(bytes(response.body))
    except orjson.JSONDecodeError:
        return
    if isinstance(answer, dict):
        gateway_of(request).responses.own_items(caller.team.name, item_ids(answer.get(field)))


async def _owned(request: Request) -> tuple[Caller, StoredResponse]:
    gw = gateway_of(request)
    caller = await identify(gw, request)
    return caller, await owned_response(gw, caller, request.path_params["response_id"])


async def owned_response(gw: Gateway, caller: Caller, response_id: str) -> StoredResponse:
    """The caller's team's response `response_id`; the 404 of a missing one otherwise."""
    if len(response_id) > validation.MAX_MODEL_CHARS:
        raise errors.response_not_found(response_id[:64] + "...")
    stored = await gw.responses.get(caller.team.name, response_id)
    if stored is None:
        raise errors.response_not_found(response_id)
    return stored


async def _upstream(request: Request, caller: Caller, suffix: str) -> Response:
    """Read (or cancel, or delete) the response where upstream keeps it: once, uncharged. The
    path is made from the id that was checked, never taken from the request as spelled."""
    gw = gateway_of(request)
    path = f"/responses/{request.path_params['response_id']}{suffix}"
    attempt = Attempt(gw, request, exchange_of(request.scope), caller, path, model=None)
    return await attempt.forward(b"", stream=None)


def _json(payload: Any) -> Response:
    return Response(
        orjson.dumps(payload), media_type=JSON, headers={"x-request-id": new_request_id()}
    )
