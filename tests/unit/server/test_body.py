"""Reading a request body straight from the ASGI `receive` channel."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.requests import Request

from gateway.server.body import read_body, repeated_key, written
from gateway.wire.errors import GatewayError


def request_with(messages: list[dict[str, Any]], headers: list[tuple[bytes, bytes]]) -> Request:
    pending = list(messages)

    async def receive() -> dict[str, Any]:
        return pending.pop(0)

    return Request({"type": "http", "method": "POST", "headers": headers}, receive)


def body(data: bytes, more: bool = False) -> dict[str, Any]:
    return {"type": "http.request", "body": data, "more_body": more}


@pytest.mark.anyio
async def test_one_message_is_the_body() -> None:
    assert await read_body(request_with([body(b'{"a":1}')], []), 100) == b'{"a":1}'


@pytest.mark.anyio
async def test_chunks_are_joined_in_order() -> None:
    messages = [body(b"ab", True), body(b"", True), body(b"cd", True), body(b"e")]
    assert await read_body(request_with(messages, []), 100) == b"abcde"


@pytest.mark.anyio
async def test_a_body_over_the_limit_is_refused_as_it_arrives() -> None:
    # No content-length (chunked upload): the limit is enforced on what actually arrives.
    messages = [body(b"x" * 60, True), body(b"x" * 60, True)]
    with pytest.raises(GatewayError) as info:
        await read_body(request_with(messages, []), 100)
    assert info.value.status == 413


@pytest.mark.anyio
async def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    request = request_with([], [(b"content-length", b"101")])
    with pytest.raises(GatewayError) as info:
        await read_body(request, 100)
    assert info.value.status == 413
    request = request_with([], [(b"content-length", b"12x")])
    with pytest.raises(GatewayError) as info:
        await read_body(request, 100)
    assert info.value.status == 400


@pytest.mark.anyio
async def test_a_client_that_leaves_mid_body_is_a_499() -> None:
    messages = [body(b"ab", True), {"type": "http.disconnect"}]
    with pytest.raises(GatewayError) as info:
        await read_body(request_with(messages, []), 100)
    assert info.value.status == 499 and info.value.code == "client_closed"


@pytest.mark.parametrize(
    ("text", "found"),
    [
        (b'{"model":"a","input":"x"}', None),
        (b'{"a":{"b":1},"c":{"b":2}}', None),  # one key each, in two objects
        (b'{"body":{"model":"a","model":"b"}}', "it gives the key 'model' twice"),
        (b'{"mod\\u0065l":"a","model":"b"}', "it gives the key 'model' twice"),  # escaped
        (b"[" * 1020 + b"]" * 1020, "it nests too deeply to be checked"),
    ],
)
def test_a_repeated_key_is_found_at_any_depth_however_spelled(
    text: bytes, found: str | None
) -> None:
    assert repeated_key(text) == found


def test_a_body_nested_deeper_than_can_be_written_again_is_a_400() -> None:
    deep: Any = []
    for _ in range(300):  # read (orjson reads 1024 levels), not written (254)
        deep = [deep]
    assert written({"input": [[1]]}) == b'{"input":[[1]]}'
    with pytest.raises(GatewayError) as info:
        written({"input": deep})
    assert (info.value.status, info.value.code) == (400, "nesting_too_deep")
