"""One record per API request, filled in as the request goes (who, which models, patches,
usage, upstream time), and finished once when the response has gone: request metrics and one
JSON access-log line come from it.

`Observe` is a plain ASGI middleware: it sees the status the client really got (including
errors the exception handlers built) and the moment the last byte left, streams included.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from gateway.admission.redis_side import Ticket
    from gateway.runtime.gateway import Gateway

SCOPE_KEY = "o1gw.exchange"
# Resource names that may label metrics; anything else is "other" so a caller cannot mint series.
KNOWN_ENDPOINTS = frozenset(
    {
        "assistants", "audio", "batches", "chat", "completions", "embeddings", "files",
        "fine_tuning", "images", "models", "moderations", "realtime", "responses", "route",
        "threads", "uploads", "vector_stores",
    }
)  # fmt: skip


@dataclass(slots=True)
class Exchange:
    started: float
    method: str = ""
    path: str = ""
    endpoint: str = "other"
    team: str = ""
    key_id: str = ""
    model: str = ""  # what the client asked for, if it is a configured model or policy
    routed_model: str = ""  # the configured model that served it
    policy: str = ""
    route_reason: str = ""
    patches: tuple[str, ...] = ()
    stream: bool = False
    ticket: Ticket | None = None  # admitted: what it was charged
    upstream_s: float | None = None
    first_token_at: float | None = None
    status: int = 0
    error_code: str = ""
    request_id: str = ""
    headers_at: float | None = None


def endpoint_of(path: str) -> str:
    """The resource a `/v1/...` path names (chat for /v1/chat/completions)."""
    resource = path[4:].split("/", 1)[0] if path.startswith("/v1/") else ""
    return resource if resource in KNOWN_ENDPOINTS else "other"


def exchange_of(scope: Scope) -> Exchange:
    """The request's record; a detached one when the middleware is not installed (unit tests)."""
    found = scope.get(SCOPE_KEY)
    if found is None:
        found = scope[SCOPE_KEY] = Exchange(started=time.perf_counter())
    exchange: Exchange = found
    return exchange


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


class Observe:
    """Create the record for `/v1/*` requests and finish it when the response is done."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        ex = Exchange(
            started=time.perf_counter(), method=scope["method"], path=path,
            endpoint=endpoint_of(path),
        )  # fmt: skip
        scope[SCOPE_KEY] = ex

        async def observed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                ex.status = message["status"]
                ex.headers_at = time.perf_counter()
                for name, value in message.get("headers", ()):
                    if name == b"x-request-id":
                        ex.request_id = value.decode("latin-1")
            await send(message)

        # The app state exists once the lifespan ran, which is before any request.
        gw: Gateway = scope["app"].state.gateway
        gw.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, observed_send)
        except BaseException:
            if not ex.status:
                ex.status = 500
            raise
        finally:
            gw.metrics.in_flight.dec()
            # After a call charged in this request: the access log reports what it cost.
            gw.after_response(finish, gw, ex, time.perf_counter())


def finish(gw: Gateway, ex: Exchange, finished: float) -> None:
    """Count the request and write its access-log line."""
    status = ex.status or 499  # nothing was sent: the client left first
    labels: tuple[str, ...] = (
        ex.team, ex.endpoint, ex.model, ex.routed_model, f"{status // 100}xx",
    )  # fmt: skip
    if gw.metrics.key_id_labels:
        labels += (ex.key_id,)
    overhead = None
    if ex.upstream_s is not None and ex.headers_at is not None:
        overhead = (ex.headers_at - ex.started) - ex.upstream_s
    gw.metrics.count_request(labels, ex.endpoint, finished - ex.started, ex.upstream_s, overhead)
    if ex.first_token_at is not None:
        gw.metrics.ttft.labels(ex.routed_model).observe(ex.first_token_at - ex.started)
    if gw.access_log is not None:
        gw.access_log.write(access_line(ex, finished))


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
