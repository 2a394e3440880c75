"""The HTTP/1.1 client against raw servers sending answers a client must not take at face
value: trailers, HEAD answers with a length, encoded bodies, bodies cut short; and reaching the
upstream through an http proxy (CONNECT for https, absolute targets for http)."""

from __future__ import annotations

import asyncio
import base64
import gzip
import socket
import ssl
import struct
import zlib
from pathlib import Path
from urllib.parse import unquote

import pytest

from gateway.config import UpstreamConfig
from gateway.upstream.http1_client import Http1Upstream
from gateway.wire.errors import GatewayError
from tests.server.upstream.test_http1_client import OK, Raw, certificate, fetch

pytestmark = pytest.mark.anyio
__all__ = ["certificate"]  # the module's fixture, used here too


def answering(server: Raw, *answers: bytes) -> None:
    """`server` answers its connections' requests with `answers`, in turn."""
    queue = list(answers)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while queue:
            await server.read_request(reader)
            writer.write(queue.pop(0))
            await writer.drain()
        await reader.read()

    server.handler = handler


async def test_trailer_fields_are_not_headers() -> None:
    server = Raw(lambda r, w: asyncio.sleep(0))
    answering(
        server,
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-request-id: req_1\r\n"
        b"transfer-encoding: chunked\r\ntrailer: x-request-id\r\n\r\n"
        b"2\r\n{}\r\n0\r\ncontent-type: text/html\r\nx-request-id: req_2\r\n\r\n",
        OK,
    )
    async with server:
        upstream = server.upstream()
        resp = await upstream.send("GET", "/models", b"", {}, b"")
        assert await resp.read() == b"{}"
        await resp.close()
        assert [v for k, v in resp.headers if k in (b"content-type", b"x-request-id")] == [
            b"application/json",
            b"req_1",
        ]
        assert await fetch(upstream) == (200, b"{}")  # the connection stayed in step
        await upstream.close()
    assert server.connections == 1


async def test_a_head_answer_ends_with_its_headers() -> None:
    server = Raw(lambda r, w: asyncio.sleep(0))
    answering(server, b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n", OK)
    async with server:
        upstream = server.upstream()
        async with asyncio.timeout(10):  # a guard: without the fix this waits for 1000 bytes
            assert await fetch(upstream, "HEAD", "/files/f") == (200, b"")
        assert await fetch(upstream) == (200, b"{}")  # on a new connection: not reused
        await upstream.close()
    assert server.connections == 2


def encoded_answer(coding: bytes, body: bytes, chunked: bool = False) -> bytes:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-encoding: %s\r\n" % coding
    if chunked:
        half = len(body) // 2
        pieces = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (body[:half], body[half:]))
        return head + b"transfer-encoding: chunked\r\n\r\n" + pieces + b"0\r\n\r\n"
    return head + b"content-length: %d\r\n\r\n%s" % (len(body), body)


PAYLOAD = b'{"usage": {"prompt_tokens": 3, "completion_tokens": 5}, "text": "' + b"a" * 5000 + b'"}'


def raw_deflate(data: bytes) -> bytes:
    compress = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compress.compress(data) + compress.flush()


@pytest.mark.parametrize(
    ("coding", "body"),
    [
        (b"gzip", gzip.compress(PAYLOAD)),
        (b"x-gzip", gzip.compress(PAYLOAD)),
        (b"deflate", zlib.compress(PAYLOAD)),
        (b"deflate", raw_deflate(PAYLOAD)),  # as some servers send "deflate"
        (b"gzip, deflate", zlib.compress(gzip.compress(PAYLOAD))),
    ],
)
@pytest.mark.parametrize("chunked", [False, True])
async def test_encoded_bodies_are_decoded_and_the_header_removed(
    coding: bytes, body: bytes, chunked: bool
) -> None:
    server = Raw(lambda r, w: asyncio.sleep(0))
    answering(server, encoded_answer(coding, body, chunked), OK)
    async with server:
        upstream = server.upstream()
        resp = await upstream.send("POST", "/chat/completions", b"", {}, b"{}")
        assert await resp.read() == PAYLOAD
        assert {k for k, _ in resp.headers}.isdisjoint({b"content-encoding", b"content-length"})
        await resp.close()
        assert await fetch(upstream) == (200, b"{}")
        await upstream.close()


async def body_error(upstream: Http1Upstream) -> GatewayError:
    """The error reading an answer's body raises (its headers came)."""
    resp = await upstream.send("GET", "/files/f/content", b"", {}, b"")
    try:
        with pytest.raises(GatewayError) as info:
            await resp.read()
    finally:
        await resp.close()
    return info.value


