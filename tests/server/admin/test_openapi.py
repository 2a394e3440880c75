"""The admin API's OpenAPI description on a running gateway: served behind the admin key, and
the real answers match it (its validity: tests/unit/admin; schemathesis: tests/fuzz/admin)."""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema
import pytest

from gateway.admin.openapi import admin_openapi
from tests.conftest import CLIENT_KEY, GatewayFactory, ServerThread, base_config

ADMIN_KEY = "adm-0123456789-0123456789-0123456789"
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture
def gateway(start_gateway: GatewayFactory) -> ServerThread:
    return start_gateway(server={"admin_key": ADMIN_KEY})


def test_the_description_is_served_behind_the_admin_key(gateway: ServerThread) -> None:
    url = f"{gateway.url}/admin/openapi.json"
    assert httpx.get(url).status_code == 401
    # A team's key is no admin key: it sees neither the description nor any team's usage.
    team = {"authorization": f"Bearer {CLIENT_KEY}"}
    for path in ["/admin/openapi.json", "/admin/teams/test/usage", "/admin/teams"]:
        response = httpx.get(f"{gateway.url}{path}", headers=team)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_admin_key"
    response = httpx.get(url, headers=ADMIN)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == admin_openapi(base_config())
    # What must exist in the config is listed, so a client can see the choices.
    team = response.json()["components"]["schemas"]["TeamCreate"]["properties"]
    assert team["tier"]["enum"] == ["free", "tier-1", "tier-2", "tier-3", "tier-4", "tier-5"]


def test_without_an_admin_key_there_is_no_description(start_gateway: GatewayFactory) -> None:
    server = start_gateway()
    response = httpx.get(f"{server.url}/admin/openapi.json", headers=ADMIN)
    assert response.status_code == 404


def validate(spec: dict[str, Any], schema_name: str, value: Any) -> None:
    schema = {**spec["components"]["schemas"][schema_name], "$defs": {}}
    resolver_root = {"components": spec["components"], **schema}
    jsonschema.Draft202012Validator(
        resolver_root, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).validate(value)


def test_real_answers_match_the_description(gateway: ServerThread) -> None:
    spec = admin_openapi(base_config())
    with httpx.Client(base_url=f"{gateway.url}/admin", headers=ADMIN) as admin:
        team = admin.post(
            "/teams",
            json={
                "name": "web", "tier": "tier-2", "budget_usd": "12.5", "strict": True,
                "limits": {"requests_per_minute": 5, "models": {"gpt-4o": {"messages_per_week": 3}}},
                "models": ["gpt-4o"], "routing_policy": "auto-cheap",
            },
        )  # fmt: skip
        assert team.status_code == 201, team.text
        validate(spec, "Team", team.json())
        validate(spec, "Team", admin.patch("/teams/web", json={"budget_usd": None}).json())
        key = admin.post("/teams/web/keys", json={"name": "ci", "limits": {"tokens_per_minute": 9}})
        assert key.status_code == 201
        validate(spec, "KeyCreated", key.json())
        validate(spec, "Key", admin.get("/teams/web/keys").json()["data"][0])
        validate(spec, "Usage", admin.get("/teams/web/usage").json())
        retiring = admin.get("/models/retiring", params={"within_days": 1000}).json()
        assert retiring["data"], "o1-preview shuts down within 1000 days of the simulator's day"
        validate(spec, "Retiring", retiring)
        validate(spec, "Error", admin.get("/models/retiring?within_days=-1").json())
        validate(spec, "Key", admin.delete(f"/keys/{key.json()['id']}").json())
        validate(spec, "TeamDeleted", admin.delete("/teams/web").json())
        validate(spec, "Error", admin.get("/teams/web").json())
        retired = admin.post("/teams", json={"name": "web", "tier": "tier-2"})
        assert retired.status_code == 409
        validate(spec, "Error", retired.json())
        heir = admin.post("/teams", json={"name": "web", "tier": "tier-2", "inherit": True})
        assert heir.status_code == 201 and "inherited" in heir.json()
        validate(spec, "TeamCreated", heir.json())
