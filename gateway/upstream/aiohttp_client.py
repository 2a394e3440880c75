"""The aiohttp transport (`upstream.client: aiohttp`): the default before `Http1Upstream`, kept
for measurement and for shops that want a general-purpose client; see
`gateway.upstream.contract`."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Mapping

import aiohttp

from gateway.config import UpstreamConfig
from gateway.eventloop import KeptLoop
from gateway.upstream.contract import UpstreamResponse
from gateway.upstream.decoding import decoded
from gateway.upstream.egress import proxy_for, tls_context
from gateway.wire import errors


def _aiohttp_error(exc: BaseException, read_timeout: float, stage: str) -> errors.GatewayError:
    # Timeouts first: aiohttp's timeout errors are ClientErrors too. Only a connection that was
    # never made says the request reached no one; any other failure may come after it did.
    if isinstance(exc, TimeoutError):
        sent = not isinstance(exc, aiohttp.ConnectionTimeoutError)
        return errors.upstream_timeout(read_timeout, sent=sent)
    if isinstance(exc, aiohttp.ClientConnectorError):
        detail = f"cannot connect ({exc.os_error.strerror or exc})"
        return errors.upstream_unreachable(detail, sent=False)
    if stage == "lost mid-response":
        return errors.upstream_truncated(f"connection {stage} ({type(exc).__name__})")
    return errors.upstream_unreachable(f"connection {stage} ({type(exc).__name__})", sent=True)


_AIOHTTP_ERRORS = (TimeoutError, aiohttp.ClientError, ConnectionError)


class _AiohttpResponse:
    __slots__ = ("_read_timeout", "_resp", "headers", "status")

    def __init__(self, resp: aiohttp.ClientResponse, read_timeout: float) -> None:
        self._resp = resp
        self._read_timeout = read_timeout
        self.status = resp.status
        self.headers = [(k.lower(), v) for k, v in resp.raw_headers]

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._resp.content.iter_any():
                yield chunk
        except _AIOHTTP_ERRORS as exc:
            raise _aiohttp_error(exc, self._read_timeout, "lost mid-response") from exc

    async def read(self) -> bytes:
        try:
            return await self._resp.read()
        except _AIOHTTP_ERRORS as exc:
            raise _aiohttp_error(exc, self._read_timeout, "lost mid-response") from exc

    async def close(self) -> None:
        # release() keeps a fully read connection in the pool; an unfinished body closes it,
        # which is what cancels the upstream generation when a client goes away.
        if self._resp.content.is_eof():
            self._resp.release()
        else:
            self._resp.close()


class AiohttpUpstream:
    _loop = KeptLoop()

    def __init__(self, config: UpstreamConfig, environ: Mapping[str, str] | None = None) -> None:
        self._base = config.base_url.rstrip("/")
        self._read_timeout = config.read_timeout_s
        self._first_byte_timeout = config.first_byte_timeout_s
        proxy = proxy_for(config.base_url, config.proxy, os.environ if environ is None else environ)
        connector = aiohttp.TCPConnector(
            limit=config.pool_size,
            limit_per_host=config.pool_size,
            ttl_dns_cache=300,
            ssl=tls_context(config.ca_file),
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            # sock_read also bounds the wait for the headers, so it must allow the first byte;
            # that wait has its own, usually longer, limit below.
            timeout=aiohttp.ClientTimeout(
                total=config.total_timeout_s,
                sock_connect=config.connect_timeout_s,
                sock_read=max(config.read_timeout_s, config.first_byte_timeout_s),
            ),
            auto_decompress=False,  # `decoded`, as every client does
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
            proxy=proxy.url if proxy is not None else None,
        )

    async def send(
        self, method: str, path: str, query: bytes, headers: dict[str, str], body: bytes
    ) -> UpstreamResponse:
        url = self._base + path
        if query:
            url += "?" + query.decode("latin-1")
        # The wait for the headers has its own limit, done by hand rather than with
        # asyncio.timeout(), which looks the loop up twice (see `gateway.eventloop`).
        loop = self._loop
        task = asyncio.current_task(loop)
        assert task is not None
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            task.cancel()

        timer = loop.call_later(self._first_byte_timeout, expire)
        try:
            resp = await self._session.request(
                method, url, headers=headers, data=body or None, allow_redirects=False
            )
        except asyncio.CancelledError:
            if expired and task.uncancel() == 0:
                raise errors.upstream_timeout(self._first_byte_timeout, sent=True) from None
            raise
        except _AIOHTTP_ERRORS as exc:
            raise _aiohttp_error(exc, self._first_byte_timeout, "failed") from exc
        finally:
            timer.cancel()
        return await decoded(_AiohttpResponse(resp, self._read_timeout))

    def ready(self) -> bool:
        return not self._session.closed

    async def close(self) -> None:
        await self._session.close()
