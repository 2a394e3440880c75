"""Vector stores, minimal (raw ASGI handlers and the object; no search, no file endpoints).

    POST   /v1/vector_stores        create `{name?, file_ids?, metadata?}` (files must exist)
    GET    /v1/vector_stores        list (`limit`, `order` default desc, `after`)
    GET    /v1/vector_stores/{id}   retrieve
    POST   /v1/vector_stores/{id}   update `name` / `metadata`
    DELETE /v1/vector_stores/{id}   `{"id", "object": "vector_store.deleted", "deleted": true}`

Files are "indexed" at once: `status` is completed and `usage_bytes` is the files' bytes.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qsl

import orjson

from gateway.simulator import listing
from gateway.simulator import openai_errors as oe
from gateway.simulator.call import Call, Header
from gateway.simulator.files_api import FilesApi
from gateway.simulator.host import Host
from gateway.simulator.ids import alnum_id
from gateway.simulator.object_store import ObjectStore
from gateway.simulator.openai_errors import SimError
from gateway.simulator.responses_api import Handler
from gateway.wire.validation import metadata_error

PREFIX = "/v1/vector_stores"
STORED_VECTOR_STORES = 1024


def vector_store_object(
    store_id: str, name: str | None, metadata: Any, file_bytes: list[int], now: int
) -> dict[str, Any]:
    count = len(file_bytes)
    return {
        "id": store_id,
        "object": "vector_store",
        "created_at": now,
        "name": name,
        "usage_bytes": sum(file_bytes),
        "file_counts": {
            "in_progress": 0,
            "completed": count,
            "failed": 0,
            "cancelled": 0,
            "total": count,
        },
        "status": "completed",
        "expires_after": None,
        "expires_at": None,
        "last_active_at": now,
        "metadata": metadata if isinstance(metadata, dict) else {},
    }


def _check_update(body: dict[str, Any]) -> SimError | None:
    name = body.get("name")
    if name is not None and not isinstance(name, str):
        return oe.invalid_type("name", "a string", name)
    refused = metadata_error(body)
    return None if refused is None else oe.from_gateway(refused)


class VectorStoresApi:
    __slots__ = ("_files", "_host", "_store")

    def __init__(self, host: Host, files: FilesApi) -> None:
        self._host = host
        self._files = files
        self._store: ObjectStore[dict[str, Any]] = ObjectStore(STORED_VECTOR_STORES)

    def route(self, method: str, path: str) -> Handler | None:
        if path == PREFIX:
            return {"POST": self._create, "GET": self._list}.get(method)
        rest = path[len(PREFIX) + 1 :] if path.startswith(PREFIX + "/") else ""
        if rest and "/" not in rest:
            return {"GET": self._retrieve, "POST": self._update, "DELETE": self._delete}.get(method)
        return None

    async def _create(self, call: Call) -> None:
        host = self._host
        body = await host.body_or_answered(call)
        if body is None:
            return
        rates = host.admit(call, 0)
        error = _check_update(body)
        file_ids = body.get("file_ids") or []
        if error is None and not isinstance(file_ids, list):
            error = oe.invalid_type("file_ids", "an array", file_ids)
        sizes: list[int] = []
        for file_id in file_ids if error is None else []:
            stored = self._files.store.get(call.key, file_id) if isinstance(file_id, str) else None
            if stored is None:
                error = oe.not_found("File", str(file_id))
                break
            sizes.append(stored.object["bytes"])
        if error is not None:
            await host.reply_error(call, error, rates)
            return
        store_id = "vs_" + alnum_id("", host.draw_seed(), 24)
        obj = vector_store_object(
            store_id, body.get("name"), body.get("metadata"), sizes, int(time.time())
        )
        self._store.put(call.key, store_id, obj)
        await host.reply(call, orjson.dumps(obj), rates)

    async def _list(self, call: Call) -> None:
        host = self._host
        if await host.fault(call, {}):
            return
        rates = host.admit(call, 0)
        page = listing.page(self._store.values(call.key), dict(parse_qsl(call.query)))
        if isinstance(page, SimError):
            await host.reply_error(call, page, rates)
            return
        await host.reply(call, orjson.dumps(page), rates)

    async def _found(
        self, call: Call, body: dict[str, Any]
    ) -> tuple[dict[str, Any] | None, list[Header]]:
        host = self._host
        if await host.fault(call, body):
            return None, []
        rates = host.admit(call, 0)
        store_id = call.path[len(PREFIX) + 1 :]
        obj = self._store.get(call.key, store_id)
        if obj is None:
            await host.reply_error(call, oe.not_found("VectorStore", store_id), rates)
        return obj, rates

    async def _retrieve(self, call: Call) -> None:
        obj, rates = await self._found(call, {})
        if obj is not None:
            await self._host.reply(call, orjson.dumps(obj), rates)

    async def _update(self, call: Call) -> None:
        host = self._host
        body = await host.body_or_answered(call)
        if body is None:
            return
        obj, rates = await self._found(call, {})
        if obj is None:
            return
        error = _check_update(body)
        if error is not None:
            await host.reply_error(call, error, rates)
            return
        if "name" in body:
            obj["name"] = body["name"]
        if body.get("metadata") is not None:
            obj["metadata"] = body["metadata"]
        obj["last_active_at"] = int(time.time())
        await host.reply(call, orjson.dumps(obj), rates)

    async def _delete(self, call: Call) -> None:
        obj, rates = await self._found(call, {})
        if obj is None:
            return
        self._store.delete(call.key, obj["id"])
        deleted = {"id": obj["id"], "object": "vector_store.deleted", "deleted": True}
        await self._host.reply(call, orjson.dumps(deleted), rates)
