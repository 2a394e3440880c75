"""The team's stored chat completions (made with `store: true`, streamed or not; the chat
endpoint records each as the caller's team's): `GET /v1/chat/completions` (the team's own,
paged as upstream pages them: `limit` 1-100, default 20, oldest first, `model` and
`metadata[KEY]` filters; `model` finds one a shut-down model's successor served by the name
its client sent as well as by the successor's), and `GET`, `POST` (metadata update), `DELETE
/v1/chat/completions/{id}` and `GET .../messages` (another team's completion is the 404 of a
missing one). Never charged; every call counts against the team's request limits (a list
once for each `owned.READS_A_COUNT` completions it reads upstream).

Read from the default upstream: a completion a model's own deployment stored is not there.
A completion the gateway patched (`objects.chat_views`) is shown as its client sent and was
answered it, not as upstream stored the patched request, while upstream still has it: one it
answers 404 for (expired, deleted around the gateway) is forgotten, its view with it.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.endpoints.owned import (
    Kind,
    as_shown,
    attempt_for,
    caller_owning,
    counted,
    created,
    forget,
    forward_owned,
    metadata_matches,
    metadata_query,
    own_list,
)
from gateway.objects.chat_views import named, shown
from gateway.server.body import read_json_object
from gateway.server.caller import Caller
from gateway.server.entry import gateway_of
from gateway.wire import errors, pages
from gateway.wire.errors import GatewayError
from gateway.wire.headers import new_request_id

CHAT_COMPLETION = Kind(
    "chat_completion", "/chat/completions", "chatcmpl-", errors.chat_completion_not_found,
    default_order="asc", viewed=True,
)  # fmt: skip


async def list_completions(request: Request) -> Response:
    gw = gateway_of(request)
    query = request.query_params
    model = query.get("model")
    # A model as the team names it: its upstream snapshot is what the stored object carries.
    names: tuple[str, ...] = ()
    if model is not None:
        found = gw.models.get(model)
        names = (model, found[1].upstream) if found is not None else (model,)
    metadata = metadata_query(query)
    # The gateway's views of the completions read, by id: the model each client named, where
    # a successor stored it under its own, and what each was answered.
    views: dict[str, dict[str, Any] | None] = {}

    async def prepare(read: list[dict[str, Any]]) -> None:
        ids = [str(obj.get("id")) for obj in read]
        views.update(zip(ids, await gw.chat_views.get_many(ids), strict=True))

    def keep(obj: dict[str, Any]) -> bool:
        return (
            _model_matches(obj.get("model"), names)
            or _model_matches(named(views.get(str(obj.get("id")))), names)
        ) and metadata_matches(obj.get("metadata"), metadata)

    def view(page: list[dict[str, Any]], _: errors.Tell) -> list[dict[str, Any]]:
        return [shown(obj, views.get(str(obj.get("id")))) for obj in page]

    return await own_list(request, CHAT_COMPLETION, keep, count=True, prepare=prepare, view=view)


def _model_matches(stored: Any, names: tuple[str, ...]) -> bool:
    """No filter, or the stored model is one of `names` or a dated snapshot of one."""
    if not names:
        return True
    if not isinstance(stored, str):
        return False
    return any(stored == name or stored.startswith(name + "-") for name in names)


async def retrieve(request: Request) -> Response:
    completion_id = request.path_params["completion_id"]
    response = await forward_owned(request, CHAT_COMPLETION, completion_id, count=True)
    return await _shown(request, response)


async def update(request: Request) -> Response:
    gw = gateway_of(request)
    completion_id = request.path_params["completion_id"]
    caller = await caller_owning(request, CHAT_COMPLETION, completion_id)
    _, body = await read_json_object(request, gw.config.server.max_body_bytes)
    response = await forward_owned(
        request, CHAT_COMPLETION, completion_id, body=body, count=True, caller=caller
    )
    return await _shown(request, response)


async def delete(request: Request) -> Response:
    completion_id = request.path_params["completion_id"]
    return await forward_owned(request, CHAT_COMPLETION, completion_id, count=True)


async def messages(request: Request) -> Response:
    """The request's messages; of a completion the gateway patched, those its client sent,
    paged as upstream pages them (oldest first by default)."""
    gw = gateway_of(request)
    completion_id = request.path_params["completion_id"]
    caller = await caller_owning(request, CHAT_COMPLETION, completion_id)
    view = await gw.chat_views.get(completion_id)
    asked = view.get("messages") if view is not None else None
    if not isinstance(asked, list):
        return await forward_owned(
            request, CHAT_COMPLETION, completion_id, "/messages", count=True, caller=caller
        )
    # Answered from the view after one upstream read (does upstream still have it?): counted
    # as every call is.
    attempt = attempt_for(request, caller, f"{CHAT_COMPLETION.upstream}/{completion_id}")
    await counted(attempt)
    try:
        if not await _still_stored(request, caller, completion_id):
            raise CHAT_COMPLETION.not_found(completion_id)
        query = {"order": "asc", **request.query_params}
        page = pages.page(_message_items(completion_id, asked), query)
    except GatewayError as exc:
        attempt.failed(exc)  # says what its count left
        raise
    own = {"x-request-id": new_request_id()}
    if attempt.ticket is not None:
        own.update(attempt.ticket.headers)
    return Response(orjson.dumps(page), media_type="application/json", headers=own)


async def _still_stored(request: Request, caller: Caller, completion_id: str) -> bool:
    """Whether upstream still has the completion whose messages its view holds: one it has
    not (expired, deleted around the gateway) is forgotten, and its messages never shown."""
    gw = gateway_of(request)
    headers = gw.upstream_headers(request.scope["headers"], caller.team)
    path = f"{CHAT_COMPLETION.upstream}/{completion_id}"
    resp = await gw.upstream.send("GET", path, b"", headers, b"")
    try:
        await resp.read()
    finally:
        await resp.close()
    if resp.status != 404:
        return True
    await forget(gw, CHAT_COMPLETION, caller.team.name, completion_id)
    return False


def _message_items(completion_id: str, asked: list[Any]) -> list[dict[str, Any]]:
    """Messages as upstream lists a stored completion's: ids `<completion id>-<index>`, text
    content as `content`, parts as `content_parts`."""
    items = []
    for index, message in enumerate(asked):
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        items.append({
            "id": f"{completion_id}-{index}",
            "role": message.get("role"),
            "content": content if isinstance(content, str) or content is None else None,
            "name": message.get("name"),
            "content_parts": content if isinstance(content, list) else None,
        })  # fmt: skip
    return items


async def _shown(request: Request, response: Response) -> Response:
    """Upstream's answer about one stored completion, as its client was answered it."""
    completion = created(response)
    if completion is None:
        return response
    view = await gateway_of(request).chat_views.get(completion["id"])
    if view is None or not isinstance(view.get("choices"), list):
        return response
    return as_shown(response, lambda found: shown(found, view), completion)
