"""The transport contract: what every upstream client offers, and what its answers offer.

A client sends a request and returns its answer once the headers are in (`Upstream.send`); the
body is read or streamed from the answer (`UpstreamResponse`), which is closed exactly once. A
client that can also make a request ready ahead of time, to be written later from a callback,
offers `Preparing.prepare`. The clients (`auto` picks one by `upstream.client`):

- `Http1Upstream` (`http1_client`, `http1`, the default): HTTP/1.1 on asyncio's protocol API
  with httptools; the least CPU and latency per call, and the only one that prepares, and
  that sends a body as it comes (`StreamsBodies`).
- `AiohttpUpstream` (`aiohttp_client`, `aiohttp`): a general-purpose client.
- `HttpxUpstream` (`httpx_client`, `httpx`): for environments that standardise on httpx; by far
  the slowest.
- `ASGIUpstream` (`asgi_client`): calls an ASGI app in-process with real streaming (httpx's
  ASGITransport buffers whole bodies), used by `--simulate` to serve from the simulated upstream
  without a socket.

Every transport raises `GatewayError` 502 when the upstream cannot be reached or drops the
connection (`upstream_truncated` once the answer's headers came), and 504 when it does not answer
in time, so callers map faults in one place. Each such error says whether the request had been
written (`sent`): a failure to connect (refused, DNS, a connect or pool timeout, a proxy's
refusal) is not; a timeout or a dropped connection after the write is, even when the transport
cannot tell whether the upstream read it, since upstream may then be generating an answer it
bills. Every transport hands on bodies decoded
(`decoding`), and trusts and proxies as `egress` decides.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


class UpstreamResponse(Protocol):
    status: int
    # Raw, as on the wire but with lower-case names: relayed without a decode and re-encode.
    headers: list[tuple[bytes, bytes]]

    def iter_chunks(self) -> AsyncIterator[bytes]:
        """Body bytes as they arrive; raises GatewayError if the upstream fails mid-body."""
        ...

    async def read(self) -> bytes: ...

    async def close(self) -> None:
        """Release the connection; safe to call twice, and aborts an unfinished body."""
        ...


class PreparedRequest(Protocol):
    """A request made ready to send, written by `fire()` (see `Upstream.prepare`)."""

    def fire(self) -> None: ...

    async def result(self) -> UpstreamResponse:
        """Write the request if `fire()` has not, and wait for the answer's headers."""
        ...

    def cancel(self) -> bool:
        """Not wanted after all: False if `result()` had taken it already."""
        ...


class Upstream(Protocol):
    async def send(
        self, method: str, path: str, query: bytes, headers: dict[str, str], body: bytes
    ) -> UpstreamResponse:
        """Send a request; `path` is relative to the upstream base URL (e.g. `/chat/completions`)."""
        ...

    def ready(self) -> bool: ...

    async def close(self) -> None: ...


@runtime_checkable
class Preparing(Upstream, Protocol):
    """An upstream that can also make a request ready ahead of time (optional: `Dispatcher`
    uses it when a client has it, and `send` otherwise)."""

    def prepare(
        self, method: str, path: str, query: bytes, headers: dict[str, str], body: bytes
    ) -> PreparedRequest | None:
        """The request ready to be written later by `fire()`, without waiting for anything; None
        when that cannot be had at once (the caller uses `send`)."""
        ...


@dataclass(frozen=True, slots=True)
class StreamedBody:
    """A request body sent as it arrives, never held whole: `length` bytes from `chunks`, which
    can be read once only (so such a request is never sent again)."""

    length: int
    chunks: AsyncIterator[bytes]


@runtime_checkable
class StreamsBodies(Upstream, Protocol):
    """An upstream that can also send a body as it arrives (optional: a caller without it
    reads the body whole and uses `send`)."""

    async def send_streamed(
        self, method: str, path: str, query: bytes, headers: dict[str, str], body: StreamedBody
    ) -> UpstreamResponse:
        """Send a request whose body is written as its chunks come, no faster than upstream
        takes them; an answer that comes before the body's end ends the writing."""
        ...
