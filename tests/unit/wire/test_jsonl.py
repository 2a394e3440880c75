"""A JSON Lines file read as a stream: the lines (and their numbers) it has read whole, however
its reads cut it, and a line over the bound refused, finished or not."""

from __future__ import annotations

import pytest

from gateway.wire.jsonl import Lines, LineTooLong

FILES = [
    b'{"a": 1}\n{"b": 2}\n',
    b'{"a": 1}\r\n{"b": 2}\r\n',  # CRLF
    b'{"a": 1}\r{"b": 2}\r',  # a lone CR ends a line too
    b'{"a": 1}\n{"b": 2}',  # the last line without its end
    b'\n\n{"a": 1}\r\n\r\n\n{"b": 2}\r\n\r',  # blank lines, counted
    b"\r\n",
    b"",
]


def read(lines: Lines, chunks: list[bytes]) -> list[bytes]:
    """Every line a reader gives out over `chunks`, as `bytes.splitlines` gives them."""
    blocks = [lines.complete(chunk) for chunk in chunks]
    for block in blocks:
        assert not block or block.endswith(b"\n")
    return b"".join([*blocks, lines.end()]).splitlines()


@pytest.mark.parametrize("content", FILES)
def test_the_lines_are_the_files_however_its_reads_cut_it(content: bytes) -> None:
    whole = content.splitlines()
    cuts = [[content]]
    cuts += [[content[:i], content[i:]] for i in range(len(content) + 1)]  # a CR, then its LF too
    cuts.append([content[i : i + 1] for i in range(len(content))])  # a byte a read
    for chunks in cuts:
        lines = Lines(limit=64)
        assert read(lines, chunks) == whole, chunks
        assert lines.count == len(whole)


def test_each_block_counts_the_lines_it_completes() -> None:
    lines = Lines(limit=64)
    assert lines.complete(b'{"a": 1}\n{"b"') == b'{"a": 1}\n'
    assert lines.count == 1
    assert lines.complete(b": 2}\r") == b'{"b": 2}\n'
    assert lines.complete(b"\n\n") == b"\n"  # the LF of the CRLF, then a blank line
    assert lines.count == 3
    assert lines.complete(b"{}") == b""
    assert lines.end() == b"{}"
    assert lines.count == 4


def test_a_line_as_long_as_the_bound_is_read_and_a_longer_one_refused() -> None:
    fits = b"x" * 10
    assert read(Lines(limit=10), [fits + b"\r\n" + fits]) == [fits, fits]  # ends are not counted
    for chunks in (
        [fits + b"\n" + fits + b"y\n{}\n"],  # whole in one read
        [fits + b"\n" + fits[:5], fits[5:] + b"y\n"],  # finished across reads
        [fits + b"\n", fits, b"y", b"\n"],  # unfinished: refused before the reads go on
        [fits + b"\n" + fits + b"y"],  # the last line, without its end
    ):
        lines = Lines(limit=10)
        given = []
        with pytest.raises(LineTooLong) as refused:
            for chunk in chunks:
                given.append(lines.complete(chunk))
            lines.end()
        assert (refused.value.number, refused.value.limit) == (2, 10), chunks
        # The lines before it are given out first, however the reads cut them.
        assert b"".join(given) == fits + b"\n", chunks


def test_what_is_held_between_reads_is_one_unfinished_line_at_most() -> None:
    lines = Lines(limit=1000)
    for _ in range(9):
        assert lines.complete(b"x" * 100) == b""
    assert lines.complete(b"x" * 101) == b""
    assert lines.too_long is not None and lines.too_long.number == 1
    assert not lines._parts  # let go of
    with pytest.raises(LineTooLong):
        lines.complete(b"\n")
