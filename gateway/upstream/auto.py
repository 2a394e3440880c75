"""Which upstream client serves `upstream.client` (README "Upstream client")."""

from __future__ import annotations

from collections.abc import Mapping

from gateway.config import UpstreamConfig
from gateway.upstream.contract import Upstream


def create_upstream(config: UpstreamConfig, environ: Mapping[str, str] | None = None) -> Upstream:
    """`environ`: where proxy settings are read (the process's environment by default)."""
    # The alternatives are imported only when chosen: each costs every worker several MB.
    if config.client == "httpx":
        from gateway.upstream.httpx_client import HttpxUpstream

        return HttpxUpstream(config, environ)
    if config.client == "aiohttp":
        from gateway.upstream.aiohttp_client import AiohttpUpstream

        return AiohttpUpstream(config, environ)
    from gateway.upstream.http1_client import Http1Upstream

    return Http1Upstream(config, environ=environ)
