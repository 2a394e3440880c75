"""Stored chat completions (`store: true`; chat's default is false) and their endpoints.

    GET    /v1/chat/completions                 list (`model`, `limit` 20, `order` asc, `after`)
    GET    /v1/chat/completions/{id}            the completion as answered, plus `metadata`
    POST   /v1/chat/completions/{id}            update `metadata` (only that)
    DELETE /v1/chat/completions/{id}            `{"id", "object": "chat.completion.deleted", ...}`
    GET    /v1/chat/completions/{id}/messages   the request's messages, ids `<id>-<index>`

A streamed completion is stored whole, as its non-streamed twin would have answered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import orjson

from gateway.simulator import listing
from gateway.simulator import openai_errors as oe
from gateway.simulator.call import Call, Header
from gateway.simulator.host import Host
from gateway.simulator.object_store import ObjectStore
from gateway.simulator.openai_errors import SimError
from gateway.simulator.responses_api import Handler
from gateway.wire.validation import metadata_error

PREFIX = "/v1/chat/completions"
STORED_COMPLETIONS = 4096


@dataclass(slots=True)
class StoredChat:
    completion: dict[str, Any]
    messages: list[dict[str, Any]]


def stored_object(completion: dict[str, Any], metadata: Any) -> dict[str, Any]:
    return {**completion, "metadata": metadata if isinstance(metadata, dict) else {}}


def message_items(completion_id: str, messages: list[Any]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        text = content if isinstance(content, str) or content is None else None
        parts = content if isinstance(content, list) else None
        items.append(
            {
                "id": f"{completion_id}-{index}",
                "role": message.get("role"),
                "content": text,
                "name": message.get("name"),
                "content_parts": parts,
            }
        )
    return items


class StoredChatApi:
    __slots__ = ("_host", "_store")

    def __init__(self, host: Host) -> None:
        self._host = host
        self._store: ObjectStore[StoredChat] = ObjectStore(STORED_COMPLETIONS)

    def keep(self, key: str, body: dict[str, Any], completion: dict[str, Any]) -> None:
        obj = stored_object(completion, body.get("metadata"))
        messages = message_items(completion["id"], body.get("messages") or [])
        self._store.put(key, completion["id"], StoredChat(obj, messages))

    def route(self, method: str, path: str) -> Handler | None:
        if path == PREFIX:
            return self._list if method == "GET" else None
        parts = path[len(PREFIX) + 1 :].split("/") if path.startswith(PREFIX + "/") else []
        if len(parts) == 1 and parts[0]:
            return {"GET": self._retrieve, "POST": self._update, "DELETE": self._delete}.get(method)
        if len(parts) == 2 and parts[0] and parts[1] == "messages" and method == "GET":
            return self._messages
        return None

    async def _list(self, call: Call) -> None:
        host = self._host
        if await host.fault(call, {}):
            return
        rates = host.admit(call, 0)
        query = dict(parse_qsl(call.query))
        objects = [stored.completion for stored in self._store.values(call.key)]
        model = query.get("model")
        if model is not None:
            # A short name matches its dated snapshots (stored objects carry the snapshot).
            objects = [
                o for o in objects if o["model"] == model or o["model"].startswith(model + "-")
            ]
        page = listing.page(objects, query, default_order="asc")
        if isinstance(page, SimError):
            await host.reply_error(call, page, rates)
            return
        await host.reply(call, orjson.dumps(page), rates)

    async def _found(self, call: Call) -> tuple[StoredChat | None, list[Header]]:
        host = self._host
        if await host.fault(call, {}):
            return None, []
        rates = host.admit(call, 0)
        completion_id = call.path[len(PREFIX) + 1 :].split("/")[0]
        stored = self._store.get(call.key, completion_id)
        if stored is None:
            # Wording unconfirmed.
            error = SimError(404, f"Completion with id '{completion_id}' not found.")
            await host.reply_error(call, error, rates)
        return stored, rates

    async def _retrieve(self, call: Call) -> None:
        stored, rates = await self._found(call)
        if stored is not None:
            await self._host.reply(call, orjson.dumps(stored.completion), rates)

    async def _update(self, call: Call) -> None:
        host = self._host
        body = await host.body_or_answered(call)
        if body is None:
            return
        stored, rates = await self._found(call)
        if stored is None:
            return
        for name in body:
            if name != "metadata":
                await host.reply_error(call, oe.unknown_parameter(name), rates)
                return
        metadata = body.get("metadata")
        if not isinstance(metadata, dict):
            await host.reply_error(call, oe.invalid_type("metadata", "an object", metadata), rates)
            return
        refused = metadata_error(body)
        if refused is not None:
            await host.reply_error(call, oe.from_gateway(refused), rates)
            return
        stored.completion["metadata"] = metadata
        await host.reply(call, orjson.dumps(stored.completion), rates)

    async def _delete(self, call: Call) -> None:
        stored, rates = await self._found(call)
        if stored is None:
            return
        completion_id = stored.completion["id"]
        self._store.delete(call.key, completion_id)
        deleted = {"id": completion_id, "object": "chat.completion.deleted", "deleted": True}
        await self._host.reply(call, orjson.dumps(deleted), rates)

    async def _messages(self, call: Call) -> None:
        stored, rates = await self._found(call)
        if stored is None:
            return
        page = listing.page(stored.messages, dict(parse_qsl(call.query)), default_order="asc")
        if isinstance(page, SimError):
            await self._host.reply_error(call, page, rates)
            return
        await self._host.reply(call, orjson.dumps(page), rates)
