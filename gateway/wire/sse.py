"""Server-sent events as OpenAI uses them: `data: <json>\\n\\n` frames ending in `data: [DONE]`.

Pure and incremental, like h11: feed bytes in, get whole events out. No I/O.
"""

from __future__ import annotations

from typing import Any

import orjson

DONE = b"data: [DONE]\n\n"
CONTENT_TYPE = "text/event-stream; charset=utf-8"


def encode(payload: Any) -> bytes:
    """One `data:` event carrying a JSON payload."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def comment(text: str = "keep-alive") -> bytes:
    """An SSE comment line: SDKs ignore it, idle proxies see traffic."""
    return b": " + text.encode() + b"\n\n"


class Decoder:
    """Split a byte stream into the `data` fields of complete events.

    Handles events split across reads, several events in one read, CRLF line ends (a CR that
    ends one read and the LF that begins the next too), comments, and multi-line data fields
    (joined with newlines, as the SSE spec says). An event that spans many reads is kept as
    its reads, each looked at once: an event of megabytes (a Response's last, carrying its
    images) costs its length, not its length times its reads.
    """

    __slots__ = ("_cr", "_parts")

    def __init__(self) -> None:
        self._parts: list[bytes] = []  # what ends no event yet, as it came (line ends as LF)
        self._cr = False  # the last read ended in a CR, read as a line end already

    def feed(self, chunk: bytes) -> list[bytes]:
        return events(self.complete(chunk))

    def complete(self, chunk: bytes) -> bytes:
        """The events `chunk` completes, as one block that ends where the last one does (b""
        when none): callers that only search the bytes need not split them (`events` does)."""
        if not chunk:
            return b""
        if self._cr and chunk[:1] == b"\n":
            chunk = chunk[1:]  # the LF of a CRLF whose CR ended the last read
        self._cr = chunk[-1:] == b"\r"
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        parts = self._parts
        if b"\n\n" not in chunk and not (parts and parts[-1][-1:] == b"\n" == chunk[:1]):
            if chunk:
                parts.append(chunk)
            return b""
        if parts:
            parts.append(chunk)
            chunk = b"".join(parts)
        end = chunk.rfind(b"\n\n") + 2
        if end == len(chunk):  # most reads: whole events
            if parts:
                self._parts = []
            return chunk
        self._parts = [chunk[end:]]
        return chunk[:end]

    def pending(self) -> bytes:
        """What was fed but ends no event yet."""
        return b"".join(self._parts)

    def flush(self) -> list[bytes]:
        """Events left when the stream ends without a final blank line."""
        rest = b"".join(self._parts)
        self._parts, self._cr = [], False
        data = data_of(rest) if rest.strip() else None
        return [data] if data is not None else []


def events(block: bytes) -> list[bytes]:
    """The data fields of the events in a block from `Decoder.complete`."""
    return [data for data in map(data_of, block.split(b"\n\n")[:-1]) if data is not None]


def data_of(event: bytes) -> bytes | None:
    """The data field of one event (its lines, without the blank line that ends it)."""
    lines = [
        line[5:].removeprefix(b" ") for line in event.split(b"\n") if line.startswith(b"data:")
    ]
    return b"\n".join(lines) if lines else None
