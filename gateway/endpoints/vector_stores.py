"""Vector stores, each team seeing its own only: `POST /v1/vector_stores` (every file its
`file_ids` name must be the team's: the 404 of a missing file otherwise; the store is recorded
as the team's), `GET /v1/vector_stores` (the team's own, paged: `limit` 1-100, default 20,
newest first, `after` or `before`), and `GET`, `POST` (update) and `DELETE /v1/vector_stores/{id}` (another team's
store is the 404 of a missing one). Never charged; every call counts against the team's
request limits. Their files, file batches and search are not served (not in the table).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway.endpoints.owned import (
    VECTOR_STORE,
    attempt_for,
    caller_owning,
    check_references,
    counted_making,
    create_owned,
    forward_owned,
    own_list,
)
from gateway.server.body import read_json_object
from gateway.server.caller import identify
from gateway.server.entry import gateway_of


async def create(request: Request) -> Response:
    gw = gateway_of(request)
    caller = await identify(gw, request)
    payload, body = await read_json_object(request, gw.config.server.max_body_bytes)
    await check_references(gw, caller, body, payload)
    attempt = attempt_for(request, caller, VECTOR_STORE.upstream)
    response, _ = await create_owned(attempt, VECTOR_STORE, body, counted_making)
    return response


async def list_stores(request: Request) -> Response:
    return await own_list(request, VECTOR_STORE, count=True)


async def retrieve(request: Request) -> Response:
    store_id = request.path_params["vector_store_id"]
    return await forward_owned(request, VECTOR_STORE, store_id, count=True)


async def update(request: Request) -> Response:
    gw = gateway_of(request)
    store_id = request.path_params["vector_store_id"]
    caller = await caller_owning(request, VECTOR_STORE, store_id)
    payload, body = await read_json_object(request, gw.config.server.max_body_bytes)
    await check_references(gw, caller, body, payload)
    return await forward_owned(
        request, VECTOR_STORE, store_id, body=body, count=True, caller=caller
    )


async def delete(request: Request) -> Response:
    store_id = request.path_params["vector_store_id"]
    return await forward_owned(request, VECTOR_STORE, store_id, count=True)
