"""The upstream HTTP client: one small interface, three transports.

- `AiohttpUpstream`: the hot path. On this 2-core machine an aiohttp ClientSession proxied about
  4,500 requests/s at 0.2 ms CPU each, against 2,100 for httpx over httpx-aiohttp and 660 for
  httpx's default transport, which also slows as concurrency rises (see README "Upstream client").
- `HttpxUpstream` (`gateway.httpx_upstream`): kept for measurement (`upstream.client: httpx`)
  and for environments that standardise on httpx.
- `ASGIUpstream`: calls an ASGI app in-process with real streaming (httpx's ASGITransport buffers
  whole bodies), used by `--simulate` to serve from the simulated upstream without a socket.

Every transport raises `GatewayError` 502 when the upstream cannot be reached or drops the
connection, and 504 when it does not answer in time, so the proxy maps faults in one place.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any, Protocol

import aiohttp

from gateway import errors
from gateway.config import UpstreamConfig

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]


class UpstreamResponse(Protocol):
    status: int
    headers: list[tuple[str, str]]

    def iter_chunks(self) -> AsyncIterator[bytes]:
        """Body bytes as they arrive; raises GatewayError if the upstream fails mid-body."""
        ...

    async def read(self) -> bytes: ...

    async def close(self) -> None:
        """Release the connection; safe to call twice, and aborts an unfinished body."""
        ...


class Upstream(Protocol):
    async def send(
        self, method: str, path: str, query: bytes, headers: dict[str, str], body: bytes
    ) -> UpstreamResponse:
        """Send a request; `path` is relative to the upstream base URL (e.g. `/chat/completions`)."""
        ...

    def ready(self) -> bool: ...

    async def close(self) -> None: ...


def create_upstream(config: UpstreamConfig) -> Upstream:
    if config.client == "httpx":
        # Imported only when chosen: httpx costs every worker several MB it would not use.
        from gateway.httpx_upstream import HttpxUpstream

        return HttpxUpstream(config)
    return AiohttpUpstream(config)


# -- aiohttp ------------------------------------------------------------------------------------


def _aiohttp_error(exc: BaseException, read_timeout: float, stage: str) -> errors.GatewayError:
    # Timeouts first: aiohttp's timeout errors are ClientErrors too.
    if isinstance(exc, TimeoutError):
        return errors.upstream_timeout(read_timeout)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return errors.upstream_unreachable(f"cannot connect ({exc.os_error.strerror or exc})")
    return errors.upstream_unreachable(f"connection {stage} ({type(exc).__name__})")


_AIOHTTP_ERRORS = (TimeoutError, aiohttp.ClientError, ConnectionError)


class _AiohttpResponse:
    __slots__ = ("_read_timeout", "_resp", "headers", "status")

    def __init__(self, resp: aiohttp.ClientResponse, read_timeout: float) -> None:
        self._resp = resp
        self._read_timeout = read_timeout
        self.status = resp.status
        self.headers = [
            (k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in resp.raw_headers
        ]

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._resp.content.iter_any():
                yield chunk
        except _AIOHTTP_ERRORS as exc:
            raise _aiohttp_error(exc, self._read_timeout, "lost mid-response") from exc

    async def read(self) -> bytes:
        try:
            return await self._resp.read()
        except _AIOHTTP_ERRORS as exc:
            raise _aiohttp_error(exc, self._read_timeout, "lost mid-response") from exc

    async def close(self) -> None:
        # release() keeps a fully read connection in the pool; an unfinished body closes it,
        # which is what cancels the upstream generation when a client goes away.
        if self._resp.content.is_eof():
            self._resp.release()
        else:
            self._resp.close()


class AiohttpUpstream:
    def __init__(self, config: UpstreamConfig) -> None:
        self._base = config.base_url.rstrip("/")
        self._read_timeout = config.read_timeout_s
        self._first_byte_timeout = config.first_byte_timeout_s
        self._loop: asyncio.AbstractEventLoop | None = None
        connector = aiohttp.TCPConnector(
            limit=config.pool_size, limit_per_host=config.pool_size, ttl_dns_cache=300
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            # sock_read also bounds the wait for the headers, so it must allow the first byte;
            # that wait has its own, usually longer, limit below.
            timeout=aiohttp.ClientTimeout(
                total=config.total_timeout_s,
                sock_connect=config.connect_timeout_s,
                sock_read=max(config.read_timeout_s, config.first_byte_timeout_s),
            ),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
        )

    async def send(
        self, method: str, path: str, query: bytes, headers: dict[str, str], body: bytes
    ) -> UpstreamResponse:
        url = self._base + path
        if query:
            url += "?" + query.decode("latin-1")
        # The wait for the headers has its own limit. Done by hand rather than with
        # asyncio.timeout(): that looks the loop up twice, and each lookup is a getpid() on
        # Python 3.11, a measurable cost per request.
        loop = self._loop or self._bind_loop()
        task = asyncio.current_task(loop)
        assert task is not None
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            task.cancel()

        timer = loop.call_later(self._first_byte_timeout, expire)
        try:
            resp = await self._session.request(
                method, url, headers=headers, data=body or None, allow_redirects=False
            )
        except asyncio.CancelledError:
            if expired and task.uncancel() == 0:
                raise errors.upstream_timeout(self._first_byte_timeout) from None
            raise
        except _AIOHTTP_ERRORS as exc:
            raise _aiohttp_error(exc, self._first_byte_timeout, "failed") from exc
        finally:
            timer.cancel()
        return _AiohttpResponse(resp, self._read_timeout)

    def _bind_loop(self) -> asyncio.AbstractEventLoop:
        self._loop = asyncio.get_running_loop()
        return self._loop

    def ready(self) -> bool:
        return not self._session.closed

    async def close(self) -> None:
        await self._session.close()


# -- in-process ASGI ----------------------------------------------------------------------------

_END = object()


class _ASGIResponse:
    __slots__ = ("_done", "_queue", "_read_timeout", "_task", "headers", "status")

    def __init__(
        self,
        status: int,
        headers: list[tuple[str, str]],
        queue: asyncio.Queue[Any],
        task: asyncio.Task[None],
        done: asyncio.Event,
        read_timeout: float,
    ) -> None:
        self.status = status
        self.headers = headers
        self._queue = queue
        self._task = task
        self._done = done
        self._read_timeout = read_timeout

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        while True:
            try:
                async with asyncio.timeout(self._read_timeout):
                    item = await self._queue.get()
            except TimeoutError as exc:
                raise errors.upstream_timeout(self._read_timeout) from exc
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise errors.upstream_unreachable("connection lost mid-response") from item
            if item:
                yield item

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.iter_chunks()])

    async def close(self) -> None:
        self._done.set()  # the app sees http.disconnect
        if not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


class ASGIUpstream:
    def __init__(self, app: ASGIApp, read_timeout_s: float, prefix: str = "/v1") -> None:
        self._app = app
        self._prefix = prefix
        self._read_timeout = read_timeout_s

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
        done = asyncio.Event()
        body_sent = False

        async def receive() -> Message:
            nonlocal body_sent
            if not body_sent:
                body_sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await done.wait()
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
            except Exception as exc:  # the app crashed: to the proxy that is a dropped connection
                queue.put_nowait(exc)

        task = asyncio.create_task(run())
        try:
            async with asyncio.timeout(self._read_timeout):
                start = await queue.get()
        except TimeoutError as exc:
            task.cancel()
            raise errors.upstream_timeout(self._read_timeout) from exc
        except asyncio.CancelledError:
            task.cancel()
            raise
        if isinstance(start, BaseException) or start is _END:
            raise errors.upstream_unreachable(
                "the upstream closed the connection without answering"
            )
        response_headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in start["headers"]]
        return _ASGIResponse(
            start["status"], response_headers, queue, task, done, self._read_timeout
        )

    def ready(self) -> bool:
        return True

    async def close(self) -> None:
        return None
