"""The default upstream client: HTTP/1.1 on asyncio's protocol API, parsed by llhttp (httptools).

Why not aiohttp: one call at a time against the simulator, a protocol with a pre-encoded request
and httptools spent much less CPU and wall time per call than aiohttp (the README's "Upstream
client" has the figures). The gateway needs little of a general client: one origin per upstream,
bodies it already holds whole, JSON or SSE back. So this is all there is: keep-alive connections
in a bounded pool, content-length, chunked and read-until-close bodies, TLS (with `upstream.ca_file`),
an http proxy (CONNECT tunnels for https; `gateway.upstream.egress`), bodies compressed by a front
end although the gateway asked for `identity` (`gateway.upstream.decoding`), and the gateway's
timeouts. No redirects or cookies. Trailer fields are read and dropped: they arrive after the
headers were handed on.

Errors are the transports' common ones: `GatewayError` 502 when the upstream cannot be reached or
drops the connection (`upstream_truncated` once the answer's headers came), 504 when it does not
answer in time.
"""

from __future__ import annotations

import asyncio
import collections
import os
import ssl
from collections.abc import AsyncIterator, Mapping
from typing import cast
from urllib.parse import urlsplit

import httptools

from gateway.config import UpstreamConfig
from gateway.eventloop import KeptLoop
from gateway.upstream.contract import StreamedBody, UpstreamResponse
from gateway.upstream.decoding import decoded
from gateway.upstream.egress import Proxy, proxy_for, tls_context
from gateway.wire import errors
from gateway.wire.errors import GatewayError

# Idle connections older than this are closed, not reused: servers drop idle keep-alive
# connections after a while, and a request written into one going away is lost.
IDLE_S = 15.0
# A request lost on a reused connection is written again only if the loss came this soon after
# the write: the upstream closing the connection at its idle timeout as the request went out
# is told within a round trip; one that held the request longer (a front end's reset after
# minutes of o1 thinking) may have had it processed, and billed: sending it again would be a
# second bill the gateway charges nobody.
RESEND_WITHIN_S = 1.0
# Response bytes buffered while nobody reads (a slow client of a large download) before the
# socket stops being read; reading resumes once the reader has taken what was buffered.
HIGH_WATER = 1 << 20
# Bodies larger than this are written separately rather than copied onto the request head.
JOIN_LIMIT = 64 * 1024
# Set by this client from the request itself; the caller's values would contradict it.
OWN_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "proxy-authorization"}
)
# A proxy's answer to CONNECT longer than this is no answer.
TUNNEL_REPLY_LIMIT = 16 * 1024


class _Connection(asyncio.Protocol):
    """One keep-alive connection; it carries one exchange at a time."""

    __slots__ = (
        "drained", "idle_since", "lost", "parser", "response", "transport", "writing_paused",
    )  # fmt: skip

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.response: _Response | None = None
        # The exchange's parser: its callbacks point at the response, so both references are
        # dropped when the response is released. Held by the response itself, the pair would
        # be a reference cycle per call, left to the garbage collector.
        self.parser: httptools.HttpResponseParser | None = None
        self.lost = False
        self.idle_since = 0.0
        # The transport's buffer is full (a body written as it arrives waits for it to drain).
        self.writing_paused = False
        self.drained: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have the same methods.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        response, parser = self.response, self.parser
        if response is None or parser is None:  # bytes nobody asked for: not to be trusted
            self.abort()
            return
        response.received = True
        try:
            parser.feed_data(data)
        except httptools.HttpParserError as exc:
            response.fail(errors.upstream_unreachable(f"invalid HTTP response ({exc})", sent=True))
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.response is not None:
            self.response.connection_lost(exc)
        self.resume_writing()

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        drained = self.drained
        if drained is not None and not drained.done():
            drained.set_result(None)

    async def writable(self, loop: asyncio.AbstractEventLoop, limit_s: float) -> None:
        """Once the transport's buffer has drained (at once when it is not full); fails as a
        timeout when upstream takes nothing for `limit_s`."""
        if not self.writing_paused or self.lost:
            return
        drained = self.drained = loop.create_future()
        try:
            await asyncio.wait_for(drained, limit_s)
        except TimeoutError:
            self.abort()
            raise errors.upstream_timeout(limit_s, sent=True) from None
        finally:
            self.drained = None

    def abort(self) -> None:
        self.lost = True
        if self.transport is not None:
            self.transport.abort()


