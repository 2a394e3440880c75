"""Decoding encoded bodies, over an answer held in memory."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator

import pytest

from gateway.upstream.decoding import PIECE, codings, decoded
from gateway.wire.errors import GatewayError

pytestmark = pytest.mark.anyio


class Held:
    def __init__(
        self, headers: list[tuple[bytes, bytes]], chunks: list[bytes], status: int = 200
    ) -> None:
        self.status = status
        self.headers = headers
        self.chunks = chunks
        self.closed = False

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk

    async def read(self) -> bytes:
        return b"".join(self.chunks)

    async def close(self) -> None:
        self.closed = True


def test_codings_in_the_order_applied_without_identity() -> None:
    headers = [(b"content-encoding", b"Identity, gzip"), (b"content-encoding", b" deflate")]
    assert codings(headers) == ["gzip", "deflate"]
    assert codings([(b"content-type", b"application/json")]) == []


async def test_an_answer_without_encoding_is_the_same_object() -> None:
    held = Held([(b"content-type", b"application/json")], [b"{}"])
    assert await decoded(held) is held


async def test_a_bomb_is_handed_on_in_pieces_never_whole() -> None:
    big = b"0" * (8 * PIECE)
    body = gzip.compress(big)
    held = Held([(b"content-encoding", b"gzip"), (b"content-length", b"%d" % len(body))], [body])
    resp = await decoded(held)
    assert resp.headers == []
    sizes = [len(piece) async for piece in resp.iter_chunks()]
    assert sum(sizes) == len(big) and max(sizes) <= PIECE


async def test_an_empty_body_is_empty_in_any_coding() -> None:
    resp = await decoded(Held([(b"content-encoding", b"gzip")], []))
    assert await resp.read() == b""


async def test_an_unknown_coding_closes_the_answer() -> None:
    held = Held([(b"content-encoding", b"zstd")], [b"x"])
    with pytest.raises(GatewayError) as info:
        await decoded(held)
    assert info.value.code == "upstream_encoding" and held.closed


async def test_garbage_is_an_error_not_an_answer() -> None:
    """Upstream answered, and bills it: a failure that says so (`sent`), not a cut-off one."""
    resp = await decoded(Held([(b"content-encoding", b"gzip")], [b"not gzip at all"]))
    with pytest.raises(GatewayError) as info:
        await resp.read()
    assert info.value.code == "upstream_encoding" and info.value.status == 502
    assert info.value.sent
    cut = gzip.compress(b"{}" * 100)
    resp = await decoded(Held([(b"content-encoding", b"gzip")], [cut[: len(cut) // 2]]))
    with pytest.raises(GatewayError) as info:
        await resp.read()
    assert info.value.code == "upstream_truncated"


async def test_an_error_answer_keeps_its_status_whatever_its_encoding() -> None:
    """A 429 in a coding the gateway cannot read is handed on as it came (its body, no error
    object, is replaced downstream); one that does not decode fails with its own status."""
    held = Held([(b"content-encoding", b"br"), (b"retry-after", b"1")], [b"\x0b\x02"], 429)
    resp = await decoded(held)
    assert resp.status == 429 and resp.headers == [(b"retry-after", b"1")]
    assert await resp.read() == b"\x0b\x02" and not held.closed
    resp = await decoded(Held([(b"content-encoding", b"gzip")], [b"not gzip"], 500))
    with pytest.raises(GatewayError) as info:
        await resp.read()
    assert info.value.status == 500 and info.value.code == "upstream_error"
