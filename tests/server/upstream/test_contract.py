"""Each upstream transport against a small real server: streaming, errors mapped to 502/504."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from gateway.config import UpstreamConfig
from gateway.upstream.asgi_client import ASGIUpstream
from gateway.upstream.auto import create_upstream
from gateway.upstream.contract import Upstream
from gateway.wire.errors import GatewayError
from tests.conftest import ServerThread, free_port

pytestmark = pytest.mark.anyio


async def echo(request: Request) -> Response:
    body = await request.body()
    return JSONResponse(
        {
            "path": request.url.path,
            "query": request.url.query,
            "body": body.decode(),
            "auth": request.headers.get("authorization"),
        },
        headers={"x-request-id": "req_1"},
    )


async def slow(request: Request) -> Response:
    await asyncio.sleep(5)
    return Response(b"late")


async def ticks(request: Request) -> Response:
    async def gen() -> AsyncIterator[bytes]:
        for i in range(3):
            yield f"data: {i}\n\n".encode()
            await asyncio.sleep(0.01)

    return StreamingResponse(gen(), media_type="text/event-stream")


async def broken(request: Request) -> Response:
    async def gen() -> AsyncIterator[bytes]:
        yield b"data: 0\n\n"
        await asyncio.sleep(0.01)
        raise RuntimeError("upstream died mid-stream")

    return StreamingResponse(gen(), media_type="text/event-stream")


APP = Starlette(
    routes=[
        Route("/v1/echo", echo, methods=["POST", "GET"]),
        Route("/v1/slow", slow),
        Route("/v1/ticks", ticks),
        Route("/v1/broken", broken),
    ]
)


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    with ServerThread(APP) as s:
        yield s


@pytest.fixture(params=["http1", "aiohttp", "httpx", "asgi"])
def make_upstream(request: pytest.FixtureRequest, server: ServerThread):  # type: ignore[no-untyped-def]
    def make(base_url: str = f"{server.url}/v1", read_timeout: float = 2.0) -> Upstream:
        if request.param == "asgi":
            return ASGIUpstream(APP, read_timeout)
        config = UpstreamConfig(
            base_url=base_url,
            client=request.param,
            read_timeout_s=read_timeout,
            first_byte_timeout_s=read_timeout,
            connect_timeout_s=1.0,
            pool_size=8,
        )
        return create_upstream(config)

    return make


async def test_request_and_response_round_trip(make_upstream) -> None:  # type: ignore[no-untyped-def]
    upstream = make_upstream()
    try:
        resp = await upstream.send(
            "POST", "/echo", b"a=1", {"authorization": "Bearer up"}, b"hello"
        )
        assert resp.status == 200
        assert (b"x-request-id", b"req_1") in resp.headers
        import orjson

        data = orjson.loads(await resp.read())
        await resp.close()
        assert data == {"path": "/v1/echo", "query": "a=1", "body": "hello", "auth": "Bearer up"}
        assert upstream.ready()
    finally:
        await upstream.close()


async def test_stream_arrives_chunk_by_chunk(make_upstream) -> None:  # type: ignore[no-untyped-def]
    upstream = make_upstream()
    try:
        resp = await upstream.send("GET", "/ticks", b"", {}, b"")
        chunks = [chunk async for chunk in resp.iter_chunks()]
        await resp.close()
        assert b"".join(chunks) == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"
        assert len(chunks) >= 2  # not buffered into one piece
    finally:
        await upstream.close()


async def test_mid_stream_failure_is_a_502(make_upstream) -> None:  # type: ignore[no-untyped-def]
    upstream = make_upstream()
    try:
        resp = await upstream.send("GET", "/broken", b"", {}, b"")
        received = b""
        with pytest.raises(GatewayError) as info:
            async for chunk in resp.iter_chunks():
                received += chunk
        await resp.close()
        assert received == b"data: 0\n\n"
        assert info.value.status == 502
    finally:
        await upstream.close()


async def test_timeout_is_a_504(make_upstream) -> None:  # type: ignore[no-untyped-def]
    upstream = make_upstream(read_timeout=0.2)
    try:
        with pytest.raises(GatewayError) as info:
            resp = await upstream.send("GET", "/slow", b"", {}, b"")
            await resp.read()
        assert info.value.status == 504 and info.value.code == "upstream_timeout"
        assert info.value.sent  # the upstream has the request: it may be answering it
    finally:
        await upstream.close()


async def _dies_unanswered(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    raise RuntimeError("gone before answering")


async def test_a_connection_dropped_after_the_request_was_sent_is_a_502_sent(
    make_upstream,  # type: ignore[no-untyped-def]
) -> None:
    """A server that reads the whole request, then resets the connection without a byte of an
    answer: the request may be at work upstream (a proxy or balancer in between dropped)."""

    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            (int(line.split(b":")[1]) for line in head.split(b"\r\n")
             if line.lower().startswith(b"content-length:")), 0,
        )  # fmt: skip
        await reader.readexactly(length)
        writer.transport.abort()

    server = await asyncio.start_server(drop, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    upstream = make_upstream(base_url=f"http://127.0.0.1:{port}/v1")
    if isinstance(upstream, ASGIUpstream):  # in-process: an app that dies before answering
        upstream = ASGIUpstream(_dies_unanswered, 2.0)
    try:
        with pytest.raises(GatewayError) as info:
            await upstream.send("POST", "/echo", b"", {}, b'{"model": "o1"}')
        assert info.value.status == 502 and info.value.code == "upstream_unreachable"
        assert info.value.sent
    finally:
        await upstream.close()
        server.close()


@pytest.mark.parametrize("client", ["http1", "aiohttp", "httpx"])
async def test_unreachable_is_a_502(client: str) -> None:
    config = UpstreamConfig(
        base_url=f"http://127.0.0.1:{free_port()}/v1", client=client, connect_timeout_s=1.0
    )
    upstream = create_upstream(config)
    try:
        with pytest.raises(GatewayError) as info:
            await upstream.send("GET", "/echo", b"", {}, b"")
        assert info.value.status == 502 and info.value.code == "upstream_unreachable"
        assert info.value.type == "upstream_error"
        assert not info.value.sent  # no one has the request: another try is safe
    finally:
        await upstream.close()


async def test_the_in_process_app_hears_its_caller_leave_and_is_not_cancelled() -> None:
    """As an app behind a server: the caller's timeout is an `http.disconnect`, and the app
    ends on its own (a whole answer finished and billed upstream), sending to nobody."""
    heard: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()  # the request
        heard.append((await receive())["type"])  # until the caller leaves
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})
        heard.append("answered")

    upstream = ASGIUpstream(app, 0.1)
    try:
        with pytest.raises(GatewayError) as info:
            await upstream.send("POST", "/chat/completions", b"", {}, b"{}")
        assert info.value.code == "upstream_timeout" and info.value.sent
        for _ in range(500):
            if len(heard) == 2:
                break
            await asyncio.sleep(0.01)
        assert heard == ["http.disconnect", "answered"]
    finally:
        await upstream.close()
