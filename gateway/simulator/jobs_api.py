"""What the simulated upstream's two kinds of long-running job (batches, fine-tuning jobs) share:
stored per key, listed newest first, retrieved (an unfinished job moves one step, as if time
passed), cancelled, and run to their end by a knob. Each kind says how it is created, how it
moves and what else it serves (`JobsApi`'s subclasses)."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Collection
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import parse_qsl

import orjson

from gateway.simulator import listing
from gateway.simulator import openai_errors as oe
from gateway.simulator.call import Call, Header
from gateway.simulator.files_api import FilesApi
from gateway.simulator.host import Host
from gateway.simulator.object_store import ObjectStore
from gateway.simulator.openai_errors import SimError
from gateway.simulator.responses_api import Handler


class Job(Protocol):
    object: dict[str, Any]

    @property
    def status(self) -> str: ...

    def cancel(self, now: int) -> SimError | None: ...


J = TypeVar("J", bound=Job)


class JobsApi(ABC, Generic[J]):
    """The routes under `prefix` every kind of job has; `more` routes the kind's own
    sub-resources (`/{id}/<name>`, GET)."""

    __slots__ = ("_files", "_finished", "_host", "_kind", "_prefix", "_store")

    def __init__(
        self, host: Host, files: FilesApi, prefix: str, kind: str, finished: Collection[str],
        stored: int,
    ) -> None:  # fmt: skip
        self._host = host
        self._files = files
        self._prefix = prefix
        self._kind = kind  # the object's name in a 404
        self._finished = finished  # the statuses a job ends in
        self._store: ObjectStore[J] = ObjectStore(stored)

    def route(self, method: str, path: str) -> Handler | None:
        prefix = self._prefix
        if path == prefix:
            return {"POST": self._create, "GET": self._list}.get(method)
        parts = path[len(prefix) + 1 :].split("/") if path.startswith(prefix + "/") else []
        if len(parts) == 1 and parts[0] and method == "GET":
            return self._retrieve
        if len(parts) == 2 and parts[0]:
            if parts[1] == "cancel" and method == "POST":
                return self._cancel
            if method == "GET":
                return self.more().get(parts[1])
        return None

    def more(self) -> dict[str, Handler]:
        return {}

    def complete(self, job_id: str) -> dict[str, Any] | None:
        """The `/_sim/.../{id}/complete` knob: run a job to its end; None if unknown."""
        found = self._store.find(job_id)
        if found is None:
            return None
        key, job = found
        while job.status not in self._finished:
            self._step(key, job)
        return job.object

    @abstractmethod
    def _step(self, key: str, job: J) -> None:
        """`job` moves one step (as if time passed), unless it has finished."""

    @abstractmethod
    async def _create(self, call: Call) -> None:
        """`POST {prefix}`: the kind's own checks, then the job stored for the call's key."""

    async def _list(self, call: Call) -> None:
        host = self._host
        if await host.fault(call, {}):
            return
        rates = host.admit(call, 0)
        await self._page(call, [job.object for job in self._store.values(call.key)], rates)

    async def _found(self, call: Call) -> tuple[J | None, list[Header]]:
        host = self._host
        if await host.fault(call, {}):
            return None, []
        rates = host.admit(call, 0)
        job_id = call.path[len(self._prefix) + 1 :].split("/")[0]
        job = self._store.get(call.key, job_id)
        if job is None:
            await host.reply_error(call, oe.not_found(self._kind, job_id), rates)
        return job, rates

    async def _retrieve(self, call: Call) -> None:
        job, rates = await self._found(call)
        if job is not None:
            self._step(call.key, job)
            await self._host.reply(call, orjson.dumps(job.object), rates)

    async def _cancel(self, call: Call) -> None:
        job, rates = await self._found(call)
        if job is None:
            return
        error = job.cancel(int(time.time()))
        if error is not None:
            await self._host.reply_error(call, error, rates)
            return
        await self._host.reply(call, orjson.dumps(job.object), rates)

    async def _page(self, call: Call, items: list[dict[str, Any]], rates: list[Header]) -> None:
        page = listing.page(items, dict(parse_qsl(call.query)))
        if isinstance(page, SimError):
            await self._host.reply_error(call, page, rates)
            return
        await self._host.reply(call, orjson.dumps(page), rates)
