"""uvicorn's httptools protocol, with the writes of one event-loop tick sent as one.

uvicorn writes a response's status line and headers, then its body, as separate socket writes;
each write is a system call (and, to a peer, possibly a packet of its own), so every proxied
response paid for two. Here a response's writes made in the same tick (a whole non-streamed
response, or a stream's headers and first chunk) leave in one write at the end of the tick:
the same bytes, in the same order, no later than the tick in which they were written. A
stream's later chunks come one per tick and go straight out.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class CorkedTransport:
    """A transport whose writes are joined until the end of the current loop tick, until a
    response's first bytes have left: a streamed response's later chunks come one per tick
    and go straight out, without a loop callback each (`uncork` ends that at its end)."""

    __slots__ = ("_loop", "_pending", "_through", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] | None = None
        self._through = False

    def write(self, data: bytes) -> None:
        if self._pending is None:
            if self._through:
                if not self._transport.is_closing():
                    self._transport.write(data)
                return
            self._pending = [data]
            self._loop.call_soon(self.flush)
        else:
            self._pending.append(data)

    def flush(self) -> None:
        pending, self._pending = self._pending, None
        if pending:
            self._through = True  # a response is under way: what follows is its stream
            if not self._transport.is_closing():
                self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def uncork(self) -> None:
        """The response is complete: flush it, and cork the next one's writes again."""
        self.flush()
        self._through = False

    def close(self) -> None:
        self.flush()  # what was written goes before the close, as with a plain transport
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        # Everything else (flow control, extra info, abort) is the real transport's.
        return getattr(self._transport, name)


class CorkedHttpToolsProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.corked = CorkedTransport(transport, self.loop)
        super().connection_made(cast(asyncio.Transport, self.corked))

    def on_response_complete(self) -> None:
        # A whole response leaves at once, not after what the rest of this tick runs (the
        # access log, metrics, charging the call): the client is waiting for it, they are not.
        self.corked.uncork()
        super().on_response_complete()
