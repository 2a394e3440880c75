"""Finished spans leaving for the collector: kept in memory, sent in batches over OTLP/HTTP
(JSON) by one background task, never on a request's way.

A request only appends its spans, encoded together (`tracing`), to a queue (`span_queue`). The task sends what has piled up
every `delay_s`, or at once when a batch is full; while an export is under way new spans wait,
up to `max_queue` of them: beyond that they are dropped and counted (a collector that is down or slow
must cost the gateway neither memory nor requests). An export that fails is logged and dropped,
not retried. At shutdown what is left is sent.

The HTTP client is handed in (the gateway's own upstream client, pointed at the collector):
anything whose `send` takes a request and returns an answer with a status, `read` and `close`.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
from typing import Protocol

from gateway.observability.otlp_json import export_frame, export_request
from gateway.observability.span_queue import SpanQueue
from gateway.observability.trace_settings import ExportSettings

log = logging.getLogger("gateway")


class Answer(Protocol):
    status: int

    async def read(self) -> bytes: ...

    async def close(self) -> None: ...


class Client(Protocol):
    """What an export is sent with (`gateway.upstream`'s clients are such)."""

    async def send(
        self, method: str, path: str, query: bytes, headers: dict[str, str], body: bytes
    ) -> Answer: ...

    async def close(self) -> None: ...


class SpanExport:
    def __init__(
        self, client: Client, settings: ExportSettings, service_name: str, scope_name: str
    ) -> None:
        self.client = client
        self.settings = settings
        self.frame = export_frame(service_name, scope_name)
        self.failed = 0  # exports failed since the last warning about it
        self.error = ""  # what the last of them said
        self.exported = 0  # spans the collector took (tests and benchmarks read it)
        self.headers = {"content-type": "application/json", **dict(settings.headers)}
        if settings.gzip:
            self.headers["content-encoding"] = "gzip"
        self._full = asyncio.Event()
        self.queue = SpanQueue(settings.max_queue, settings.max_batch, self._full.set)

    async def run(self) -> None:
        """Export every `delay_s`, or as soon as a batch is full, until cancelled."""
        full, delay = self._full, self.settings.delay_s
        while True:
            try:
                async with asyncio.timeout(delay):
                    await full.wait()
            except TimeoutError:
                await self.export_pending()  # the time is up for every span waiting
                continue
            full.clear()  # before the export: a batch filled meanwhile sets it again
            await self.export_pending(whole_batches=True)

    async def export_pending(self, whole_batches: bool = False) -> None:
        """Send what is waiting, a batch at a time; `whole_batches`: only full ones (spans
        that came during an export wait for the next, rather than leave a few at a time)."""
        queue = self.queue
        while queue.queued >= (queue.max_batch if whole_batches else 1):
            batch, spans = queue.batch()
            await self.export(batch, spans)
        if queue.dropped or self.failed:
            log.warning(
                "traces: %d span(s) dropped, the export queue being full; %d export(s) failed"
                "%s", queue.dropped, self.failed, f" (last: {self.error})" if self.error else "",
            )  # fmt: skip
            queue.dropped = self.failed = 0
            self.error = ""

    async def export(self, batch: list[bytes], spans: int) -> None:
        body = export_request(batch, self.frame)
        if self.settings.gzip:
            body = gzip.compress(body, compresslevel=5)
        try:
            async with asyncio.timeout(self.settings.timeout_s):
                answer = await self.client.send("POST", "", b"", self.headers, body)
                try:
                    text = await answer.read()
                finally:
                    await answer.close()
        except Exception as exc:  # a collector's failure is never the gateway's
            self.failed += 1
            self.error = repr(exc)
            return
        if answer.status >= 300:
            self.failed += 1
            self.error = f"the collector answered {answer.status}: {text[:200]!r}"
            return
        self.exported += spans

    async def close(self) -> None:
        """Send what is left, and close the client."""
        try:
            await self.export_pending()
        finally:
            await self.client.close()
