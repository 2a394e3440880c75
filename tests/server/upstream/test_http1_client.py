"""The HTTP/1.1 client against raw socket servers that misbehave on purpose: connection reuse
and its races, framing, timeouts, the pool bound, aborts, header injection and TLS."""

from __future__ import annotations

import asyncio
import gc
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from gateway.config import UpstreamConfig
from gateway.upstream import http1_client
from gateway.upstream.contract import StreamedBody
from gateway.upstream.http1_client import HIGH_WATER, Http1Upstream
from gateway.wire import errors
from gateway.wire.errors import GatewayError

pytestmark = pytest.mark.anyio

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"


class Raw:
    """A TCP server running `handler` per connection; counts connections, keeps requests."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Raw:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                await self.handler(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        self.server = await asyncio.start_server(serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    def upstream(self, scheme: str = "http", **settings: float) -> Http1Upstream:
        return Http1Upstream(
            UpstreamConfig(base_url=f"{scheme}://127.0.0.1:{self.port}/v1", **settings)  # type: ignore[arg-type]
        )

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        request = head + (await reader.readexactly(length) if length else b"")
        self.requests.append(request)
        return request


async def fetch(
    upstream: Http1Upstream, method: str = "GET", path: str = "/models", body: bytes = b""
) -> tuple[int, bytes]:
    """One whole call: status and body, connection released."""
    resp = await upstream.send(method, path, b"", {}, body)
    try:
        return resp.status, await resp.read()
    finally:
        await resp.close()


async def keep_alive_ok(server: Raw) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await server.read_request(reader)
            writer.write(OK)

    return handler


async def test_connections_are_kept_alive_and_requests_are_well_formed() -> None:
    server = Raw(lambda r, w: asyncio.sleep(0))
    server.handler = await keep_alive_ok(server)
    async with server:
        port = server.port
        upstream = server.upstream()
        for _ in range(3):
            resp = await upstream.send(
                "POST", "/chat/completions", b"a=1", {"authorization": "Bearer k"}, b'{"x":1}'
            )
            assert resp.status == 200 and await resp.read() == b"{}"
            await resp.close()
        await upstream.close()
    assert server.connections == 1
    head, body = server.requests[0].split(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /v1/chat/completions?a=1 HTTP/1.1"
    assert f"host: 127.0.0.1:{port}".encode() in lines
    assert b"authorization: Bearer k" in lines and b"content-length: 7" in lines
    assert body == b'{"x":1}'


async def test_a_get_has_no_body_and_no_length() -> None:
    server = Raw(lambda r, w: asyncio.sleep(0))
    server.handler = await keep_alive_ok(server)
    async with server:
        upstream = server.upstream()
        resp = await upstream.send("GET", "/models", b"", {}, b"")
        await resp.read()
        await resp.close()
        await upstream.close()
    assert b"content-length" not in server.requests[0].lower()


async def test_an_idle_connection_closed_by_the_server_is_replaced() -> None:
    async def once_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(OK)
        await writer.drain()

    server = Raw(once_then_close)
    async with server:
        upstream = server.upstream()
        for _ in range(2):
            assert await fetch(upstream, "GET", "/models") == (200, b"{}")
            await asyncio.sleep(0.05)  # the server's close reaches the idle connection
        await upstream.close()
    assert server.connections == 2


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_a_request_written_into_a_dying_connection_goes_again_on_a_new_one(
    method: str,
) -> None:
    # The server reads the request and hangs up without a byte: what a keep-alive connection
    # closed at the moment of reuse looks like from the client. Nothing was answered, so the
    # request goes once more, whatever its method, on a new connection.
    async def answer_first_then_drop(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await server.read_request(reader)
        writer.write(OK)  # the first request on each connection is answered,
        await server.read_request(reader)  # the second one dropped

    server = Raw(answer_first_then_drop)
    async with server:
        upstream = server.upstream()
        assert await fetch(upstream, method, "/chat/completions", b"{}") == (200, b"{}")
        assert await fetch(upstream, method, "/chat/completions", b"{}") == (200, b"{}")
        assert server.connections == 2 and len(server.requests) == 3
        assert server.requests[1] == server.requests[2]
        # Made ready on an idle connection (the early call), it is retried the same way.
        prepared = upstream.prepare(method, "/chat/completions", b"", {}, b"{}")
        assert prepared is not None
        resp = await prepared.result()
        assert resp.status == 200 and await resp.read() == b"{}"
        await resp.close()
        await upstream.close()
    assert server.connections == 3


async def test_a_request_a_reused_connection_lost_after_it_was_held_is_not_written_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A request the upstream held past `RESEND_WITHIN_S` (made 0 here: any time at all) before
    its connection was lost is no idle close: upstream may have processed it, and bills it.
    It fails as sent (its caller charges it so), never written again: a second bill. It had
    been written again whatever the time, an o1 answer lost after minutes billed twice."""
    monkeypatch.setattr(http1_client, "RESEND_WITHIN_S", 0.0)

    async def answer_first_then_drop(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await server.read_request(reader)
        writer.write(OK)
        await server.read_request(reader)

    server = Raw(answer_first_then_drop)
    async with server:
        upstream = server.upstream()
        assert await fetch(upstream, "POST", "/chat/completions", b"{}") == (200, b"{}")
        with pytest.raises(GatewayError) as info:
            await upstream.send("POST", "/chat/completions", b"", {}, b"{}")
        assert info.value.code == "upstream_unreachable" and info.value.sent
        await upstream.close()
    assert server.connections == 1 and len(server.requests) == 2


async def test_a_new_connection_closed_before_an_answer_is_a_502_and_is_not_repeated() -> None:
    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)

    server = Raw(drop)
    async with server:
        upstream = server.upstream()
        with pytest.raises(GatewayError) as info:
            await upstream.send("POST", "/chat/completions", b"", {}, b"{}")
        assert info.value.code == "upstream_unreachable" and "closed by the upstream" in str(
            info.value
        )
        await upstream.close()
    assert server.connections == 1 and len(server.requests) == 1


