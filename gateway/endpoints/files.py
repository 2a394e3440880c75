"""The Files API, each team seeing its own files only: `POST /v1/files` (the upload, up to
`server.max_upload_bytes` rather than the `server.max_body_bytes` of every other body, is
forwarded as it came, multipart and all, and the file recorded as the caller's team's),
`GET /v1/files` (the team's own, paged: `limit` 1-10,000 as OpenAI takes it, 100 at most
a page, newest first, `purpose`), and `GET`, `GET .../content` and `DELETE /v1/files/{id}`
(another team's file is the 404 of a missing one; a file's content is relayed as it comes,
never held whole). Never charged; every call counts against the team's request limits.

Files other endpoints' bodies name are checked with `owned.check_references`.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.endpoints.owned import (
    FILE,
    attempt_for,
    counted_making,
    create_owned,
    forward_owned,
    own_list,
)
from gateway.server.body import read_body
from gateway.server.caller import identify
from gateway.server.entry import gateway_of


async def upload(request: Request) -> Response:
    gw = gateway_of(request)
    caller = await identify(gw, request)
    body = await read_body(request, gw.config.server.max_upload_bytes)
    attempt = attempt_for(request, caller, FILE.upstream)
    response, _ = await create_owned(attempt, FILE, body, counted_making)
    return response


async def list_files(request: Request) -> Response:
    purpose = request.query_params.get("purpose")

    def keep(obj: dict[str, Any]) -> bool:
        return purpose is None or obj.get("purpose") == purpose

    return await own_list(request, FILE, keep, count=True)


async def retrieve(request: Request) -> Response:
    return await forward_owned(request, FILE, request.path_params["file_id"], count=True)


async def content(request: Request) -> Response:
    # Relayed as it comes: a batch's output may be hundreds of megabytes, which held whole
    # for each download would let a few downloads at once take the replica's memory.
    file_id = request.path_params["file_id"]
    return await forward_owned(request, FILE, file_id, "/content", count=True, stream=True)


async def delete(request: Request) -> Response:
    return await forward_owned(request, FILE, request.path_params["file_id"], count=True)
