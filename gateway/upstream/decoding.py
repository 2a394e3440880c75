"""Bodies compressed although the gateway asked for `identity`: decoded on the way in.

A front end (a CDN, a corporate proxy, nginx with `gzip on`) may compress whatever passes it.
The gateway reads every answer (usage, for metering; a stream's events, to patch and count
them), and its callers receive the header set `gateway.wire.headers` forwards, without
`Content-Encoding`: so an encoded body is decoded here, for every client, and handed on with
`Content-Encoding` and `Content-Length` removed; the server frames what it relays itself.

gzip (and its alias x-gzip) and deflate (zlib-wrapped or, as some servers send it, raw) are
decoded by the standard library. br needs a decoder the environment does not ship, so it is
refused like any coding the gateway cannot read: relayed as it is, it could be neither metered
nor read by most clients.

A successful answer that cannot be decoded (a coding refused, a corrupt body) fails as the
upstream's fault, with an error that says upstream answered (`upstream_encoding`: it generated
the answer, and bills it; a body that stops early is `upstream_truncated`). An error answer
cannot: its status says what happened, and a body that is no OpenAI error object is replaced
by the gateway's own anyway. One in a coding the gateway cannot read is handed on as it came
(without the header), one that does not decode fails with its own status (`upstream_status`).
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator

from gateway.upstream.contract import UpstreamResponse
from gateway.wire import errors
from gateway.wire.errors import GatewayError

# A compressed chunk is decoded at most this much at a time: a small body that inflates to
# gigabytes is handed on piece by piece, never held whole.
PIECE = 1 << 20
DROPPED = frozenset({b"content-encoding", b"content-length"})


def codings(headers: list[tuple[bytes, bytes]]) -> list[str]:
    """The codings applied to the body, in the order they were applied; `identity` left out."""
    found: list[str] = []
    for name, value in headers:
        if name == b"content-encoding":
            for coding in value.decode("latin-1").split(","):
                coding = coding.strip().lower()
                if coding and coding != "identity":
                    found.append(coding)
    return found


class _Corrupt(Exception):
    """A body its coding does not decode: the coding, and what zlib said."""


class _Inflater:
    """One coding's decoder: zlib for gzip and deflate."""

    __slots__ = ("_first", "_inflate", "coding")

    def __init__(self, coding: str) -> None:
        self.coding = coding
        self._first = coding == "deflate"  # zlib-wrapped, or raw: told by the first bytes
        wbits = 16 + zlib.MAX_WBITS if coding in ("gzip", "x-gzip") else zlib.MAX_WBITS
        self._inflate = zlib.decompressobj(wbits)

    def feed(self, data: bytes) -> list[bytes]:
        try:
            if self._first and data:
                self._first = False
                try:
                    return self._run(data)
                except zlib.error:
                    self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
            return self._run(data)
        except zlib.error as exc:
            raise _Corrupt(self.coding, str(exc)) from None

    def _run(self, data: bytes) -> list[bytes]:
        inflate = self._inflate
        pieces = [inflate.decompress(data, PIECE)]
        while inflate.unconsumed_tail:
            pieces.append(inflate.decompress(inflate.unconsumed_tail, PIECE))
        return pieces

    def ended(self) -> bool:
        return self._inflate.eof


class Decoded:
    """An answer whose body is decoded as it is read (see the module's docstring)."""

    __slots__ = ("_inflaters", "_resp", "headers", "status")

    def __init__(self, resp: UpstreamResponse, applied: list[str]) -> None:
        self._resp = resp
        self.status = resp.status
        self.headers = [(k, v) for k, v in resp.headers if k not in DROPPED]
        self._inflaters = [_Inflater(coding) for coding in reversed(applied)]

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        seen = False  # an empty body (a 204, a HEAD answer) is empty in every coding
        async for chunk in self._resp.iter_chunks():
            seen = seen or bool(chunk)
            pieces = [chunk]
            try:
                for inflater in self._inflaters:
                    pieces = [out for piece in pieces for out in inflater.feed(piece)]
            except _Corrupt as exc:
                coding, detail = exc.args
                raise self._failure(errors.undecodable_body(coding, detail)) from None
            for piece in pieces:
                if piece:
                    yield piece
        if seen:
            for inflater in self._inflaters:
                if not inflater.ended():
                    cut = errors.upstream_truncated(f"the {inflater.coding} body ended early")
                    raise self._failure(cut)

    def _failure(self, error: GatewayError) -> GatewayError:
        """`error` for a successful answer; an error answer's own status otherwise."""
        return error if self.status < 300 else errors.upstream_status(self.status)

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.iter_chunks()])

    async def close(self) -> None:
        await self._resp.close()


async def decoded(resp: UpstreamResponse) -> UpstreamResponse:
    """`resp`, decoded if its body is encoded; a successful answer in a coding the gateway
    cannot read closes it and raises the 502 (an error answer is handed on as it came)."""
    applied = codings(resp.headers)
    if not applied:
        return resp
    for coding in applied:
        if coding not in ("gzip", "x-gzip", "deflate"):
            if resp.status >= 300:
                return Decoded(resp, [])
            await resp.close()
            raise errors.unsupported_encoding(coding)
    return Decoded(resp, applied)
