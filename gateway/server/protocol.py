"""The HTTP/1 server: uvicorn's httptools protocol, with a tick's writes sent as one, the edge's
limits kept, and HTTP/1.0 answered in a form it can read.

Writes. uvicorn writes a response's status line and headers, then its body, as separate socket
writes; each write is a system call (and, to a peer, possibly a packet of its own), so every
proxied response paid for two. Here a response's writes made in the same tick (a whole
non-streamed response, or a stream's headers and first chunk) leave in one write at the end of
the tick: the same bytes, in the same order, no later than the tick in which they were written.
A stream's later chunks come one per tick and go straight out.

Limits (`server.*`). uvicorn's httptools protocol has only the keep-alive timeout: it holds any
amount of header bytes and waits forever for a head or a body. Here:
- a head over `max_header_bytes` is answered 431 as soon as it is over, so header floods are
  never held in memory;
- a head still incomplete `header_timeout_s` after its first byte (a new connection's first
  head: after the connection opened) is answered 408 and the connection closed (closed without
  an answer when nothing came at all);
- a body silent for `body_timeout_s` is answered 408 and closed; once shutdown has begun, every
  body still arriving gets `body_timeout_s` in all, so no trickle holds the shutdown;
- an answer its client takes nothing of for `write_timeout_s` (the socket's buffers full, the
  stream waiting for room) drops the connection: the request sees the client gone, and lets
  go of its upstream connection and team slot. uvicorn waits for room forever;
- a connection beyond `max_connections` is answered 503 and closed at once (uvicorn's
  `limit_concurrency` answers in plain text, after reading a head, and counts its tasks too);
- what httptools cannot parse is answered 400 with its reason, not uvicorn's plain text, and
  so is a request line of a version but HTTP/1.0 and 1.1 (httptools reads 2.0 and 0.9 as 1.1).
Each is an error of the catalog, counted in `gateway_dropped_connections_total`; after the
answer, what the client still sends is read and dropped for a moment (`LINGER_S`), so that its
unread bytes do not reset the connection before it has read the answer. A request that
arrives in one read, nearly every request, arms no timer: one timer per connection, started when
it opens, watches the rest against a deadline that reads move on.

HTTP/1.0 has no chunked encoding: an answer of unknown length (a stream) goes as it comes and
ends when the connection closes, where uvicorn would send it chunked.
"""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import Iterable
from typing import Any, cast

import httptools
from uvicorn._types import ASGISendEvent
from uvicorn.config import Config as UvicornConfig
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)
from uvicorn.server import ServerState

from gateway.config import ServerConfig
from gateway.wire import errors
from gateway.wire.errors import GatewayError
from gateway.wire.headers import new_request_id

# The key of the lifespan state under which the app hands the protocol its drop counter.
DROPPED_CONNECTIONS = "o1gw.dropped_connections"
FRESH = object()  # no request of this connection has fully arrived yet
# After an error answer, what the client still sends is read and dropped for this long at most:
# closing with its bytes unread resets the connection, which can cost the client the answer.
LINGER_S = 2.0
DEFAULT_LIMITS = ServerConfig()


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


class CloseDelimitedCycle(RequestResponseCycle):
    """An HTTP/1.0 request's cycle: an answer without a content-length is sent unframed, and
    the connection's close ends it (uvicorn closes after every HTTP/1.0 answer anyway)."""

    unframed = False

    async def send(self, message: ASGISendEvent) -> None:
        if message["type"] == "http.response.start" and not self.response_started:
            headers = message.get("headers", ())
            if all(name.lower() != b"content-length" for name, _ in headers):
                # uvicorn's send frames nothing for a known length: let it count down from
                # a length no answer reaches...
                self.unframed = True
                self.chunked_encoding = False
                self.expected_content_length = sys.maxsize
        elif (
            self.unframed
            and message["type"] == "http.response.body"
            and not message.get("more_body", False)
        ):
            # ...to exactly zero at the last chunk.
            self.expected_content_length = len(message.get("body", b""))
        await super().send(message)


