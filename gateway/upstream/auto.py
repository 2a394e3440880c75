"""Which upstream client serves `upstream.client` (README "Upstream client")."""

from __future__ import annotations

from gateway.config import UpstreamConfig
from gateway.upstream.contract import Upstream


def create_upstream(config: UpstreamConfig) -> Upstream:
    # The alternatives are imported only when chosen: each costs every worker several MB.
    if config.client == "httpx":
        from gateway.upstream.httpx_client import HttpxUpstream

        return HttpxUpstream(config)
    if config.client == "aiohttp":
        from gateway.upstream.aiohttp_client import AiohttpUpstream

        return AiohttpUpstream(config)
    from gateway.upstream.http1_client import Http1Upstream

    return Http1Upstream(config)
