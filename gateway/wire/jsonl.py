"""JSON Lines files as OpenAI reads them (a batch's input, a training file), read as a stream.

Pure and incremental, like `sse.Decoder`: feed the bytes as they come, get blocks of whole lines
out, each line no longer than a bound. Lines end as `bytes.splitlines` ends them (LF, CRLF or a
lone CR; a CR that ends one read and the LF that begins the next are one end), so a file read
this way has the lines, and the line numbers, it has read whole. `blocks` gathers them into
blocks of about a given size from the chunks an answer brings. No I/O of its own: it reads what
it is given.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable, Iterator


class LineTooLong(ValueError):
    """A line longer than the bound: `number` (from 1) and the bound `limit`, in bytes."""

    def __init__(self, number: int, limit: int) -> None:
        super().__init__(f"line {number} is longer than {limit} bytes")
        self.number, self.limit = number, limit


class Lines:
    """Split a byte stream into blocks of whole lines, each line ending in LF (whatever ended
    it in the file), none longer than `limit` bytes without its end: what is held between reads
    is one unfinished line, so at most `limit` bytes. `count`: the lines given out so far.
    `too_long`: a line found longer, once the lines before it are given out; raised by the
    next call."""

    __slots__ = ("_cr", "_held", "_parts", "count", "limit", "too_long")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0
        self._parts: list[bytes] = []  # the unfinished line, as it came
        self._held = 0  # its length
        self._cr = False  # the last read ended in a CR, read as a line end already
        self.too_long: LineTooLong | None = None

    def complete(self, chunk: bytes) -> bytes:
        """The lines `chunk` completes, as one block ending in LF (b"" when none), up to a
        line longer than the bound, finished or not (`too_long`, raised from the next call on:
        the lines before it are read as a file that ends there would be)."""
        if self.too_long is not None:
            raise self.too_long
        if self._cr and chunk[:1] == b"\n":
            chunk = chunk[1:]  # the LF of a CRLF whose CR ended the last read
        self._cr = False
        if not chunk:
            return b""
        if b"\r" in chunk:
            self._cr = chunk[-1:] == b"\r"
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        end = chunk.rfind(b"\n") + 1
        if not end:
            self._hold(chunk)
            return b""
        if self._parts:
            self._parts.append(chunk[:end])
            block = b"".join(self._parts)
            self._parts, self._held = [], 0
        else:
            block = chunk[:end]
        if len(block) > self.limit:
            block = self._before_too_long(block)
        self.count += block.count(b"\n")
        if end < len(chunk) and self.too_long is None:
            self._hold(chunk[end:])
        return block

    def end(self) -> bytes:
        """The last line, when the stream ends without a line end (b"" otherwise)."""
        if self.too_long is not None:
            raise self.too_long
        rest = b"".join(self._parts)
        self._parts, self._held, self._cr = [], 0, False
        if rest:
            self.count += 1
        return rest

    def _hold(self, part: bytes) -> None:
        self._held += len(part)
        if self._held > self.limit:
            self.too_long = LineTooLong(self.count + 1, self.limit)
            self._parts, self._held = [], 0
        else:
            self._parts.append(part)

    def _before_too_long(self, block: bytes) -> bytes:
        """`block`, or its lines before the first longer than the bound (`too_long`)."""
        start = 0
        for number, line in enumerate(block.split(b"\n"), start=self.count + 1):
            if len(line) > self.limit:
                self.too_long = LineTooLong(number, self.limit)
                return block[:start]
            start += len(line) + 1
        return block


async def blocks(
    chunks: AsyncIterable[bytes], limit: int, size: int
) -> AsyncGenerator[tuple[int, bytes]]:
    """The lines of a stream of `chunks` (`Lines`, at most `limit` bytes each) in blocks of
    whole lines of about `size` bytes, each with the number of its first line (from 1; blank
    lines are counted): what is held at once is a block and a line, never the stream.
    `LineTooLong` for a longer line, once the lines before it are given out."""
    lines = Lines(limit)
    parts: list[bytes] = []
    given = held = 0  # lines handed on, bytes of lines not yet
    async for chunk in chunks:
        for piece in _pieces(lines.complete(chunk), size):
            parts.append(piece)
            held += len(piece)
            if held >= size:
                block = b"".join(parts)
                yield given + 1, block
                given += block.count(b"\n")
                parts, held = [], 0
        if lines.too_long is not None:
            if parts:  # the lines before it first: a refusal of one of them comes first
                yield given + 1, b"".join(parts)
            raise lines.too_long
    last = lines.end()
    if parts or last:
        yield given + 1, b"".join([*parts, last])


def _pieces(block: bytes, size: int) -> Iterator[bytes]:
    """A block of whole lines cut at line ends into pieces of `size` bytes and a line at most
    (a read may bring megabytes)."""
    start = 0
    while start < len(block):
        end = block.find(b"\n", start + size - 1) + 1 or len(block)
        yield block[start:end]
        start = end
