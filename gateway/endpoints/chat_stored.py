"""The team's stored chat completions (made with `store: true`, streamed or not; the chat
endpoint records each as the caller's team's): `GET /v1/chat/completions` (the team's own,
paged as upstream pages them: `limit` 1-100, default 20, oldest first, `model` and
`metadata[KEY]` filters), and `GET`, `POST` (metadata update), `DELETE
/v1/chat/completions/{id}` and `GET .../messages` (another team's completion is the 404 of a
missing one). Reads cost nothing: never charged nor counted, as stored responses.

Read from the default upstream: a completion a model's own deployment stored is not there.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.endpoints.owned import (
    Kind,
    caller_owning,
    forward_owned,
    metadata_matches,
    metadata_query,
    own_list,
)
from gateway.server.body import read_json_object
from gateway.server.entry import gateway_of
from gateway.wire import errors

CHAT_COMPLETION = Kind(
    "chat_completion", "/chat/completions", "chatcmpl-", errors.chat_completion_not_found,
    default_order="asc",
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

    def keep(obj: dict[str, Any]) -> bool:
        return _model_matches(obj.get("model"), names) and metadata_matches(
            obj.get("metadata"), metadata
        )

    return await own_list(request, CHAT_COMPLETION, keep)


def _model_matches(stored: Any, names: tuple[str, ...]) -> bool:
    """No filter, or the stored model is one of `names` or a dated snapshot of one."""
    if not names:
        return True
    if not isinstance(stored, str):
        return False
    return any(stored == name or stored.startswith(name + "-") for name in names)


async def retrieve(request: Request) -> Response:
    return await forward_owned(request, CHAT_COMPLETION, request.path_params["completion_id"])


async def update(request: Request) -> Response:
    gw = gateway_of(request)
    completion_id = request.path_params["completion_id"]
    caller = await caller_owning(request, CHAT_COMPLETION, completion_id)
    _, body = await read_json_object(request, gw.config.server.max_body_bytes)
    return await forward_owned(request, CHAT_COMPLETION, completion_id, body=body, caller=caller)


async def delete(request: Request) -> Response:
    return await forward_owned(request, CHAT_COMPLETION, request.path_params["completion_id"])


async def messages(request: Request) -> Response:
    completion_id = request.path_params["completion_id"]
    return await forward_owned(request, CHAT_COMPLETION, completion_id, "/messages")
