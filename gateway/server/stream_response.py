"""The client's side of a long call: noticing that the client left, and streaming an answer to
it chunk by chunk.

Starlette's `StreamingResponse` watches for a disconnect with an anyio task group and a second
task for every stream, whatever its length (uvicorn speaks ASGI 2.3, whose `send` does not
fail once the client is gone). Here the stream's own task sends, and the watcher below starts
only for a call that lasts; a relayed stream costs no extra task and no task group.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Awaitable, Callable, Mapping

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from gateway.wire import errors
from gateway.wire.errors import GatewayError

# A call that answers sooner than this never starts a watcher: a timer is far cheaper than a
# task, and a client that leaves is noticed this much later at most.
WATCH_AFTER_S = 0.05
# Told that the client left, given what stops the call: calls it, now or once it knows, unless
# the call should go on (others wait for its answer).
Unless = Callable[[Callable[[], None]], None]


# A class rather than @asynccontextmanager, which costs an async generator per request.
class cancel_on_disconnect:
    """Cancel the current task (an upstream call, a stream) if the client leaves meanwhile;
    it then ends with `errors.client_closed()` (a 499). Or, given `on_gone`, call that instead:
    the task goes on, and decides itself what to do about it. Given `unless`, the client
    leaving asks it, with the cancellation to call if the task is to stop; one called once the
    block is left does nothing.

    o1 models think for minutes before answering; a caller that gave up should not keep that
    generation running (unless what it costs is told only at its end: its caller says so with
    `watch=False`). The watcher is one small task that sleeps in `receive()` until the
    server reports `http.disconnect`, started once the call has taken `WATCH_AFTER_S`.
    """

    __slots__ = (
        "_delay_s", "_gone", "_loop", "_on_gone", "_receive", "_task", "_timer", "_unless",
        "_watcher", "_watching",
    )  # fmt: skip

    def __init__(
        self,
        receive: Receive,
        loop: asyncio.AbstractEventLoop | None,
        delay_s: float = WATCH_AFTER_S,
        *,
        watch: bool = True,
        on_gone: Callable[[], None] | None = None,
        unless: Unless | None = None,
    ) -> None:
        # The request path passes the gateway's kept loop (see `gateway.eventloop`).
        self._loop = loop or asyncio.get_running_loop()
        self._receive = receive
        self._delay_s = delay_s
        self._gone = False
        self._watcher: asyncio.Task[None] | None = None
        # False: the call goes on whoever leaves (a whole answer upstream bills whole must be
        # read to its end to be charged what it cost).
        self._watching = watch
        self._timer: asyncio.TimerHandle | None = None
        self._on_gone = on_gone
        self._unless = unless

    async def __aenter__(self) -> None:
        if not self._watching:
            return
        task = asyncio.current_task(self._loop)
        assert task is not None
        self._task = task
        self._timer = self._loop.call_later(self._delay_s, self._start)

    def _start(self) -> None:
        self._timer = None
        self._watcher = self._loop.create_task(self._watch())

    async def _watch(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        if self._on_gone is not None:
            self._on_gone()
        elif self._unless is not None:
            self._unless(self._stop)
        else:
            self._stop()

    def _stop(self) -> None:
        if self._watcher is not None:  # still in the block: the task is still the call's
            self._gone = True
            self._task.cancel()

    async def __aexit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if self._timer is not None:
            self._timer.cancel()
        # Let go of the watcher: its cancellation's traceback holds `_watch`'s frame, and so
        # this object; keeping the task here would make a cycle of the whole request (its
        # record, ticket, HTTP cycle) that only the garbage collector frees: with many slow
        # streams, their requests' memory would pile up until it runs.
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
        if exc_type is not None and issubclass(exc_type, asyncio.CancelledError) and self._gone:
            self._task.uncancel()
            raise errors.client_closed() from None


class StreamResponse(StreamingResponse):
    """A `StreamingResponse` sent by the request's own task, watched by `cancel_on_disconnect`.

    When the client leaves, the stream stops at its next step and the body iterator is closed
    (an async generator's `finally` runs there and then); the response just ends, as
    Starlette's does. Given `on_gone`, the client leaving calls it instead: the body goes on
    (what it sends goes nowhere) until it ends itself, a 499 (`errors.client_closed`) if it
    stops for that.

    `on_close` runs once the body is done with, however the response ended: what it closes
    is closed even if the body never began (an async generator's `finally` runs only once it
    began, so a task cancelled while the headers are written would skip it).
    """

    def __init__(
        self,
        content: AsyncIterable[bytes],
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        on_gone: Callable[[], None] | None = None,
        on_close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__(content, status_code, headers, media_type)
        self.loop = loop
        self.on_gone = on_gone
        self.on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = self.body_iterator
        try:
            async with cancel_on_disconnect(receive, self.loop, on_gone=self.on_gone):
                await send(
                    {"type": "http.response.start", "status": self.status_code,
                     "headers": self.raw_headers}
                )  # fmt: skip
                async for chunk in body:
                    if not isinstance(chunk, bytes | memoryview):
                        chunk = chunk.encode(self.charset)
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except GatewayError:
            # The client left (a 499), or the body broke off after its headers (a relayed
            # file's; an event stream ends on an error event instead): returned unfinished, the
            # connection is dropped, which tells the client its body is short. The access log
            # and the metrics say why.
            pass
        finally:
            aclose = getattr(body, "aclose", None)
            try:
                if aclose is not None:
                    await aclose()
            finally:
                if self.on_close is not None:
                    await self.on_close()
        if self.background is not None:
            await self.background()