async def test_an_unknown_encoding_is_refused_and_a_cut_gzip_body_is_truncated() -> None:
    server = Raw(lambda r, w: asyncio.sleep(0))
    whole = gzip.compress(PAYLOAD)
    answering(
        server,
        encoded_answer(b"br", b"\x0b\x02\x80hello\x03"),
        encoded_answer(b"gzip", whole[: len(whole) // 2]),
    )
    async with server:
        upstream = server.upstream()
        with pytest.raises(GatewayError) as info:
            await upstream.send("GET", "/models", b"", {}, b"")
        assert info.value.code == "upstream_encoding"
        assert info.value.headers["x-should-retry"] == "false"
        assert (await body_error(upstream)).code == "upstream_truncated"
        await upstream.close()


async def test_a_body_until_close_cut_by_a_reset_is_truncated() -> None:
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{"half')
        await writer.drain()
        await asyncio.sleep(0.05)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    server = Raw(reset)
    async with server:
        upstream = server.upstream()
        assert (await body_error(upstream)).code == "upstream_truncated"
        await upstream.close()


# -- through a proxy ------------------------------------------------------------------------------


class ForwardProxy:
    """An http proxy: CONNECT opens a tunnel; any other request (absolute target) is relayed
    to the origin it names. Keeps what it was asked; refuses without the right credentials."""

    def __init__(self, credentials: str = "") -> None:
        self.credentials = credentials
        self.heads: list[bytes] = []
        self.server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        user = f"{self.credentials}@" if self.credentials else ""
        return f"http://{user}127.0.0.1:{port}"

    async def __aenter__(self) -> ForwardProxy:
        self.server = await asyncio.start_server(self.serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.heads.append(head)
            expected = base64.b64encode(unquote(self.credentials).encode()).decode()
            if self.credentials and f"proxy-authorization: Basic {expected}" not in head.decode():
                writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
                return
            method, target, _ = head.split(b"\r\n", 1)[0].split(b" ")
            if method == b"CONNECT":
                host, port = target.rsplit(b":", 1)
                up_reader, up_writer = await asyncio.open_connection(host.decode(), int(port))
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
                return
            origin = target.split(b"/")[2].decode()
            host, port = origin.rsplit(":", 1)
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
            up_writer.write(head)
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def test_an_https_upstream_through_a_connect_tunnel_with_a_private_ca(
    certificate: tuple[Path, Path],
) -> None:
    cert, key = certificate
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(cert, key)
    requests: list[bytes] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                requests.append(await reader.readuntil(b"\r\n\r\n"))
                writer.write(OK)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            writer.close()

    origin = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=served)
    port = origin.sockets[0].getsockname()[1]
    try:
        async with ForwardProxy("user:p%40ss") as proxy:
            config = UpstreamConfig(
                base_url=f"https://127.0.0.1:{port}/v1", ca_file=str(cert), proxy=proxy.url
            )
            upstream = Http1Upstream(config, environ={})
            for _ in range(2):
                assert await fetch(upstream) == (200, b"{}")
            await upstream.close()
            assert len(proxy.heads) == 1  # one tunnel, kept alive
            connect = proxy.heads[0].decode()
            assert connect.startswith(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n")
            assert (
                "proxy-authorization: Basic " + base64.b64encode(b"user:p@ss").decode() in connect
            )
            # The origin sees what it would see direct: no proxy credentials.
            assert requests[0].startswith(b"GET /v1/models HTTP/1.1\r\n")
            assert b"proxy-authorization" not in requests[0]
            # Wrong credentials: the proxy's refusal, as a 502.
            wrong = UpstreamConfig(
                base_url=f"https://127.0.0.1:{port}/v1", ca_file=str(cert),
                proxy=proxy.url.replace("p%40ss", "nope"),
            )  # fmt: skip
            refused = Http1Upstream(wrong, environ={})
            with pytest.raises(GatewayError) as info:
                await fetch(refused)
            assert info.value.status == 502 and "407" in info.value.message
            await refused.close()
    finally:
        origin.close()


async def test_an_http_upstream_through_the_environments_proxy_and_no_proxy() -> None:
    server = Raw(lambda r, w: asyncio.sleep(0))
    answering(server, OK, OK)
    async with server, ForwardProxy() as proxy:
        config = UpstreamConfig(base_url=f"http://127.0.0.1:{server.port}/v1")
        upstream = Http1Upstream(config, environ={"HTTP_PROXY": proxy.url})
        assert await fetch(upstream) == (200, b"{}")
        await upstream.close()
        target = f"GET http://127.0.0.1:{server.port}/v1/models HTTP/1.1\r\n".encode()
        assert proxy.heads[0].startswith(target)
        # no_proxy names the host: direct.
        direct = Http1Upstream(
            config, environ={"HTTP_PROXY": proxy.url, "NO_PROXY": "localhost,127.0.0.1"}
        )
        assert await fetch(direct) == (200, b"{}")
        await direct.close()
        assert len(proxy.heads) == 1
    assert server.requests[1].startswith(b"GET /v1/models HTTP/1.1\r\n")
