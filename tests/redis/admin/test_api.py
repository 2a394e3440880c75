"""The admin API across replicas sharing a real redis-server."""

from __future__ import annotations

import time

import httpx

from tests.conftest import GatewayFactory
from tests.server.admin.test_api import ADMIN_KEY, v1_status


def test_revocation_reaches_another_replica(
    start_gateway: GatewayFactory, redis_server: str
) -> None:
    admin_side = start_gateway(server={"admin_key": ADMIN_KEY}, redis={"url": redis_server})
    replica = start_gateway(server={"admin_key": ADMIN_KEY}, redis={"url": redis_server})
    auth = {"authorization": f"Bearer {ADMIN_KEY}"}
    key = httpx.post(f"{admin_side.url}/admin/teams/test/keys", headers=auth).json()
    assert v1_status(replica, key["key"]) == 200  # the replica caches the key now
    httpx.delete(f"{admin_side.url}/admin/keys/{key['id']}", headers=auth)
    # Once the replica's cache of the key expires (admission.cache_ttl_s, 1 s); the deadline only
    # keeps a broken revocation from hanging the test.
    deadline = time.monotonic() + 10
    while v1_status(replica, key["key"]) != 401:
        assert time.monotonic() < deadline, "the replica still accepts a revoked key"
        time.sleep(0.02)
