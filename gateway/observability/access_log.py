"""The access log: one JSON line per API request, to stderr, written in batches."""

from __future__ import annotations

import asyncio
from typing import Any, BinaryIO

import orjson

from gateway.observability.record import Exchange


def access_line(ex: Exchange, finished: float) -> dict[str, Any]:
    """The access-log record: never headers, bodies, keys or query strings."""
    usage = ex.ticket.usage if ex.ticket is not None else None
    line: dict[str, Any] = {
        "request_id": ex.request_id,
        "method": ex.method,
        "path": ex.path,
        "status": ex.status,
        "team": ex.team,
        "key_id": ex.key_id,
        "model": ex.model,
        "routed_model": ex.routed_model,
        "stream": ex.stream,
        "duration_ms": round((finished - ex.started) * 1000, 3),
    }
    if ex.policy:
        line["policy"] = ex.policy
        line["route_reason"] = ex.route_reason
    if ex.patches:
        line["patches"] = list(ex.patches)
    if ex.substituted:
        line["substituted"] = ex.substituted
    if usage is not None:
        line["prompt_tokens"] = usage.prompt_tokens
        line["cached_tokens"] = usage.cached_tokens
        line["completion_tokens"] = usage.completion_tokens
        line["reasoning_tokens"] = usage.reasoning_tokens
        line["cost_micros"] = ex.ticket.cost if ex.ticket is not None else 0
    if ex.upstream_s is not None:
        line["upstream_ms"] = round(ex.upstream_s * 1000, 3)
    if ex.first_token_at is not None:
        line["ttft_ms"] = round((ex.first_token_at - ex.started) * 1000, 3)
    if ex.error_code:
        line["error_code"] = ex.error_code
    return line


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

    def write_exchange(self, ex: Exchange, finished: float) -> None:
        self.write(access_line(ex, finished))

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
