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

    Handles events split across reads, several events in one read, CRLF line ends, comments,
    and multi-line data fields (joined with newlines, as the SSE spec says).
    """

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        return events(self.complete(chunk))

    def complete(self, chunk: bytes) -> bytes:
        """The events `chunk` completes, as one block that ends where the last one does (b""
        when none): callers that only search the bytes need not split them (`events` does)."""
        buffer = self._buffer + chunk
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        self._buffer = buffer.rsplit(b"\n\n", 1)[-1] if b"\n\n" in buffer else buffer
        return buffer[: len(buffer) - len(self._buffer)]

    def pending(self) -> bytes:
        """What was fed but ends no event yet."""
        return self._buffer

    def flush(self) -> list[bytes]:
        """Events left when the stream ends without a final blank line."""
        rest, self._buffer = self._buffer, b""
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
