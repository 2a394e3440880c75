"""The gateway's readiness with a real redis-server behind it."""

from __future__ import annotations

import httpx

from tests.conftest import GatewayFactory


def test_readiness_follows_a_real_redis(start_gateway: GatewayFactory, redis_server: str) -> None:
    server = start_gateway(redis={"url": redis_server, "timeout_s": 0.5})
    assert httpx.get(f"{server.url}/readyz").status_code == 200
