"""The Files API, each team seeing its own files only: `POST /v1/files` (the upload is
forwarded as it came, multipart and all, and the file recorded as the caller's team's),
`GET /v1/files` (the team's own, paged as upstream pages files: `limit` 1-10,000, default
10,000, newest first, `purpose`), and `GET`, `GET .../content` and `DELETE /v1/files/{id}`
(another team's file is the 404 of a missing one). Never charged; every call counts
against the team's request limits.

`file_ids` that other endpoints' bodies name are checked with `check_files`.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.endpoints.owned import (
    Kind,
    attempt_for,
    check_owned,
    counted,
    created,
    forward_owned,
    made_now,
    own_list,
)
from gateway.runtime.gateway import Gateway
from gateway.server.body import read_body
from gateway.server.caller import Caller, identify
from gateway.server.entry import gateway_of
from gateway.wire import errors
from gateway.wire.errors import GatewayError

# OpenAI pages files 10,000 at a time; a team's page here is read object by object from
# upstream, so it is cut at 100 (clients follow `has_more` and `after` as for every list).
MAX_FILES_PAGE = 100
FILE = Kind(
    "file",
    "/files",
    errors.file_not_found,
    default_limit=MAX_FILES_PAGE,
    max_limit=MAX_FILES_PAGE,
)


async def upload(request: Request) -> Response:
    gw = gateway_of(request)
    caller = await identify(gw, request)
    body = await read_body(request, gw.config.server.max_body_bytes)
    attempt = attempt_for(request, caller, FILE.upstream)
    try:
        await counted(attempt)
        response = await attempt.forward(body, stream=False)
    except GatewayError as exc:
        attempt.failed(exc)
        raise
    answer = created(response)
    if answer is not None:
        await gw.owners.record(FILE.name, caller.team.name, answer["id"], made_now())
    return response


async def list_files(request: Request) -> Response:
    purpose = request.query_params.get("purpose")

    def keep(obj: dict[str, Any]) -> bool:
        return purpose is None or obj.get("purpose") == purpose

    return await own_list(request, FILE, keep, count=True)


async def retrieve(request: Request) -> Response:
    return await forward_owned(request, FILE, request.path_params["file_id"], count=True)


async def content(request: Request) -> Response:
    file_id = request.path_params["file_id"]
    return await forward_owned(request, FILE, file_id, "/content", count=True)


async def delete(request: Request) -> Response:
    return await forward_owned(request, FILE, request.path_params["file_id"], count=True)


async def check_files(gw: Gateway, caller: Caller, payload: dict[str, Any]) -> None:
    """Every file a JSON body names (`file_id`, `file_ids`) must be the caller's team's: the
    404 of a missing file otherwise. A value of the wrong type is left for upstream to refuse."""
    named: list[Any] = [payload.get("file_id")]
    file_ids = payload.get("file_ids")
    if isinstance(file_ids, list):
        named += file_ids
    for file_id in named:
        if isinstance(file_id, str):
            await check_owned(gw, caller, FILE, file_id)
