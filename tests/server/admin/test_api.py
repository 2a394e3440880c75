"""The admin API over a real socket: auth, team and key CRUD, OpenAI-shaped errors."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import CLIENT_KEY, SIM_KEY, GatewayFactory, ServerThread

ADMIN_KEY = "adm-0123456789-0123456789-0123456789"


@pytest.fixture
def gateway(start_gateway: GatewayFactory) -> ServerThread:
    return start_gateway(server={"admin_key": ADMIN_KEY})


@pytest.fixture
def admin(gateway: ServerThread) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=f"{gateway.url}/admin", headers={"authorization": f"Bearer {ADMIN_KEY}"}
    ) as client:
        yield client


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    error: dict[str, Any] = body["error"]
    return error


def v1_status(server: ServerThread, key: str) -> int:
    return httpx.get(
        f"{server.url}/v1/models", headers={"authorization": f"Bearer {key}"}
    ).status_code


def test_without_an_admin_key_the_admin_api_does_not_exist(start_gateway: GatewayFactory) -> None:
    server = start_gateway()
    for method, path in [
        ("GET", "/admin/teams"),
        ("POST", "/admin/teams"),
        ("PUT", "/admin/teams"),
        ("DELETE", "/admin/keys/key_1"),
        ("GET", "/admin/teams/test/usage"),
    ]:
        response = httpx.request(
            method, f"{server.url}{path}", headers={"authorization": "Bearer anything"}
        )
        assert response.status_code == 404, (method, path)
        assert error_of(response) == {
            "message": f"Invalid URL ({method} {path})",
            "type": "invalid_request_error",
            "param": None,
            "code": "unknown_url",
        }


def test_the_admin_key_is_required(gateway: ServerThread) -> None:
    url = f"{gateway.url}/admin/teams"
    missing = httpx.get(url)
    assert missing.status_code == 401
    assert error_of(missing)["code"] == "missing_admin_key"
    for wrong in ["adm", ADMIN_KEY + "x", CLIENT_KEY]:
        response = httpx.get(url, headers={"authorization": f"Bearer {wrong}"})
        assert response.status_code == 401
        assert error_of(response)["code"] == "invalid_admin_key"
    # Without the key, nothing tells which admin paths exist.
    assert httpx.put(url).status_code == 401
    assert httpx.get(f"{gateway.url}/admin/nothing-here").status_code == 401


def test_unknown_admin_paths_and_methods_with_the_key(admin: httpx.Client) -> None:
    unknown = admin.get("/nothing-here")
    assert unknown.status_code == 404 and error_of(unknown)["code"] == "unknown_url"
    wrong_method = admin.put("/teams")
    assert wrong_method.status_code == 405
    assert error_of(wrong_method)["code"] == "method_not_allowed"


def test_team_crud(admin: httpx.Client) -> None:
    created = admin.post(
        "/teams",
        json={
            "name": "web",
            "tier": "tier-2",
            "budget_usd": 250.5,
            "limits": {"requests_per_minute": 100},
            "models": ["gpt-4o-mini"],
        },
    )
    assert created.status_code == 201
    team = created.json()
    assert team["object"] == "team" and team["created_at"] > 0
    assert (team["name"], team["tier"], team["budget_usd"]) == ("web", "tier-2", 250.5)
    assert team["limits"] == {"requests_per_minute": 100}
    assert team["effective"] == {
        "budget_usd": 250.5,
        "limits": {"requests_per_minute": 100, "tokens_per_minute": 450_000},
        "models": ["gpt-4o-mini"],
    }
    assert admin.get("/teams/web").json() == team
    names = [t["name"] for t in admin.get("/teams").json()["data"]]
    assert names == ["test", "web"]  # `test` comes from the teams file

    patched = admin.patch(
        "/teams/web", json={"budget_usd": None, "limits": {"tokens_per_minute": 7}}
    )
    assert patched.status_code == 200
    team = patched.json()
    assert team["budget_usd"] is None and team["effective"]["budget_usd"] == 500.0  # tier-2's
    assert team["limits"] == {"requests_per_minute": 100, "tokens_per_minute": 7}
    assert admin.get("/teams/web").json() == team

    deleted = admin.delete("/teams/web")
    assert deleted.json() == {"object": "team", "name": "web", "deleted": True}
    gone = admin.get("/teams/web")
    assert gone.status_code == 404
    assert error_of(gone) == {
        "message": "Team 'web' was not found.",
        "type": "invalid_request_error",
        "param": None,
        "code": "not_found",
    }
    assert admin.delete("/teams/web").status_code == 404
    assert admin.patch("/teams/web", json={"tier": "tier-1"}).status_code == 404


def test_money_is_exact_to_the_micro_dollar(admin: httpx.Client) -> None:
    team = admin.post("/teams", json={"name": "m", "tier": "tier-1", "budget_usd": "0.000001"})
    assert team.json()["budget_usd"] == 0.000001
    too_fine = admin.post("/teams", json={"name": "n", "tier": "tier-1", "budget_usd": 0.0000001})
    assert too_fine.status_code == 400 and error_of(too_fine)["param"] == "budget_usd"


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        ({"name": "x", "tier": "gold"}, 400, "invalid_value", "tier"),
        ({"name": "x"}, 400, "invalid_value", "tier"),
        ({"tier": "tier-1"}, 400, "invalid_value", "name"),
        ({"name": "x y", "tier": "tier-1"}, 400, "invalid_value", "name"),
        ({"name": "x", "tier": "tier-1", "models": ["gpt-5"]}, 400, "invalid_value", "models[0]"),
        ({"name": "x", "tier": "tier-1", "limits": {"rpm": 1}}, 400, "invalid_value", "limits.rpm"),
        ({"name": "x", "tier": "tier-1", "owner": "me"}, 400, "invalid_value", "owner"),
        ({"name": "test", "tier": "tier-1"}, 409, "conflict", "name"),
    ],
)
def test_invalid_teams_are_refused(
    admin: httpx.Client, body: dict[str, Any], status: int, code: str, param: str
) -> None:
    response = admin.post("/teams", json=body)
    assert response.status_code == status
    error = error_of(response)
    assert (error["code"], error["param"]) == (code, param)
    assert [t["name"] for t in admin.get("/teams").json()["data"]] == ["test"]


def test_bodies_must_be_json_objects(admin: httpx.Client) -> None:
    broken = admin.post("/teams", content=b"{nope", headers={"content-type": "application/json"})
    assert broken.status_code == 400 and error_of(broken)["code"] == "invalid_json"
    array = admin.post("/teams", json=["web"])
    assert (
        array.status_code == 400 and error_of(array)["message"] == "The body must be a JSON object."
    )


def test_keys_are_shown_once_work_at_once_and_stop_when_revoked(
    admin: httpx.Client, gateway: ServerThread
) -> None:
    created = admin.post(
        "/teams/test/keys", json={"name": "ci", "limits": {"requests_per_minute": 5}}
    )
    assert created.status_code == 201
    key = created.json()
    secret = key.pop("key")
    assert secret.startswith("sk-gw-") and len(secret) == 46
    assert key["id"].startswith("key_") and key["status"] == "active"
    assert key["limits"] == {"requests_per_minute": 5}
    assert v1_status(gateway, secret) == 200

    listed = admin.get("/teams/test/keys")
    assert secret[6:-4] not in listed.text and "sha256" not in listed.text
    assert key in listed.json()["data"]
    assert all("key" not in k for k in listed.json()["data"])

    revoked = admin.delete(f"/keys/{key['id']}")
    assert revoked.status_code == 200
    assert (revoked.json()["status"], revoked.json()["revoked"]) == ("revoked", True)
    assert secret[6:-4] not in revoked.text
    # This replica knows at once; other replicas may take up to cache_ttl_s (1 s).
    assert v1_status(gateway, secret) == 401
    assert admin.delete("/keys/key_0000000000000000").status_code == 404


@pytest.mark.parametrize(
    ("path", "body", "status", "param"),
    [
        ("/teams/test/keys", {"expires_at": 1}, 400, "expires_at"),
        ("/teams/test/keys", {"expires_at": "tomorrow"}, 400, "expires_at"),
        ("/teams/test/keys", {"name": 5}, 400, "name"),
        ("/teams/test/keys", {"secret": "sk-gw-mine"}, 400, "secret"),
        ("/teams/test/keys", {"limits": {"profile": "nope"}}, 400, "limits.profile"),
        ("/teams/nobody/keys", {}, 404, None),
    ],
)
def test_invalid_keys_are_refused(
    admin: httpx.Client, path: str, body: dict[str, Any], status: int, param: str | None
) -> None:
    response = admin.post(path, json=body)
    assert response.status_code == status
    assert error_of(response)["param"] == param
    assert len(admin.get("/teams/test/keys").json()["data"]) == 1  # the teams file's key only


def test_expiring_keys_show_their_expiry(admin: httpx.Client) -> None:
    expires_at = int(time.time()) + 3600
    key = admin.post("/teams/test/keys", json={"expires_at": expires_at}).json()
    assert (key["expires_at"], key["status"]) == (expires_at, "active")


def test_deleting_a_team_stops_its_keys(admin: httpx.Client, gateway: ServerThread) -> None:
    assert v1_status(gateway, CLIENT_KEY) == 200
    assert admin.delete("/teams/test").status_code == 200
    assert v1_status(gateway, CLIENT_KEY) == 401
    assert admin.get("/teams/test/keys").status_code == 404


def test_usage_reports_the_teams_budget(admin: httpx.Client) -> None:
    usage = admin.get("/teams/test/usage")
    assert usage.status_code == 200
    body = usage.json()
    assert (body["team"], body["budget_usd"]) == ("test", 50_000.0)  # tier-5's
    assert body["remaining_usd"] == 50_000.0 - body["spent_usd"] - body["held_usd"]
    admin.patch("/teams/test", json={"budget_usd": 12})
    assert admin.get("/teams/test/usage").json()["budget_usd"] == 12.0
    assert admin.get("/teams/nobody/usage").status_code == 404
    past = admin.get("/teams/test/usage", params={"month": "2025-02"}).json()
    assert (past["period"], past["spent_micros"], past["rows"]) == ("2025-02", 0, [])
    assert past["by_model"] == past["by_endpoint"] == past["by_key"] == {}
    assert admin.get("/teams/test/usage", params={"month": "2025-13"}).status_code == 400
    # Years a date cannot hold (0), or whose next month it cannot (9999-12: `resets_at`).
    for month in ("0000-01", "9999-12"):
        refused = admin.get("/teams/test/usage", params={"month": month})
        assert refused.status_code == 400, refused.text
        assert error_of(refused)["code"] == "invalid_value"


def test_retiring_models_take_ascii_digits_only(admin: httpx.Client) -> None:
    # `str.isdigit` is true of superscripts and other scripts' digits, which `int` refuses.
    for days in ("\u00b2", "\u0661", "-1", "1e3", ""):
        refused = admin.get("/models/retiring", params={"within_days": days})
        assert refused.status_code == 400, (days, refused.text)
        assert error_of(refused)["code"] == "invalid_value"
    assert admin.get("/models/retiring", params={"within_days": "30"}).status_code == 200


def test_an_object_the_gateway_did_not_make_is_nobodys_until_assigned(
    admin: httpx.Client, gateway: ServerThread, simulator: ServerThread
) -> None:
    # Made straight with the account's key: no team owns it.
    made = httpx.post(
        f"{simulator.url}/v1/files",
        headers={"Authorization": f"Bearer {SIM_KEY}"},
        files={"file": ("old.jsonl", b'{"a": 1}\n')},
        data={"purpose": "batch"},
    ).json()
    team = {"Authorization": f"Bearer {CLIENT_KEY}"}
    assert httpx.get(f"{gateway.url}/v1/files/{made['id']}", headers=team).status_code == 404
    assigned = admin.post(f"/objects/file/{made['id']}", json={"team": "test"})
    assert assigned.status_code == 200
    assert assigned.json() == {"object": "owner", "kind": "file", "id": made["id"], "team": "test"}
    found = httpx.get(f"{gateway.url}/v1/files/{made['id']}", headers=team)
    assert found.status_code == 200 and found.json()["id"] == made["id"]
    listed = httpx.get(f"{gateway.url}/v1/files", headers=team).json()
    assert made["id"] in [f["id"] for f in listed["data"]]
    assert admin.post(f"/objects/thread/{made['id']}", json={"team": "test"}).status_code == 400
    assert admin.post(f"/objects/file/{made['id']}", json={"team": "nobody"}).status_code == 404
    assert (
        admin.post(f"/objects/file/{made['id']}", json={"team": "test", "x": 1}).status_code == 400
    )
