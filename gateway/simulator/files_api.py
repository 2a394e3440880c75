"""The Files API of the simulated upstream (raw ASGI handlers, like `responses_api`).

    POST   /v1/files                 upload (multipart: `file`, `purpose`)
    GET    /v1/files                 list (`purpose`, `limit` default and max 10,000, `order`
                                     default desc, `after`)
    GET    /v1/files/{id}            the file object
    GET    /v1/files/{id}/content    the raw bytes
    DELETE /v1/files/{id}            `{"id", "object": "file", "deleted": true}`

Files live in memory per key: at most `STORED_FILES` files and `STORED_BYTES` bytes a key,
the oldest dropped first.
"""

from __future__ import annotations

import time
from urllib.parse import parse_qsl

import orjson

from gateway.simulator import files, listing
from gateway.simulator import openai_errors as oe
from gateway.simulator.call import Call
from gateway.simulator.files import StoredFile
from gateway.simulator.host import Host
from gateway.simulator.ids import alnum_id
from gateway.simulator.object_store import ObjectStore
from gateway.simulator.openai_errors import SimError
from gateway.simulator.responses_api import Handler

PREFIX = "/v1/files"
STORED_FILES = 1024
STORED_BYTES = 256 * 1024 * 1024
MAX_FILES_PAGE = 10_000


class FilesApi:
    __slots__ = ("_host", "store")

    def __init__(self, host: Host) -> None:
        self._host = host
        self.store: ObjectStore[StoredFile] = ObjectStore(
            STORED_FILES, lambda stored: len(stored.data), STORED_BYTES
        )

    def route(self, method: str, path: str) -> Handler | None:
        if path == PREFIX:
            return {"POST": self._create, "GET": self._list}.get(method)
        parts = path[len(PREFIX) + 1 :].split("/") if path.startswith(PREFIX + "/") else []
        if len(parts) == 1 and parts[0]:
            return {"GET": self._retrieve, "DELETE": self._delete}.get(method)
        if len(parts) == 2 and parts[0] and parts[1] == "content" and method == "GET":
            return self._content
        return None

    def add(
        self, key: str, filename: str, purpose: str, data: bytes, expires_after_s: int | None = None
    ) -> StoredFile:
        """Store a file (an upload, or a batch's output) under `key`; `expires_after_s`: it
        expires that long after it is made."""
        file_id = alnum_id("file-", self._host.draw_seed(), 22)
        obj = files.file_object(
            file_id, filename, purpose, len(data), int(time.time()), expires_after_s
        )
        stored = StoredFile(obj, data)
        self.store.put(key, file_id, stored)
        return stored

    async def _create(self, call: Call) -> None:
        host = self._host
        if await host.fault(call, {}):
            return
        rates = host.admit(call, 0)
        fields = files.form_of(call.body, call.content_type)
        upload = fields if isinstance(fields, SimError) else files.check_upload(fields)
        if isinstance(upload, SimError):
            await host.reply_error(call, upload, rates)
            return
        filename, purpose, data = upload
        stored = self.add(call.key, filename, purpose, data)
        await host.reply(call, orjson.dumps(stored.object), rates)

    async def _list(self, call: Call) -> None:
        host = self._host
        if await host.fault(call, {}):
            return
        rates = host.admit(call, 0)
        query = dict(parse_qsl(call.query))
        objects = [stored.object for stored in self.store.values(call.key)]
        purpose = query.get("purpose")
        if purpose is not None:
            objects = [obj for obj in objects if obj["purpose"] == purpose]
        page = listing.page(objects, query, default_limit=MAX_FILES_PAGE, max_limit=MAX_FILES_PAGE)
        if isinstance(page, SimError):
            await host.reply_error(call, page, rates)
            return
        await host.reply(call, orjson.dumps(page), rates)

    async def _found(self, call: Call) -> tuple[StoredFile | None, list[tuple[bytes, bytes]]]:
        host = self._host
        if await host.fault(call, {}):
            return None, []
        rates = host.admit(call, 0)
        file_id = call.path[len(PREFIX) + 1 :].split("/")[0]
        stored = self.store.get(call.key, file_id)
        if stored is None:
            await host.reply_error(call, oe.not_found("File", file_id), rates)
        return stored, rates

    async def _retrieve(self, call: Call) -> None:
        stored, rates = await self._found(call)
        if stored is not None:
            await self._host.reply(call, orjson.dumps(stored.object), rates)

    async def _content(self, call: Call) -> None:
        stored, rates = await self._found(call)
        if stored is not None:
            await self._host.reply_raw(call, b"application/octet-stream", stored.data, rates)

    async def _delete(self, call: Call) -> None:
        stored, rates = await self._found(call)
        if stored is None:
            return
        file_id = stored.object["id"]
        self.store.delete(call.key, file_id)
        deleted = {"id": file_id, "object": "file", "deleted": True}
        await self._host.reply(call, orjson.dumps(deleted), rates)