class _Response:
    """One exchange: the parser's callbacks fill it, the caller reads it."""

    __slots__ = (
        "_chunks",
        "_conn",
        "_deadline",
        "_done",
        "_framed",
        "_interim",
        "_keep_alive",
        "_paused",
        "_pool",
        "_released",
        "_timer",
        "_wait_limit",
        "_wait_until",
        "_waiter",
        "buffered",
        "coding",
        "error",
        "headers",
        "received",
        "status",
    )

    def __init__(self, pool: Http1Upstream, conn: _Connection, deadline: float) -> None:
        self._pool = pool
        self._conn = conn
        self._deadline = deadline
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self._chunks: list[bytes] = []
        self.buffered = 0
        self._done = False
        self._keep_alive = False
        self._framed = False  # content-length or chunked: EOF before the end is a failure
        self._interim = False
        self._paused = False
        self.error: GatewayError | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._wait_until = 0.0
        self._wait_limit = 0.0
        self._released = False
        self.received = False
        self.coding = False  # the body has a Content-Encoding (decoded for the caller)

    # -- the parser's callbacks, and the connection's news -------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        # Read by nobody until the status is set, when they are complete; after that, a
        # chunked body's trailer fields, which must not pass for the answer's headers.
        if not self.status:
            self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        status = cast(httptools.HttpResponseParser, self._conn.parser).get_status_code()
        if 100 <= status < 200:  # 1xx: an interim answer, the real one follows
            self._interim = True
            self.headers.clear()
            return
        self.status = status
        names = dict(self.headers)  # built in C: a generator here costs a resume per header
        self._framed = b"content-length" in names or b"transfer-encoding" in names
        self.coding = b"content-encoding" in names
        self._wake()

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)
        self.buffered += len(body)
        if self.buffered > HIGH_WATER and not self._paused and self._conn.transport is not None:
            self._paused = True
            self._conn.transport.pause_reading()
        # `_wake`, inline: a streamed answer calls this once per event.
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        self._done = True
        self._keep_alive = cast(httptools.HttpResponseParser, self._conn.parser).should_keep_alive()
        self._wake()

    def connection_lost(self, exc: Exception | None = None) -> None:
        if self._done:
            return
        if self.status and not self._framed and exc is None:
            self._done = True  # a body delimited by the (orderly) end of the connection
        elif self.status:
            # A reset, or TLS ended without its close_notify: the body may be any prefix.
            self.fail(errors.upstream_truncated("connection lost mid-response"))
        else:
            closed = "connection failed (closed by the upstream)"
            self.fail(errors.upstream_unreachable(closed, sent=True))
        self._wake()

    def fail(self, error: GatewayError) -> None:
        if self.error is None and not self._done:
            self.error = error
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- used by the client and its caller ----------------------------------------------------

    def count_from_now(self) -> None:
        """The whole call's time limit counted from now: from a body's end, when it was
        written as it arrived (its client's pace is no upstream's slowness)."""
        self._deadline = self._pool.loop.time() + self._pool.total_timeout

    async def wait(self, seconds: float, limit_s: float) -> None:
        """Wait for the next event, at most `seconds`; on expiry fail as a timeout of `limit_s`
        (the limit that ran out: first byte, gap between chunks, or the whole call)."""
        loop = self._pool.loop
        self._wait_until = loop.time() + seconds
        self._wait_limit = limit_s
        # One timer outlives the waits: a stream waits once per chunk, and a timer made and
        # cancelled per chunk was a heap insert and removal each time. It is moved only when
        # this wait ends sooner than it fires; firing early, it re-arms itself.
        timer = self._timer
        if timer is None or timer.when() > self._wait_until:
            if timer is not None:
                timer.cancel()
            self._timer = loop.call_at(self._wait_until, self._check_timeout, self._wait_until)
        waiter = self._waiter = loop.create_future()
        try:
            await waiter
        finally:
            self._waiter = None

    def _check_timeout(self, armed_for: float) -> None:
        self._timer = None
        if self._waiter is None:
            return  # not waiting: the next wait arms it again (`release` cancels it)
        if armed_for >= self._wait_until:
            self._expire(self._wait_limit)
        else:  # armed by an earlier wait: this one has longer
            self._timer = self._pool.loop.call_at(
                self._wait_until, self._check_timeout, self._wait_until
            )

    def _expire(self, limit_s: float) -> None:
        self.fail(errors.upstream_timeout(limit_s, sent=True))
        self._conn.abort()

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        """Body bytes as they arrive; raises GatewayError if the upstream fails mid-body."""
        pool = self._pool
        while True:
            if self._chunks:
                chunks = self._chunks
                data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                chunks.clear()
                self.buffered = 0
                if self._paused and self._conn.transport is not None:
                    self._paused = False
                    self._conn.transport.resume_reading()
                yield data
                continue
            if self.error is not None:
                raise self.error
            if self._done:
                return
            remaining = self._deadline - pool.loop.time()
            if remaining <= 0:
                self._expire(pool.total_timeout)
            elif pool.read_timeout < remaining:
                await self.wait(pool.read_timeout, pool.read_timeout)
            else:
                await self.wait(remaining, pool.total_timeout)

    async def read(self) -> bytes:
        if self._done and self.error is None:  # usually: the body came with the headers
            data = b"".join(self._chunks)
            self._chunks.clear()
            self.buffered = 0
            return data
        return b"".join([chunk async for chunk in self.iter_chunks()])

    async def close(self) -> None:
        """Release the connection; safe to call twice, and aborts an unfinished body (which is
        what stops the upstream's generation when a client goes away)."""
        self.release()

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        conn = self._conn
        conn.response = conn.parser = None
        reusable = self._done and self._keep_alive and self.error is None and not conn.lost
        if reusable and self._paused and conn.transport is not None:
            conn.transport.resume_reading()
        self._pool.give_back(conn, reusable)


