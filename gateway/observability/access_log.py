"""The access log: one JSON line per API request, to stderr, written in batches."""

from __future__ import annotations

import asyncio
from typing import Any, BinaryIO

import orjson


class AccessLog:
    """JSON lines to a stream (stderr), written in batches.

    A `logging` call per request is costly under load (every record asks the kernel for the
    pid, every line is its own write); here lines collect in memory and leave in one write
    every `interval_s`, or sooner when `max_bytes` have piled up.
    """

    def __init__(self, stream: BinaryIO, interval_s: float = 0.2, max_bytes: int = 1 << 20) -> None:
        self.stream = stream
        self.interval_s = interval_s
        self._max_bytes = max_bytes
        self._lines: list[bytes] = []
        self._size = 0

    def write(self, record: dict[str, Any]) -> None:
        line = orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
        self._lines.append(line)
        self._size += len(line)
        if self._size >= self._max_bytes:
            self.flush()

    def flush(self) -> None:
        if not self._lines:
            return
        data = b"".join(self._lines)
        self._lines.clear()
        self._size = 0
        try:
            self.stream.write(data)
            self.stream.flush()
        except (OSError, ValueError):  # a closed or broken stderr must not fail requests
            pass

    async def run(self) -> None:
        try:
            while True:
                await asyncio.sleep(self.interval_s)
                self.flush()
        finally:
            self.flush()