class HeadTooLarge(Exception):
    """Raised in a parser callback to stop parsing a head that is over the limit."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


class NotHttp1(Exception):
    """Raised in a parser callback to refuse a head whose request line says another version:
    httptools reads "HTTP/2.0" and "HTTP/0.9" as it reads 1.1, though neither is spoken here."""

    def __init__(self, version: str) -> None:
        super().__init__(version)
        self.version = version


class UpgradeWithBody(Exception):
    """Raised in a parser callback to refuse a request that asks to switch protocols (one the
    gateway does not speak) and has a body."""

    def __init__(self, protocol: bytes) -> None:
        super().__init__(protocol)
        self.protocol = protocol.decode("latin-1")


class GatewayHttpProtocol(HttpToolsProtocol):
    def __init__(
        self,
        config: UvicornConfig,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        limits: ServerConfig = DEFAULT_LIMITS,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = limits
        # uvicorn's own keep-alive timer reads it (typed int, handed to call_later: any float).
        self.timeout_keep_alive = limits.keep_alive_timeout_s  # type: ignore[assignment]
        self.done: object = FRESH  # the scope of the last request that fully arrived
        self.watched: object = None  # the scope whose head is being counted
        self.head_bytes = 0  # of the head being received, in the reads before this one
        self.read_size = 0
        self.head_since = 0.0
        self.deadline = 0.0  # when what is arriving must have arrived
        self.stop_by = float("inf")  # shutdown began: every body must have arrived by then
        self.timer: asyncio.TimerHandle | None = None
        self.write_timer: asyncio.TimerHandle | None = None
        self.lingering = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.corked = CorkedTransport(transport, self.loop)
        super().connection_made(cast(asyncio.Transport, self.corked))
        if len(self.connections) > self.limits.max_connections:
            self.drop("connection_cap", errors.too_many_connections(self.limits.max_connections))
            return
        self.head_since = self.loop.time()
        self.deadline = self.head_since + self.limits.header_timeout_s
        self.timer = self.loop.call_at(self.deadline, self.expire)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.write_timer is not None:
            self.write_timer.cancel()
            self.write_timer = None
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        super().pause_writing()
        if self.write_timer is None:
            timeout = self.limits.write_timeout_s
            self.write_timer = self.loop.call_later(timeout, self.write_expired)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.write_timer is not None:
            self.write_timer.cancel()
            self.write_timer = None

    def write_expired(self) -> None:
        """The client took nothing of the answer for `write_timeout_s`: drop it. Aborted, not
        closed: a close would wait for the unread buffer to leave."""
        self.write_timer = None
        counter = self.app_state.get(DROPPED_CONNECTIONS)
        if counter is not None:
            counter.labels("write_timeout").inc()
        self.transport.abort()  # connection_lost follows: the cycle sees its client gone

    def data_received(self, data: bytes) -> None:
        # uvicorn's, with the parser's reason kept for the 400 and the limits checked after.
        if self.lingering:
            return  # answered and closing: what still comes is dropped
        self._unset_keepalive_if_required()
        self.read_size = len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, HeadTooLarge):
                limit = self.limits.max_header_bytes
                error = errors.headers_too_large(exc.__context__.size, limit)
                self.drop("headers_too_large", error)
            elif isinstance(exc.__context__, NotHttp1):
                detail = f"Invalid HTTP version HTTP/{exc.__context__.version}"
                self.drop("malformed_request", errors.malformed_request(detail))
            elif isinstance(exc.__context__, UpgradeWithBody):
                error = errors.upgrade_with_body(exc.__context__.protocol)
                self.drop("malformed_request", error)
            else:
                self.drop("malformed_request", errors.malformed_request(str(exc).rstrip(".")))
            return
        if self.done is not self.scope:  # a request is still arriving
            self.watch(len(data))

    def on_headers_complete(self) -> None:
        version = self.parser.get_http_version()
        if version != "1.1" and version != "1.0":
            raise NotHttp1(version)
        limit = self.limits.max_header_bytes
        if self.head_bytes + self.read_size > limit:  # it may be over: count it exactly
            size = len(self.url) + sum(len(name) + len(value) for name, value in self.headers)
            if size > limit:
                raise HeadTooLarge(size)  # before uvicorn starts the request
        # httptools ends a request that asks for another protocol at its head, its body
        # unread: the app would read none (and a WebSocket handshake has none). One without a
        # body is served (`curl --http2` GETs), or upgraded (a WebSocket's, to be refused).
        if self.parser.should_upgrade() and declares_body(self.headers):
            raise UpgradeWithBody(self._get_upgrade() or b"")
        self.head_bytes = 0
        super().on_headers_complete()
        cycle = self.cycle
        if self.scope["http_version"] == "1.0" and cycle is not None and cycle.scope is self.scope:
            cycle.__class__ = CloseDelimitedCycle  # its task is created, not yet run

    def on_message_complete(self) -> None:
        self.done = self.scope
        super().on_message_complete()

    def shutdown(self) -> None:
        super().shutdown()  # closes idle connections; the others end after their answer
        if not self.transport.is_closing():
            self.stop_by = self.loop.time() + self.limits.body_timeout_s
            self.deadline = min(self.deadline, self.stop_by)
            if self.timer is None:
                self.timer = self.loop.call_at(self.deadline, self.expire)

    def watch(self, size: int) -> None:
        """After a read that left a request incomplete: count its head, move its deadline."""
        now = self.loop.time()
        scope, cycle, limits = self.scope, self.cycle, self.limits
        if cycle is None or cycle.scope is not scope:  # its head is still arriving
            if scope is not self.watched:
                self.watched = scope
                self.head_bytes = 0
                if self.done is not FRESH:  # the first head is timed from the connection
                    self.head_since = now
            self.head_bytes += size
            if self.head_bytes > limits.max_header_bytes:
                error = errors.headers_too_large(self.head_bytes, limits.max_header_bytes)
                self.drop("headers_too_large", error)
                return
            self.deadline = self.head_since + limits.header_timeout_s
        else:
            self.deadline = min(now + limits.body_timeout_s, self.stop_by)
        if self.timer is None:
            self.timer = self.loop.call_at(self.deadline, self.expire)

    def expire(self) -> None:
        self.timer = None
        if self.done is self.scope or self.transport.is_closing():
            return  # between requests: uvicorn's keep-alive timer watches that
        now = self.loop.time()
        if now < self.deadline:  # reads moved it on
            self.timer = self.loop.call_at(self.deadline, self.expire)
            return
        cycle = self.cycle
        if cycle is None or cycle.scope is not self.scope:
            # No byte of a request at all: nothing to answer.
            timeout = self.limits.header_timeout_s
            self.drop(
                "header_timeout", errors.head_timeout(timeout) if self.scope is not None else None
            )
        elif self.flow.read_paused and now < self.stop_by:
            # uvicorn stopped reading until the app takes what came: not the client's delay.
            self.deadline = min(now + self.limits.body_timeout_s, self.stop_by)
            self.timer = self.loop.call_at(self.deadline, self.expire)
        else:
            self.drop("body_timeout", errors.body_stalled(self.limits.body_timeout_s))

    def drop(self, reason: str, error: GatewayError | None) -> None:
        """Close the connection, with `error` as the answer unless one is under way."""
        counter = self.app_state.get(DROPPED_CONNECTIONS)
        if counter is not None:
            counter.labels(reason).inc()
        cycle = self.cycle
        if cycle is not None:
            answered = cycle.response_complete and cycle.scope is self.scope
            if answered or (cycle.response_started and not cycle.response_complete):
                error = None  # answered already (before its body came), or mid-answer
            if not cycle.response_complete:
                cycle.disconnected = True  # the app's receive says so; its sends go nowhere
                cycle.message_event.set()
        if error is not None:
            self.transport.write(error_response(error, self.server_state.default_headers))
        if error is None or reason == "connection_cap" or not self.transport.can_write_eof():
            self.transport.close()  # a refusal holds nothing, not even for a while
            return
        self.corked.flush()
        self.transport.write_eof()  # the answer, then the end of ours; the client's end closes
        self.lingering = True
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.loop.call_later(LINGER_S, self.transport.close)


def declares_body(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether a request's head says a body follows (lower-case header names)."""
    return any(
        name == b"transfer-encoding" or (name == b"content-length" and value.strip(b"0 "))
        for name, value in headers
    )


def error_response(error: GatewayError, default_headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """A whole HTTP response for `error`, closing the connection, as the app would answer it."""
    body = error.body()
    lines = [STATUS_LINE[error.status]]
    lines += [b"%s: %s\r\n" % pair for pair in default_headers]
    extra = {"x-request-id": new_request_id(), **error.headers}
    lines += [f"{name}: {value}\r\n".encode("latin-1") for name, value in extra.items()]
    lines.append(b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body))
    lines.append(b"connection: close\r\n\r\n")
    return b"".join(lines) + body


def protocol_for(limits: ServerConfig) -> type[asyncio.Protocol]:
    """uvicorn's `http` option: the protocol with these limits (a partial, unlike a class made
    here, is pickled by reference for worker processes)."""
    return cast(type[asyncio.Protocol], functools.partial(GatewayHttpProtocol, limits=limits))