class _HeadResponse(_Response):
    """The answer to a HEAD: headers only, whatever its Content-Length says. The parser cannot
    be told so; the exchange ends with the headers, and the connection is not reused (bytes
    after them would be taken for the next answer)."""

    __slots__ = ()

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if self.status:
            self._done = True

    def on_body(self, body: bytes) -> None:
        pass

    def on_message_complete(self) -> None:
        self._interim = False


class Prepared:
    """One request on one connection, written by `fire()`.

    A caller can make it ready while it waits for something else (the admission's round trip)
    and have it written the moment that answers, from a callback, before its own task resumes.
    `result()` fires it if that has not happened and waits for the status line; `cancel()`
    gives an unwritten request's connection back as it was.
    """

    __slots__ = (
        "_body", "_conn", "_head", "_head_only", "_pool", "_response", "_reused", "_taken",
        "_written_at",
    )  # fmt: skip

    def __init__(
        self,
        pool: Http1Upstream,
        conn: _Connection,
        head: bytes,
        body: bytes,
        reused: bool,
        head_only: bool = False,
    ) -> None:
        self._pool = pool
        self._conn = conn
        self._head = head
        self._body = body
        self._reused = reused
        self._head_only = head_only  # a HEAD: its answer has no body
        self._response: _Response | None = None
        self._taken = False
        self._written_at = 0.0

    @property
    def received(self) -> bool:
        return self._response is not None and self._response.received

    def fire(self) -> None:
        if self._response is not None or self._taken:  # written already, or cancelled
            return
        pool, conn = self._pool, self._conn
        # The total time limit counts from the write, not from when the request was made ready.
        kind = _HeadResponse if self._head_only else _Response
        self._written_at = now = pool.loop.time()
        response = conn.response = kind(pool, conn, now + pool.total_timeout)
        conn.parser = httptools.HttpResponseParser(response)
        self._response = response
        transport = conn.transport
        if transport is None or transport.is_closing():
            # Closed while idle: fails as a connection failure, the request written to no one.
            closed = "connection failed (closed while idle)"
            response.fail(errors.upstream_unreachable(closed, sent=False))
            return
        body = self._body
        if len(body) <= JOIN_LIMIT:
            transport.write(self._head + body)
        else:
            transport.write(self._head)
            transport.write(body)

    async def result(self) -> UpstreamResponse:
        """Write the request if not yet done, and wait for the status line and headers."""
        if self._taken:
            raise RuntimeError("a prepared request is used once")
        self.fire()
        self._taken = True
        response = self._response
        assert response is not None
        pool = self._pool
        first_byte = min(pool.first_byte_timeout, pool.total_timeout)
        try:
            while not response.status and response.error is None:
                await response.wait(first_byte, first_byte)
        except BaseException:  # cancelled: the caller left; the request is abandoned
            response.release()
            raise
        error = response.error
        if error is None:
            return await decoded(response) if response.coding else response
        response.release()
        if (
            self._reused
            and not response.received
            and error.code == "upstream_unreachable"
            and pool.loop.time() - self._written_at < RESEND_WITHIN_S
        ):
            # A kept-alive connection that the upstream closed as the request went out (its
            # idle timeout ran out meanwhile): the request reached no one, whatever its method,
            # so it goes once more, on a new connection. A failure there is the upstream's.
            conn, _ = await pool.acquire(fresh=True)
            again = Prepared(pool, conn, self._head, self._body, False, self._head_only)
            return await again.result()
        raise error

    async def write_body(self, chunks: AsyncIterator[bytes]) -> None:
        """After `fire()` with the head alone: write a body as its chunks come, each once the
        connection has taken the one before. An answer (or a failure) before the body's end
        stops it, and the connection is not kept (its request was not all written). A chunk
        that cannot be had (the client left) aborts the request."""
        response, conn, pool = self._response, self._conn, self._pool
        assert response is not None
        try:
            async for chunk in chunks:
                await conn.writable(pool.loop, pool.read_timeout)
                if response.status or response.error is not None or conn.transport is None:
                    conn.lost = True  # released, it is closed: bytes of this body would follow
                    return
                conn.transport.write(chunk)
        except BaseException:
            self.cancel()
            raise
        response.count_from_now()

    def cancel(self) -> bool:
        """Not wanted after all (refused, or the caller failed): True unless `result()` took it.
        Unwritten, the connection goes back to the pool as it was; written, it is aborted."""
        if self._taken:
            return False
        self._taken = True
        if self._response is not None:
            self._response.release()
        else:
            self._pool.give_back(self._conn, reusable=True)
        return True


