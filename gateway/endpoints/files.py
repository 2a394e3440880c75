"""The Files API, each team seeing its own files only: `POST /v1/files` (the upload, up to
`server.max_upload_bytes` rather than the `server.max_body_bytes` of every other body, is
forwarded as it came, multipart and all, one over `max_body_bytes` as it arrives, and the file
recorded as the caller's team's),
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
from gateway.server.body import body_chunks, declared_length, read_body
from gateway.server.caller import identify
from gateway.server.entry import gateway_of
from gateway.upstream.contract import StreamedBody, StreamsBodies
from gateway.wire import errors
from gateway.wire.errors import GatewayError


async def upload(request: Request) -> Response:
    gw = gateway_of(request)
    caller = await identify(gw, request)
    server = gw.config.server
    length = declared_length(request, server.max_upload_bytes)
    body: bytes | StreamedBody
    streams = isinstance(gw.upstream, StreamsBodies)
    if length is not None and length > server.max_body_bytes and streams:
        # Sent on as it arrives: a few uploads of hundreds of megabytes, each held whole
        # (twice over while it is read and written), would take the replica's memory. The
        # form is not read: upstream checks it, and the gateway takes nothing from it.
        body = StreamedBody(length, body_chunks(request))
    elif length is None and streams:
        # Chunked, its length unknown until its end: read whole, so bounded as any body is.
        bound = min(server.max_body_bytes, server.max_upload_bytes)
        try:
            body = await read_body(request, bound)
        except GatewayError as exc:
            if exc.status == 413:
                raise errors.unsized_upload_too_large(bound, server.max_upload_bytes) from None
            raise
    else:  # small, or for a client that sends a body whole only
        body = await read_body(request, server.max_upload_bytes)
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