async def test_connection_close_responses_are_not_reused() -> None:
    async def close_each(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\n{}")
        await reader.read()  # waits for the client to hang up

    server = Raw(close_each)
    async with server:
        upstream = server.upstream()
        for _ in range(2):
            assert await fetch(upstream, "GET", "/models") == (200, b"{}")
        await upstream.close()
    assert server.connections == 2


async def test_a_body_delimited_by_the_end_of_the_connection() -> None:
    async def until_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\npart one, ")
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.write(b"part two")

    server = Raw(until_close)
    async with server:
        upstream = server.upstream()
        assert await fetch(upstream, "GET", "/file") == (200, b"part one, part two")
        await upstream.close()


async def test_chunked_bodies_arrive_piece_by_piece() -> None:
    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for piece in (b"data: 1\n\n", b"data: 2\n\n"):
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
            await asyncio.sleep(0.02)
        writer.write(b"0\r\n\r\n")
        await server.read_request(reader)  # keep-alive: the next request comes here
        writer.write(OK)

    server = Raw(chunked)
    async with server:
        upstream = server.upstream()
        resp = await upstream.send("POST", "/chat/completions", b"", {}, b"{}")
        pieces = [piece async for piece in resp.iter_chunks()]
        await resp.close()
        assert pieces == [b"data: 1\n\n", b"data: 2\n\n"]
        assert await fetch(upstream, "POST", "/chat/completions", b"{}") == (200, b"{}")
        await upstream.close()
    assert server.connections == 1


async def test_an_interim_100_continue_is_skipped() -> None:
    async def interim(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n" + OK)

    server = Raw(interim)
    async with server:
        upstream = server.upstream()
        assert await fetch(upstream, "POST", "/files", b"x") == (200, b"{}")
        await upstream.close()


async def test_a_connection_lost_mid_body_is_a_502() -> None:
    async def short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this")

    server = Raw(short)
    async with server:
        upstream = server.upstream()
        resp = await upstream.send("GET", "/file", b"", {}, b"")
        with pytest.raises(GatewayError) as info:
            await resp.read()
        assert info.value.status == 502 and info.value.code == "upstream_truncated"
        await resp.close()
        await upstream.close()


async def test_garbage_is_a_502() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"SMTP ready\r\n\r\n")
        await reader.read()

    server = Raw(garbage)
    async with server:
        upstream = server.upstream()
        with pytest.raises(GatewayError) as info:
            await upstream.send("GET", "/models", b"", {}, b"")
        assert info.value.status == 502 and "invalid HTTP response" in info.value.message
        await upstream.close()


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()


@pytest.mark.parametrize(
    ("settings", "limit"),
    [
        ({"first_byte_timeout_s": 0.1}, "0.1 s"),
        ({"first_byte_timeout_s": 5.0, "total_timeout_s": 0.1}, "0.1 s"),
    ],
)
async def test_no_answer_in_time_is_a_504(settings: dict[str, float], limit: str) -> None:
    async with Raw(silent) as server:
        upstream = server.upstream(**settings)
        with pytest.raises(GatewayError) as info:
            await upstream.send("GET", "/models", b"", {}, b"")
        assert info.value.status == 504 and limit in info.value.message
        await upstream.close()


@pytest.mark.parametrize(
    ("settings", "trickle", "limit"),
    [({"read_timeout_s": 0.1}, False, "0.1 s"), ({"total_timeout_s": 0.3}, True, "0.3 s")],
)
async def test_a_stream_that_stalls_is_a_504(
    settings: dict[str, float], trickle: bool, limit: str
) -> None:
    # Silent after the first chunk (the gap between chunks runs out), or a chunk every 50 ms
    # without an end (the whole call runs out).
    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n")
        while trickle:
            await asyncio.sleep(0.05)
            writer.write(b"1\r\nx\r\n")
        await reader.read()

    server = Raw(stall)
    async with server:
        upstream = server.upstream(**settings)
        resp = await upstream.send("GET", "/stream", b"", {}, b"")
        received = b""
        with pytest.raises(GatewayError) as info:
            async for piece in resp.iter_chunks():
                received += piece
        await resp.close()
        assert received.startswith(b"abc") and info.value.status == 504
        assert limit in info.value.message
        await upstream.close()


async def test_a_stream_slower_in_all_than_the_gap_limit_but_never_in_one_gap_completes() -> None:
    # One timer serves all the waits: armed at the first chunk's limit, it must move on with
    # every chunk that arrives in time, not fire at that first limit.
    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for _ in range(8):
            await asyncio.sleep(0.05)
            writer.write(b"1\r\nx\r\n")
        writer.write(b"0\r\n\r\n")
        await reader.read()

    server = Raw(trickle)
    async with server:
        upstream = server.upstream(read_timeout_s=0.15, first_byte_timeout_s=0.15)
        resp = await upstream.send("GET", "/stream", b"", {}, b"")
        received = b"".join([piece async for piece in resp.iter_chunks()])
        await resp.close()
        assert received == b"x" * 8
        await upstream.close()


async def test_the_pool_bound_makes_callers_wait_their_turn() -> None:
    server = Raw(lambda r, w: asyncio.sleep(0))
    server.handler = await keep_alive_ok(server)
    async with server:
        upstream = server.upstream(pool_size=1)

        async def call() -> bytes:
            resp = await upstream.send("GET", "/models", b"", {}, b"")
            try:
                await asyncio.sleep(0.01)  # hold the connection a while
                return await resp.read()
            finally:
                await resp.close()

        assert await asyncio.gather(*(call() for _ in range(5))) == [b"{}"] * 5
        await upstream.close()
    assert server.connections == 1


async def test_closing_an_unfinished_body_hangs_up() -> None:
    hung_up = asyncio.Event()

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        try:
            while True:
                writer.write(b"6\r\ndata: \r\n")
                await writer.drain()
                await asyncio.sleep(0.01)
        except ConnectionError:
            hung_up.set()
            raise

    server = Raw(endless)
    async with server:
        upstream = server.upstream()
        resp = await upstream.send("POST", "/chat/completions", b"", {}, b"{}")
        async for _ in resp.iter_chunks():
            break
        await resp.close()
        await asyncio.wait_for(hung_up.wait(), 2)  # the upstream stops generating
        await upstream.close()


async def test_line_breaks_in_headers_never_reach_the_wire() -> None:
    server = Raw(lambda r, w: asyncio.sleep(0))
    server.handler = await keep_alive_ok(server)
    async with server:
        upstream = server.upstream()
        for headers, path in (
            ({"x-a": "v\r\nx-injected: 1"}, "/models"),
            ({"x-a\r\nx-b": "v"}, "/models"),
            ({}, "/models HTTP/1.1\r\n\r\nGET /admin"),
        ):
            with pytest.raises(GatewayError) as info:
                await upstream.send("GET", path, b"", headers, b"")
            assert info.value.status == 400 and info.value.code == "unsendable_request"
        await upstream.close()
    assert server.requests == []


async def test_large_bodies_pause_reading_until_consumed() -> None:
    size = 4 * HIGH_WATER

    async def big(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % size)
        for _ in range(size // 65536):
            writer.write(b"z" * 65536)
            await writer.drain()

    server = Raw(big)
    async with server:
        upstream = server.upstream()
        resp = await upstream.send("GET", "/files/f/content", b"", {}, b"")
        await asyncio.sleep(0.2)  # nobody reads: the buffer stops near the high-water mark
        assert resp.buffered < 2 * HIGH_WATER
        total = 0
        async for piece in resp.iter_chunks():
            total += len(piece)
        assert total == size
        await resp.close()
        await upstream.close()


async def test_a_streamed_body_is_written_no_faster_than_upstream_reads_it() -> None:
    """A body sent as it arrives (an upload) is taken from its source only as the connection
    drains: while upstream reads it slowly, what was taken and not yet read stays within the
    sockets' buffers, never the whole body; all of it arrives, and the answer comes back."""
    chunk, count = 1024 * 1024, 64
    taken = 0
    ahead: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal taken
        for _ in range(count):
            taken += chunk
            yield b"u" * chunk

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        read = 0
        while read < chunk * count:
            read += len(await reader.readexactly(chunk))
            ahead.append(taken - read)
        writer.write(OK)
        await writer.drain()

    server = Raw(slow)
    async with server:
        upstream = server.upstream()
        resp = await upstream.send_streamed(
            "POST", "/files", b"", {}, StreamedBody(chunk * count, chunks())
        )
        assert (resp.status, await resp.read()) == (200, b"{}")
        await resp.close()
        await upstream.close()
    assert taken == chunk * count
    assert max(ahead) < 16 * chunk  # without waiting for the drain: 63 MiB at the first read


async def test_an_answer_before_a_streamed_bodys_end_stops_the_writing() -> None:
    """Upstream refusing an upload before it has all come (its key refused, its size): the
    rest is not written, the answer is returned, and the connection, left mid-body, is not
    used again."""
    refused = b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 2\r\n\r\n{}"
    answered = asyncio.Event()
    taken = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal taken
        taken += 1
        yield b"u" * 100
        await answered.wait()
        for _ in range(50):
            await asyncio.sleep(0)  # a turn of the loop: the answer waiting in the socket is read
            taken += 1
            yield b"u" * 100

    async def refusing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(refused)
        await writer.drain()
        answered.set()
        await reader.read()

    server = Raw(refusing)
    async with server:
        upstream = server.upstream()
        resp = await upstream.send_streamed("POST", "/files", b"", {}, StreamedBody(5100, chunks()))
        assert (resp.status, await resp.read()) == (401, b"{}")
        await resp.close()
        assert taken < 51
        server.handler = await keep_alive_ok(server)
        assert await fetch(upstream) == (200, b"{}")
        assert server.connections == 2
        await upstream.close()


async def test_a_slow_streamed_body_does_not_count_against_the_calls_time_limit() -> None:
    """An upload's client may send it for longer than a whole call may take: the limit counts
    from the body's end, so an answer read after it is not cut off."""
    answer = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 5\r\n\r\n"

    async def slowly() -> AsyncIterator[bytes]:
        for _ in range(3):
            await asyncio.sleep(0.4)  # a slow client: 1.2 s in all, past the 1 s limit
            yield b"u" * 100

    async def halting(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(answer + b"{")
        await writer.drain()
        await asyncio.sleep(0.1)  # the rest of the answer comes a little later
        writer.write(b'"":1')
        await writer.drain()
        await reader.read()

    server = Raw(halting)
    async with server:
        upstream = server.upstream(total_timeout_s=1)
        resp = await upstream.send_streamed("POST", "/files", b"", {}, StreamedBody(300, slowly()))
        assert (resp.status, await resp.read()) == (200, b'{"":1')
        await resp.close()
        await upstream.close()


async def test_a_streamed_body_whose_source_fails_is_never_completed_upstream() -> None:
    """A body whose client leaves midway: the call fails as the source did, and upstream sees
    its connection end before the length it was told, so it makes nothing of a part."""
    cut = asyncio.Event()

    async def chunks() -> AsyncIterator[bytes]:
        yield b"u" * 1000
        raise errors.client_closed()

    async def reading(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        try:
            await reader.readexactly(5000)
        except asyncio.IncompleteReadError as short:
            assert len(short.partial) == 1000
            cut.set()

    server = Raw(reading)
    async with server:
        upstream = server.upstream()
        with pytest.raises(GatewayError) as info:
            await upstream.send_streamed("POST", "/files", b"", {}, StreamedBody(5000, chunks()))
        assert info.value.code == "client_closed"
        await cut.wait()
        await upstream.close()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_tls_with_a_verified_certificate(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(cert, key)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(OK)
        await writer.drain()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=served)
    port = server.sockets[0].getsockname()[1]
    config = UpstreamConfig(base_url=f"https://127.0.0.1:{port}/v1")
    try:
        trusted = Http1Upstream(config, ssl.create_default_context(cafile=str(cert)))
        assert await fetch(trusted, "GET", "/models") == (200, b"{}")
        await trusted.close()
        # The system's trust store does not know this certificate: refused, as a 502.
        untrusted = Http1Upstream(config)
        with pytest.raises(GatewayError) as info:
            await untrusted.send("GET", "/models", b"", {}, b"")
        assert info.value.status == 502 and "cannot connect" in info.value.message
        await untrusted.close()
    finally:
        server.close()


async def test_a_call_leaves_no_reference_cycle() -> None:
    # A cycle per call (the parser's callbacks and the response pointing at each other) left
    # 35 objects a call to the garbage collector, whose pauses showed in the p99 latency.
    server = Raw(lambda r, w: asyncio.sleep(0))
    server.handler = await keep_alive_ok(server)
    async with server:
        upstream = server.upstream()
        await fetch(upstream)
        gc.collect()
        gc.disable()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            for _ in range(20):
                assert await fetch(upstream) == (200, b"{}")
            gc.collect()
            left = [
                type(o).__name__ for o in gc.garbage if type(o).__module__.startswith("gateway")
            ]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()
        await upstream.close()
    assert left == []


async def test_a_prepared_request_is_written_only_when_fired() -> None:
    server = Raw(lambda r, w: asyncio.sleep(0))
    server.handler = await keep_alive_ok(server)
    async with server:
        upstream = server.upstream()
        assert upstream.prepare("POST", "/chat/completions", b"", {}, b"{}") is None  # none idle
        assert await fetch(upstream) == (200, b"{}")
        prepared = upstream.prepare("POST", "/chat/completions", b"", {}, b"{}")
        assert prepared is not None
        await asyncio.sleep(0.05)
        assert len(server.requests) == 1  # made ready, not written
        prepared.fire()
        prepared.fire()  # once only
        await asyncio.sleep(0.05)
        assert len(server.requests) == 2 and server.requests[1].startswith(b"POST /v1/chat")
        resp = await prepared.result()
        assert resp.status == 200 and await resp.read() == b"{}"
        await resp.close()
        assert not prepared.cancel()  # taken: nothing to undo
        with pytest.raises(RuntimeError):
            await prepared.result()
        assert server.connections == 1
        await upstream.close()


async def test_a_cancelled_unwritten_request_leaves_its_connection_as_it_was() -> None:
    server = Raw(lambda r, w: asyncio.sleep(0))
    server.handler = await keep_alive_ok(server)
    async with server:
        upstream = server.upstream()
        assert await fetch(upstream) == (200, b"{}")
        prepared = upstream.prepare("POST", "/chat/completions", b"", {}, b"{}")
        assert prepared is not None
        assert prepared.cancel() and not prepared.cancel()
        prepared.fire()  # too late: cancelled
        assert await fetch(upstream) == (200, b"{}")  # on the same connection, still in sync
        assert server.connections == 1 and len(server.requests) == 2
        assert all(r.startswith(b"GET /v1/models") for r in server.requests)
        await upstream.close()


async def test_a_cancelled_written_request_drops_its_connection() -> None:
    # Its answer would arrive on that connection: it must not serve the next request.
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await server.read_request(reader)
            await asyncio.sleep(0.05)
            writer.write(OK)

    server = Raw(slow)
    async with server:
        upstream = server.upstream()
        assert await fetch(upstream) == (200, b"{}")
        prepared = upstream.prepare("POST", "/chat/completions", b"", {}, b"{}")
        assert prepared is not None
        prepared.fire()
        assert prepared.cancel()
        assert await fetch(upstream) == (200, b"{}")
        assert server.connections == 2
        await upstream.close()
