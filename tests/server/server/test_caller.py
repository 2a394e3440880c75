"""Who calls, over a real socket with the openai SDK: with an anonymous team configured, only
a request without a key is served as it; any key that fails is a 401."""

from __future__ import annotations

import httpx
import openai
import pytest

from gateway.runtime.gateway import SANDBOX_KEY
from tests.conftest import CLIENT_KEY, GatewayFactory, ServerThread, scrape
from tests.server.admin.test_api import ADMIN_KEY


def sdk(server: ServerThread, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)


def refused_code(client: openai.OpenAI) -> str | None:
    with pytest.raises(openai.AuthenticationError) as refused:
        client.models.list()
    return refused.value.code


def test_a_key_that_fails_is_refused_though_an_anonymous_team_is_configured(
    start_gateway: GatewayFactory,
) -> None:
    server = start_gateway(
        server={"admin_key": ADMIN_KEY},
        admission={"anonymous_team": "guests", "cache_ttl_s": 0},
    )
    with httpx.Client(
        base_url=f"{server.url}/admin", headers={"authorization": f"Bearer {ADMIN_KEY}"}
    ) as admin:
        made = admin.post("/teams/test/keys", json={"name": "doomed"}).json()
        assert sdk(server, made["key"]).models.list().data
        assert admin.delete(f"/keys/{made['id']}").json()["revoked"] is True
    assert refused_code(sdk(server, made["key"])) == "invalid_api_key"  # revoked
    assert refused_code(sdk(server, "sk-gw-made-up-0123456789abcdef")) == "invalid_api_key"
    # The simulator's sandbox key means nothing with a real upstream.
    assert refused_code(sdk(server, SANDBOX_KEY)) == "invalid_api_key"
    for header in ("Basic dXNlcjpwYXNz", "Bearer", "sk-gw-no-scheme"):
        answer = httpx.get(f"{server.url}/v1/models", headers={"authorization": header})
        assert answer.status_code == 401, header
        assert answer.json()["error"]["code"] == "invalid_api_key"
    # No key at all: the anonymous team; a good key: its own team.
    assert httpx.get(f"{server.url}/v1/models").status_code == 200
    assert sdk(server, CLIENT_KEY).models.list().data
    metrics = scrape(server.url)
    models = 'endpoint="models",model="",routed_model=""'
    assert f'gateway_requests_total{{{models},status_class="2xx",team="guests"}} 1.0' in metrics
    assert f'gateway_requests_total{{{models},status_class="4xx",team=""}} 6.0' in metrics
