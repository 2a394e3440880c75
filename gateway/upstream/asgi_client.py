"""The in-process transport: an ASGI app called as if it were the upstream, with real
streaming (httpx's ASGITransport buffers whole bodies). `--simulate` serves from the simulated
upstream through it, without a socket.

A caller that stops waiting (a timeout, a stream closed early, its own client gone) is to the app
what a closed connection is to an app behind a server: `http.disconnect`, not a cancellation. The
app ends as it would upstream (a whole answer finished and billed, a stream stopped); the client
keeps its task until then, and cancels what still runs when it is closed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

from gateway.upstream.contract import UpstreamResponse
from gateway.wire import errors

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]

_END = object()


class _Call:
    """One request's app task, and the event that tells it its client left."""

    __slots__ = ("_running", "left", "task")

    def __init__(self, task: asyncio.Task[None], running: set[asyncio.Task[None]]) -> None:
        self.task = task
        self.left = asyncio.Event()
        self._running = running

    def leave(self) -> None:
        """The app sees `http.disconnect`; its task is kept until it ends."""
        self.left.set()
        task = self.task
        if not task.done():
            self._running.add(task)
            task.add_done_callback(self._running.discard)


class _ASGIResponse:
    __slots__ = ("_call", "_queue", "_read_timeout", "headers", "status")

    def __init__(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        queue: asyncio.Queue[Any],
        call: _Call,
        read_timeout: float,
    ) -> None:
        self.status = status
        self.headers = headers
        self._queue = queue
        self._call = call
        self._read_timeout = read_timeout

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        while True:
            try:
                async with asyncio.timeout(self._read_timeout):
                    item = await self._queue.get()
            except TimeoutError as exc:
                raise errors.upstream_timeout(self._read_timeout, sent=True) from exc
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise errors.upstream_truncated("connection lost mid-response") from item
            if item:
                yield item

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.iter_chunks()])

    async def close(self) -> None:
        self._call.leave()


class ASGIUpstream:
    def __init__(self, app: ASGIApp, read_timeout_s: float, prefix: str = "/v1") -> None:
        self._app = app
        self._prefix = prefix
        self._read_timeout = read_timeout_s
        # Apps whose caller left, still running (the loop holds tasks weakly).
        self._running: set[asyncio.Task[None]] = set()

    async def send(
        self, method: str, path: str, query: bytes, headers: dict[str, str], body: bytes
    ) -> UpstreamResponse:
        full_path = self._prefix + path
        scope: Scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": full_path,
            "raw_path": full_path.encode(),
            "query_string": query,
            "root_path": "",
            "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()],
            "client": ("127.0.0.1", 0),
            "server": ("simulator", 80),
        }
        queue: asyncio.Queue[Any] = asyncio.Queue()
        body_sent = False
        call: _Call | None = None

        async def receive() -> Message:
            nonlocal body_sent
            if not body_sent:
                body_sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            assert call is not None  # made before the app runs
            await call.left.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                queue.put_nowait(message)
            elif message["type"] == "http.response.body":
                queue.put_nowait(message.get("body", b""))
                if not message.get("more_body", False):
                    queue.put_nowait(_END)

        async def run() -> None:
            try:
                await self._app(scope, receive, send)
            except Exception as exc:  # the app crashed: to callers that is a dropped connection
                queue.put_nowait(exc)

        call = _Call(asyncio.create_task(run()), self._running)
        try:
            async with asyncio.timeout(self._read_timeout):
                start = await queue.get()
        except TimeoutError as exc:
            call.leave()
            raise errors.upstream_timeout(self._read_timeout, sent=True) from exc
        except asyncio.CancelledError:
            call.leave()
            raise
        if isinstance(start, BaseException) or start is _END:
            raise errors.upstream_unreachable(
                "the upstream closed the connection without answering", sent=True
            )
        response_headers = [(k.lower(), v) for k, v in start["headers"]]
        return _ASGIResponse(start["status"], response_headers, queue, call, self._read_timeout)

    def ready(self) -> bool:
        return True

    async def close(self) -> None:
        running = list(self._running)
        for task in running:
            task.cancel()
        for task in running:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
