"""The httpx transport of the upstream interface (`upstream.client: httpx`), kept for
measurement and for shops that standardise on httpx; see `gateway.upstream.contract`."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Mapping

import httpx

from gateway.config import UpstreamConfig
from gateway.upstream.contract import UpstreamResponse
from gateway.upstream.decoding import decoded
from gateway.upstream.egress import proxy_for, tls_context
from gateway.wire import errors

# Failures before the whole request was written: upstream has nothing to work on. Any other
# failure before the answer's headers may come after upstream has the request.
_UNSENT_TIMEOUTS = (httpx.ConnectTimeout, httpx.PoolTimeout, httpx.WriteTimeout)
_UNSENT_ERRORS = (httpx.ConnectError, httpx.WriteError, httpx.UnsupportedProtocol, httpx.ProxyError)


class _HttpxResponse:
    __slots__ = ("_read_timeout", "_resp", "headers", "status")

    def __init__(self, resp: httpx.Response, read_timeout: float) -> None:
        self._resp = resp
        self._read_timeout = read_timeout
        self.status = resp.status_code
        self.headers = [(k.lower(), v) for k, v in resp.headers.raw]

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._resp.aiter_raw():
                yield chunk
        except httpx.TimeoutException as exc:
            raise errors.upstream_timeout(self._read_timeout, sent=True) from exc
        except httpx.TransportError as exc:
            raise errors.upstream_truncated(
                f"connection lost mid-response ({type(exc).__name__})"
            ) from exc

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.iter_chunks()])

    async def close(self) -> None:
        await self._resp.aclose()


class HttpxUpstream:
    def __init__(self, config: UpstreamConfig, environ: Mapping[str, str] | None = None) -> None:
        self._base = config.base_url.rstrip("/")
        self._read_timeout = config.read_timeout_s
        self._first_byte_timeout = config.first_byte_timeout_s
        proxy = proxy_for(config.base_url, config.proxy, os.environ if environ is None else environ)
        self._client = httpx.AsyncClient(
            # Proxies and trust as `gateway.upstream.egress` decides, for every client alike.
            trust_env=False,
            proxy=proxy.url if proxy is not None else None,
            verify=tls_context(config.ca_file),
            limits=httpx.Limits(
                max_connections=config.pool_size, max_keepalive_connections=config.pool_size
            ),
            timeout=httpx.Timeout(
                connect=config.connect_timeout_s,
                read=max(config.read_timeout_s, config.first_byte_timeout_s),
                write=config.read_timeout_s,
                pool=config.read_timeout_s,
            ),
        )

    async def send(
        self, method: str, path: str, query: bytes, headers: dict[str, str], body: bytes
    ) -> UpstreamResponse:
        url = self._base + path
        if query:
            url += "?" + query.decode("latin-1")
        request = self._client.build_request(method, url, headers=headers, content=body or None)
        try:
            async with asyncio.timeout(self._first_byte_timeout):
                resp = await self._client.send(request, stream=True)
        except _UNSENT_TIMEOUTS as exc:
            raise errors.upstream_timeout(self._first_byte_timeout, sent=False) from exc
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise errors.upstream_timeout(self._first_byte_timeout, sent=True) from exc
        except httpx.TransportError as exc:
            sent = not isinstance(exc, _UNSENT_ERRORS)
            what = "connection failed" if sent else "cannot connect"
            raise errors.upstream_unreachable(f"{what} ({type(exc).__name__})", sent=sent) from exc
        return await decoded(_HttpxResponse(resp, self._read_timeout))

    def ready(self) -> bool:
        return not self._client.is_closed

    async def close(self) -> None:
        await self._client.aclose()
