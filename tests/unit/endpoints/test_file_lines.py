"""A file's lines read from upstream as they come (`owned.file_lines`): blocks of whole lines,
each numbered from its first, the file never held whole, and upstream's answer let go of
however the reading ends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.endpoints import owned
from gateway.wire.errors import GatewayError
from gateway.wire.jsonl import LineTooLong


class Answer:
    """Upstream's answer to a content read: `chunks`, as they come."""

    def __init__(self, status: int, chunks: list[bytes]) -> None:
        self.status, self.chunks, self.headers = status, chunks, []
        self.given = 0
        self.closed = False

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            self.given += 1
            yield chunk

    async def close(self) -> None:
        self.closed = True


class Upstream:
    def __init__(self, answer: Answer) -> None:
        self.answer = answer

    async def send(self, method: str, path: str, *_: Any) -> Answer:
        assert (method, path) == ("GET", "/files/file-in/content")
        return self.answer


class Gateway:
    def __init__(self, answer: Answer) -> None:
        self.upstream = Upstream(answer)

    def upstream_headers(self, *_: Any) -> dict[str, str]:
        return {}


class Request:
    def __init__(self) -> None:
        self.scope: dict[str, Any] = {"headers": []}


class Caller:
    team = None


async def blocks(answer: Answer, max_line: int = 64) -> list[tuple[int, bytes]]:
    gw: Any = Gateway(answer)
    read = owned.file_lines(gw, Request(), Caller(), "file-in", max_line)
    return [block async for block in read]


@pytest.mark.anyio
async def test_blocks_hold_whole_lines_numbered_from_their_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(owned, "LINES_A_BLOCK", 20)
    content = b'{"a": 1}\r\n\r\n{"b": 22}\r{"c": 333}\n{"d": 4444}\n{"e": 5}'
    # Cut inside a line, between a CR and its LF, and a byte at a time at the end.
    chunks = [
        content[:3],
        content[3:9],
        content[9:30],
        *(content[i : i + 1] for i in range(30, 55)),
    ]
    chunks.append(content[55:])
    answer = Answer(200, chunks)
    found = await blocks(answer)
    assert answer.closed
    assert [line for _, block in found for line in block.splitlines()] == content.splitlines()
    numbered = []
    for first, block in found:
        assert len(block) < 20 + 64  # a block of about LINES_A_BLOCK, and a line at most
        numbered += list(enumerate(block.splitlines(), start=first))
    assert numbered == list(enumerate(content.splitlines(), start=1))
    assert len(found) > 1


@pytest.mark.anyio
async def test_a_missing_file_is_its_404_and_a_line_over_the_bound_is_refused() -> None:
    missing = Answer(404, [b'{"error": {}}'])
    with pytest.raises(GatewayError) as refused:
        await blocks(missing)
    assert refused.value.status == 404 and missing.closed and missing.given == 0
    long = Answer(200, [b"{}\n" + b"x" * 40, b"x" * 40, b"\n{}\n"])
    with pytest.raises(LineTooLong) as too_long:
        await blocks(long)
    assert too_long.value.number == 2 and long.closed
    assert long.given == 2  # refused before the line's end came
    # The lines before it in the same read are handed on first.
    before = Answer(200, [b"{}\n[]\n" + b"x" * 70 + b"\n{}\n"])
    gw: Any = Gateway(before)
    read = owned.file_lines(gw, Request(), Caller(), "file-in", 64)
    assert await read.__anext__() == (1, b"{}\n[]\n")
    with pytest.raises(LineTooLong) as too_long:
        await read.__anext__()
    assert too_long.value.number == 3 and before.closed


@pytest.mark.anyio
async def test_a_reader_that_stops_early_lets_upstreams_answer_go(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(owned, "LINES_A_BLOCK", 20)
    answer = Answer(200, [b"{}\n" * 10] * 3)
    gw: Any = Gateway(answer)
    taken: list[int] = []

    async def take(first: int, block: bytes) -> None:
        taken.append(first)
        raise GatewayError(400, "refused")  # the first block's lines, say

    with pytest.raises(GatewayError):
        await owned.take_lines(gw, Request(), Caller(), "file-in", 64, take)
    assert taken == [1] and answer.closed and answer.given == 1
