"""A small pipelined Redis client for the calls on every request's path: EVALSHA of the
admission script, and the few small writes that ride along with it.

redis-py spends most of an admission's client-side CPU on generic machinery (a connection
checked out of a pool per call, command packing, response callbacks). Here every call is one
pre-encoded RESP command on a long-lived connection; commands issued in the same event-loop
tick leave in one write, and replies come back in order (Redis answers each connection
first-in, first-out), parsed by hiredis. Only plain `redis://` and `unix://` URLs use it; TLS,
Redis Cluster and the in-memory store keep redis-py.

Failures surface as `OSError` (a timeout is `TimeoutError`, itself an `OSError`) or
`redis.exceptions.ResponseError`, the errors the admission code already handles; a call that
certainly never reached Redis fails with `NotSent`.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlparse

import hiredis
from redis.exceptions import NoScriptError, ResponseError

# Told a call's reply future once the call is on its way, before it is awaited.
OnSent = Callable[[asyncio.Future[Any]], None]


class NotSent(ConnectionError):
    """A call that never left: no connection could be made, or the connection was lost before
    the call was written. Any other failure leaves open whether Redis ran it."""


def encode(*parts: bytes | str | int) -> bytes:
    """One RESP command (hiredis packs it in C: a third of the time of doing it in Python)."""
    # hiredis's stub types the argument as a 1-tuple; any length is accepted.
    return hiredis.pack_command(parts)  # type: ignore[arg-type,no-any-return]


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        # Made inside the running loop, kept for the callbacks (see `gateway.eventloop`).
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.waiters: collections.deque[asyncio.Future[Any]] = collections.deque()
        self.reader = hiredis.Reader()
        self.outgoing: list[bytes] = []
        self.closed = False
        self.flush_soon = False  # a flush at the end of this tick is scheduled
        self.flush_later: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have the same methods.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while (reply := self.reader.gets()) is not False:
            waiter = self.waiters.popleft()
            if waiter.done():  # timed out: its reply is dropped, order stays right
                continue
            if isinstance(reply, hiredis.ReplyError):
                message = str(reply)
                error = NoScriptError if message.startswith("NOSCRIPT") else ResponseError
                waiter.set_exception(error(message))
            else:
                waiter.set_result(reply)
        if self.outgoing and len(self.waiters) == len(self.outgoing):
            # Settles held back while a call was in flight: Redis is idle now, so they run
            # before the next call arrives instead of ahead of it.
            self.flush_behind_next_write()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        # The last calls, as many as are still to be written, never left.
        written = len(self.waiters) - len(self.outgoing)
        while self.waiters:
            waiter = self.waiters.popleft()
            written -= 1
            if not waiter.done():
                error = ConnectionError if written >= 0 else NotSent
                waiter.set_exception(error(f"Redis connection lost ({exc})"))

    def flush_behind_next_write(self) -> None:
        """Flush two loop turns on: after the request just woken or answered has made its next
        write (upstream, or to the client). A loopback write that wakes Redis costs tens of
        microseconds, and a settle is in no hurry."""
        self.loop.call_soon(self.loop.call_soon, self.flush)

    def flush(self) -> None:
        if self.outgoing and self.transport is not None and not self.closed:
            self.transport.write(b"".join(self.outgoing))
        self.outgoing.clear()
        self.flush_soon = False
        if self.flush_later is not None:
            self.flush_later.cancel()
            self.flush_later = None


class ScriptClient:
    def __init__(self, url: str, timeout_s: float) -> None:
        parsed = urlparse(url)
        # A Unix socket (`unix:///path/redis.sock?db=N`, as redis-py spells it) or host and port.
        self._socket = unquote(parsed.path) if parsed.scheme == "unix" else None
        self._host = parsed.hostname or "127.0.0.1"
        self._port = parsed.port or 6379
        self._password = unquote(parsed.password) if parsed.password else None
        self._username = unquote(parsed.username) if parsed.username else None
        if self._socket is not None:
            db = parse_qs(parsed.query).get("db", ["0"])[0]
        else:
            db = parsed.path.lstrip("/")
        self._db = int(db) if db else 0
        self._timeout = timeout_s
        self._conn: _Connection | None = None
        self._connecting: asyncio.Future[_Connection] | None = None

    @staticmethod
    def supports(url: str) -> bool:
        return urlparse(url).scheme in ("redis", "unix")

    async def _connection(self) -> _Connection:
        conn = self._conn
        if conn is not None and not conn.closed:
            return conn
        # Concurrent callers share one connect.
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._connect())
        try:
            return await asyncio.shield(self._connecting)
        finally:
            if self._connecting is not None and self._connecting.done():
                self._connecting = None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self._timeout):
            if self._socket is not None:
                _, conn = await loop.create_unix_connection(_Connection, self._socket)
            else:
                _, conn = await loop.create_connection(_Connection, self._host, self._port)
            setup = []
            if self._password is not None:
                setup.append(
                    encode("AUTH", self._username, self._password)
                    if self._username
                    else encode("AUTH", self._password)
                )
            if self._db:
                setup.append(encode("SELECT", self._db))
            for command in setup:
                await self._call(conn, command)
        self._conn = conn
        return conn

    def _call(self, conn: _Connection, command: bytes, defer_s: float = 0.0) -> asyncio.Future[Any]:
        loop = conn.loop
        waiter: asyncio.Future[Any] = loop.create_future()
        transport = conn.transport
        if not (defer_s or conn.waiters or conn.outgoing or conn.closed) and transport is not None:
            # Nothing in flight to share a write with: send it now, and Redis runs it while
            # this task unwinds to the loop instead of after.
            conn.waiters.append(waiter)
            transport.write(command)
            return waiter
        # Waiting pays only when there is traffic: with nothing else in flight, the next call
        # is a request away, and this command would delay its reply (Redis runs both in order)
        # instead of sharing a write with it. A deferred command leaves with the next call's
        # write or when the calls in flight are answered, whichever comes first.
        if defer_s and (conn.waiters or conn.outgoing):
            if not conn.outgoing:
                conn.flush_later = loop.call_later(defer_s, conn.flush)
        elif not conn.flush_soon:
            conn.flush_soon = True
            if defer_s:
                conn.flush_behind_next_write()  # a settle: after the answer that caused it
            else:
                loop.call_soon(conn.flush)
        conn.waiters.append(waiter)
        conn.outgoing.append(command)
        return waiter

    async def evalsha(
        self,
        sha: str,
        script: str,
        keys: list[str],
        args: list[Any],
        sent: OnSent | None = None,
    ) -> Any:
        """EVALSHA, and its reply. `sent` is called with the reply's future once the command is
        on its way (written, or in this tick's write) and before it is awaited: what it does
        meanwhile overlaps the round trip, and a callback it adds to the future runs before
        this coroutine resumes."""
        try:
            conn = await self._connection()
        except OSError as exc:
            raise NotSent(f"cannot connect to Redis ({exc!r})") from exc
        parts: list[bytes | str | int] = ["EVALSHA", sha, len(keys), *keys, *args]
        try:
            waiter = self._call(conn, encode(*parts))
            if sent is not None:
                sent(waiter)
            return await self._timed(conn, waiter)
        except NoScriptError:
            # A restarted or flushed Redis lost the script: EVAL runs it and caches it again.
            parts[0:2] = ["EVAL", script]
            return await self._timed(conn, self._call(conn, encode(*parts)))

    def submit(
        self, sha: str, keys: list[str], args: list[Any], defer_s: float = 0.0
    ) -> asyncio.Future[Any] | None:
        """EVALSHA on the open connection without waiting: the reply lands in the returned
        future (NOSCRIPT included, as NoScriptError). None when there is no open connection.

        `defer_s` lets the command wait up to that long for company: the next call's write
        takes it along, one socket write instead of two (settles are not in a hurry)."""
        return self.submit_command("EVALSHA", sha, len(keys), *keys, *args, defer_s=defer_s)

    def submit_command(
        self, *parts: bytes | str | int, defer_s: float = 0.0
    ) -> asyncio.Future[Any] | None:
        """Any command, as `submit` sends EVALSHA: on the open connection, without waiting
        (other small writes on every request, such as an owner record, ride along too)."""
        conn = self._conn
        if conn is None or conn.closed:
            return None
        waiter = self._call(conn, encode(*parts), defer_s)
        timer = conn.loop.call_later(self._timeout, _expire, conn, waiter, self._timeout)
        waiter.add_done_callback(lambda _: timer.cancel())
        return waiter

    def flush(self) -> None:
        """Send the deferred commands now, rather than with the next call or their deadline."""
        conn = self._conn
        if conn is not None and conn.outgoing:
            conn.flush()

    async def _timed(self, conn: _Connection, waiter: asyncio.Future[Any]) -> Any:
        timer = conn.loop.call_later(self._timeout, _expire, conn, waiter, self._timeout)
        try:
            return await waiter
        finally:
            timer.cancel()

    async def close(self) -> None:
        if self._conn is not None and self._conn.transport is not None:
            self._conn.transport.close()
        self._conn = None


def _expire(conn: _Connection, waiter: asyncio.Future[Any], timeout: float) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError(f"Redis did not answer within {timeout:g} s"))
        # A Redis that stalls (paused, overloaded) would make every later call on this
        # connection wait out its own timeout: drop it, fail what waits, reconnect next time.
        if conn.transport is not None:
            conn.transport.close()