class _TunnelOpening(asyncio.Protocol):
    """A CONNECT request's answer from the proxy, read up to the end of its head; the
    connection is then handed to TLS and the pool's protocol."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.reply: asyncio.Future[bytes] = loop.create_future()
        self._buffer = b""

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self.reply.done():
            return
        if b"\r\n\r\n" in self._buffer:
            self.reply.set_result(self._buffer)
        elif len(self._buffer) > TUNNEL_REPLY_LIMIT:
            self.reply.set_exception(ConnectionError("the proxy's answer to CONNECT is too long"))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.reply.done():
            self.reply.set_exception(ConnectionError("the proxy closed the connection"))


class Http1Upstream:
    loop = KeptLoop()

    def __init__(
        self,
        config: UpstreamConfig,
        ssl_context: ssl.SSLContext | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """`ssl_context` replaces the trust `upstream.ca_file` gives (tests); `environ` is
        where proxy settings are read (the process's environment by default)."""
        url = urlsplit(config.base_url.rstrip("/"))
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"upstream.base_url: expected an http(s) URL, got {config.base_url!r}")
        self._host = url.hostname
        self._port = url.port or (443 if url.scheme == "https" else 80)
        self._ssl: ssl.SSLContext | None = None
        if url.scheme == "https":
            self._ssl = ssl_context or tls_context(config.ca_file)
        default_port = self._port == (443 if url.scheme == "https" else 80)
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._host_header = host if default_port else f"{host}:{self._port}"
        self._authority = f"{host}:{self._port}"
        self._proxy = proxy_for(
            config.base_url, config.proxy, os.environ if environ is None else environ
        )
        # Lines every request carries after its request line. Through a proxy, a plain http
        # request names the whole URL and shows the proxy its credentials; an https one goes
        # through a tunnel, where the origin sees what it would see direct.
        fixed = [f"host: {self._host_header}\r\n"]
        self._target_prefix = ""
        if self._proxy is not None and self._ssl is None:
            self._target_prefix = f"http://{self._host_header}"
            if self._proxy.authorization:
                fixed.append(f"proxy-authorization: {self._proxy.authorization}\r\n")
        self._fixed = "".join(fixed)
        self._fixed_lines = len(fixed)
        self._base_path = url.path
        self._limit = config.pool_size
        self._connect_timeout = config.connect_timeout_s
        self.first_byte_timeout = config.first_byte_timeout_s
        self.read_timeout = config.read_timeout_s
        self.total_timeout = config.total_timeout_s
        self._idle: list[_Connection] = []
        self._open = 0  # connections in use or idle, bounded by pool_size
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._closed = False

    def _head(
        self, method: str, path: str, query: bytes, headers: dict[str, str], size: int
    ) -> bytes:
        target = self._target_prefix + self._base_path + path
        if query:
            target += "?" + query.decode("latin-1")
        lines = [f"{method} {target} HTTP/1.1\r\n{self._fixed}"]
        for name, value in headers.items():
            if name.lower() not in OWN_HEADERS:
                lines.append(f"{name}: {value}\r\n")
        if size or method in ("POST", "PUT", "PATCH"):
            lines.append(f"content-length: {size}\r\n")
        lines.append("\r\n")
        head = "".join(lines)
        # A CR or LF inside a name, value or path would end the line early: another header,
        # or another request, smuggled into the upstream connection.
        breaks = len(lines) + self._fixed_lines  # the request line shares the first piece
        if head.count("\n") != breaks or head.count("\r") != breaks:
            raise errors.unsendable_request("a header or the path holds a line break")
        try:
            return head.encode("latin-1")
        except UnicodeEncodeError:
            raise errors.unsendable_request("a header is not Latin-1 text") from None

    async def send(
        self, method: str, path: str, query: bytes, headers: dict[str, str], body: bytes
    ) -> UpstreamResponse:
        """Send a request; `path` is relative to the upstream base URL (e.g. `/chat/completions`)."""
        if self._closed:
            raise errors.upstream_unreachable("the upstream client is closed", sent=False)
        head = self._head(method, path, query, headers, len(body))
        conn, reused = await self.acquire()
        return await Prepared(self, conn, head, body, reused, method == "HEAD").result()

    async def send_streamed(
        self, method: str, path: str, query: bytes, headers: dict[str, str], body: StreamedBody
    ) -> UpstreamResponse:
        """Send a request whose body is written as it arrives (`Prepared.write_body`), on a new
        connection: a kept-alive one closed as the request goes out is resent, and this body
        cannot be read again."""
        if self._closed:
            raise errors.upstream_unreachable("the upstream client is closed", sent=False)
        head = self._head(method, path, query, headers, body.length)
        conn, _ = await self.acquire(fresh=True)
        request = Prepared(self, conn, head, b"", False, method == "HEAD")
        request.fire()
        await request.write_body(body.chunks)
        return await request.result()

    def prepare(
        self, method: str, path: str, query: bytes, headers: dict[str, str], body: bytes
    ) -> Prepared | None:
        """A request made ready on an idle connection, to be written by `fire()`; None when no
        idle connection is at hand (connecting is `send`'s job) or the request is invalid."""
        if self._closed or self._waiters:  # callers queued for a connection go first
            return None
        try:
            head = self._head(method, path, query, headers, len(body))
        except GatewayError:
            return None  # `send` says why
        conn = self._take_idle()
        if conn is None:
            return None
        return Prepared(self, conn, head, body, True, method == "HEAD")

    def _take_idle(self) -> _Connection | None:
        loop = self.loop
        while self._idle:
            conn = self._idle.pop()
            transport = conn.transport
            if (
                conn.lost
                or transport is None
                or transport.is_closing()
                or loop.time() - conn.idle_since > IDLE_S
            ):
                self._drop(conn)
                continue
            return conn
        return None

    async def acquire(self, fresh: bool = False) -> tuple[_Connection, bool]:
        """A connection, and whether it was used before; `fresh`: a new one (an idle one is
        closed to make room when the pool is full)."""
        if self._closed:
            raise errors.upstream_unreachable("the upstream client is closed", sent=False)
        loop = self.loop
        while True:
            if not fresh:
                conn = self._take_idle()
                if conn is not None:
                    return conn, True
            if self._open < self._limit:
                break
            if self._idle:  # only when `fresh`: an idle connection makes room
                self._drop(self._idle.pop(0))
                continue
            waiter = loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # pass on the turn this caller will not use
                else:
                    self._waiters.remove(waiter)
                raise
        self._open += 1
        try:
            return await self._connect(), False
        except BaseException:
            self._open -= 1
            self._wake_one()
            raise

    async def _connect(self) -> _Connection:
        loop, proxy = self.loop, self._proxy
        try:
            async with asyncio.timeout(self._connect_timeout):
                if proxy is not None and self._ssl is not None:
                    return await self._tunnel(proxy, self._ssl)
                if proxy is not None:
                    _, conn = await loop.create_connection(_Connection, proxy.host, proxy.port)
                    return conn
                _, conn = await loop.create_connection(
                    _Connection,
                    self._host,
                    self._port,
                    ssl=self._ssl,
                    server_hostname=self._host if self._ssl is not None else None,
                )
                return conn
        except TimeoutError:
            raise errors.upstream_timeout(self._connect_timeout, sent=False) from None
        except OSError as exc:
            detail = exc.strerror or str(exc) or type(exc).__name__
            raise errors.upstream_unreachable(f"cannot connect ({detail})", sent=False) from exc

    async def _tunnel(self, proxy: Proxy, context: ssl.SSLContext) -> _Connection:
        """A TLS connection to the upstream through a CONNECT tunnel of `proxy`."""
        loop = self.loop
        transport, opening = await loop.create_connection(
            lambda: _TunnelOpening(loop), proxy.host, proxy.port
        )
        try:
            request = f"CONNECT {self._authority} HTTP/1.1\r\nhost: {self._authority}\r\n"
            if proxy.authorization:
                request += f"proxy-authorization: {proxy.authorization}\r\n"
            transport.write(f"{request}\r\n".encode("latin-1"))
            reply = await opening.reply
            status_line = reply.split(b"\r\n", 1)[0]
            parts = status_line.split(b" ", 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or parts[1][:1] != b"2":
                said = status_line.decode("latin-1")[:200]
                refused = f"the proxy refused the tunnel ({said})"
                raise errors.upstream_unreachable(refused, sent=False)
            conn = _Connection()
            tls = await loop.start_tls(transport, conn, context, server_hostname=self._host)
        except BaseException:
            transport.abort()
            raise
        if tls is None:
            closed = "the proxy tunnel closed during the TLS handshake"
            raise errors.upstream_unreachable(closed, sent=False)
        conn.connection_made(tls)
        return conn

    def give_back(self, conn: _Connection, reusable: bool) -> None:
        if reusable and not self._closed:
            conn.idle_since = self.loop.time()
            self._idle.append(conn)
            self._wake_one()
        else:
            self._drop(conn)

    def _drop(self, conn: _Connection) -> None:
        conn.abort()
        self._open -= 1
        self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def ready(self) -> bool:
        return not self._closed

    async def close(self) -> None:
        self._closed = True
        while self._idle:
            self._drop(self._idle.pop())
