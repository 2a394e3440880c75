"""The admin API across replicas sharing a real redis-server."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest

from tests.conftest import CLIENT_KEY, GatewayFactory, ServerThread
from tests.server.admin.test_api import ADMIN_KEY, error_of, v1_status


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


def chat_status(server: ServerThread, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/chat/completions",
        headers=headers or {},
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )


def test_the_anonymous_teams_changes_reach_every_replica(
    start_gateway: GatewayFactory, redis_server: str
) -> None:
    # The anonymous team is a team like any other: a budget the admin API lowers, models it
    # narrows, its deletion, apply to its callers on every replica within cache_ttl_s.
    sections: dict[str, Any] = {
        "server": {"admin_key": ADMIN_KEY},
        "redis": {"url": redis_server},
        "admission": {"anonymous_team": "guests"},
    }
    admin_side = start_gateway(**sections)
    replica = start_gateway(**sections)
    auth = {"authorization": f"Bearer {ADMIN_KEY}"}
    for server in (admin_side, replica):
        assert chat_status(server).status_code == 200
    answer = httpx.patch(
        f"{admin_side.url}/admin/teams/guests", headers=auth, json={"budget_usd": "0.000001"}
    )
    assert answer.status_code == 200, answer.text

    def refused(server: ServerThread, code: str) -> bool:
        answer = chat_status(server)
        return answer.status_code != 200 and answer.json()["error"]["code"] == code

    deadline = time.monotonic() + 10
    for server in (admin_side, replica):
        while not refused(server, "insufficient_quota"):
            assert time.monotonic() < deadline, "the anonymous team's old budget still applies"
            time.sleep(0.05)
    assert httpx.delete(f"{admin_side.url}/admin/teams/guests", headers=auth).status_code == 200
    for server in (admin_side, replica):
        while not refused(server, "missing_api_key"):
            assert time.monotonic() < deadline, "a deleted anonymous team is still served"
            time.sleep(0.05)


def test_a_replica_starting_does_not_undo_an_admin_change_to_a_file_team(
    start_gateway: GatewayFactory, redis_server: str
) -> None:
    # Team `test` comes from the teams file. The admin lowers its budget; a replica (re)starting
    # loads the same, unchanged file: the lowered budget stays, on every replica.
    sections: dict[str, Any] = {"server": {"admin_key": ADMIN_KEY}, "redis": {"url": redis_server}}
    admin_side = start_gateway(**sections)
    auth = {"authorization": f"Bearer {ADMIN_KEY}"}
    client = {"authorization": f"Bearer {CLIENT_KEY}"}
    answer = httpx.patch(
        f"{admin_side.url}/admin/teams/test", headers=auth, json={"budget_usd": "0.000001"}
    )
    assert answer.status_code == 200, answer.text
    assert chat_status(admin_side, client).json()["error"]["type"] == "insufficient_quota"
    restarted = start_gateway(**sections)
    assert httpx.get(f"{restarted.url}/admin/teams/test", headers=auth).json()["budget_usd"] == (
        0.000001
    )
    time.sleep(1.2)  # past admission.cache_ttl_s: both replicas read the record again
    for server in (admin_side, restarted):
        answer = chat_status(server, client)
        assert answer.status_code == 429, "the file's budget is back"
        assert answer.json()["error"]["type"] == "insufficient_quota"


def test_a_team_name_with_a_line_break_is_refused(
    start_gateway: GatewayFactory, redis_server: str
) -> None:
    # "search\n" would be a second team that lists, logs and prints as "search" does.
    server = start_gateway(server={"admin_key": ADMIN_KEY}, redis={"url": redis_server})
    auth = {"authorization": f"Bearer {ADMIN_KEY}"}
    for name in ("search\n", "search\n\n", "\nsearch"):
        answer = httpx.post(
            f"{server.url}/admin/teams", headers=auth, json={"name": name, "tier": "tier-1"}
        )
        assert answer.status_code == 400, (name, answer.text)
        assert answer.json()["error"]["param"] == "name"
    names = [t["name"] for t in httpx.get(f"{server.url}/admin/teams", headers=auth).json()["data"]]
    assert names == ["test"]


def test_a_deleted_teams_name_is_not_given_to_a_new_team_unless_it_inherits(
    start_gateway: GatewayFactory, redis_server: str, tmp_path: Path
) -> None:
    # Everything a team owns (files, stored responses, spend, ...) is kept under its name, and
    # deleting the team cannot purge it all. A new team of that name would get it: the admin
    # API refuses the name unless the request says the new team inherits.
    audit = tmp_path / "audit.jsonl"
    server = start_gateway(
        server={"admin_key": ADMIN_KEY},
        redis={"url": redis_server},
        observability={"audit_log": str(audit)},
    )
    admin = httpx.Client(
        base_url=f"{server.url}/admin", headers={"authorization": f"Bearer {ADMIN_KEY}"}
    )
    assert admin.post("/teams", json={"name": "old", "tier": "tier-5"}).status_code == 201
    old_key = admin.post("/teams/old/keys").json()["key"]
    doc = sdk_of(server, old_key).files.create(
        file=("notes.txt", b"old's own notes"), purpose="assistants"
    )
    deleted_before = int(time.time())
    assert admin.delete("/teams/old").status_code == 200

    refused = admin.post("/teams", json={"name": "old", "tier": "tier-1"})
    assert refused.status_code == 409, refused.text
    error = error_of(refused)
    assert (error["type"], error["code"], error["param"]) == (
        "invalid_request_error", "team_name_retired", "name",
    )  # fmt: skip
    assert "'old' belonged to a team deleted" in error["message"]
    assert '"inherit": true' in error["message"] and "--inherit" in error["message"]
    # Nothing was made: no team `old`, so no key can be made for it, and the file stays
    # unreachable by every key there is.
    assert admin.get("/teams/old").status_code == 404
    assert admin.post("/teams/old/keys").status_code == 404
    assert v1_status(server, old_key) == 401
    other = sdk_of(server, CLIENT_KEY)
    with pytest.raises(openai.NotFoundError):
        other.files.content(doc.id)
    assert doc.id not in [f.id for f in other.files.list()]
    # A bad flag is a 400, not a guess.
    bad = admin.post("/teams", json={"name": "old", "tier": "tier-1", "inherit": "yes"})
    assert bad.status_code == 400 and error_of(bad)["param"] == "inherit"

    inherited = admin.post("/teams", json={"name": "old", "tier": "tier-1", "inherit": True})
    assert inherited.status_code == 201, inherited.text
    deleted_at = inherited.json()["inherited"]["deleted_at"]
    assert deleted_before <= deleted_at <= time.time()
    new_key = admin.post("/teams/old/keys").json()["key"]
    heir = sdk_of(server, new_key)
    assert heir.files.content(doc.id).read() == b"old's own notes"
    assert [f.id for f in heir.files.list()] == [doc.id]
    [create] = [
        line
        for line in (orjson.loads(text) for text in audit.read_text().splitlines())
        if line["action"] == "team.create" and line["outcome"] == "success"
    ][1:]
    assert create["inherited"] == {"deleted_at": deleted_at}
    # The name is a team's again, so the next create is the plain conflict; a second delete
    # retires it once more.
    again = admin.post("/teams", json={"name": "old", "tier": "tier-1", "inherit": True})
    assert error_of(again)["code"] == "conflict"
    assert admin.delete("/teams/old").status_code == 200
    assert error_of(admin.post("/teams", json={"name": "old", "tier": "tier-1"}))["code"] == (
        "team_name_retired"
    )


def sdk_of(server: ServerThread, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)


def test_assigning_an_object_keeps_its_owner_record_expiring_when_upstream_deletes_it(
    start_gateway: GatewayFactory, redis_server: str, request: pytest.FixtureRequest
) -> None:
    """A batch file upstream deletes in 30 days, assigned to another team (or again to its
    own): its owner record still goes a day after upstream deletes it, not never."""
    import redis

    gateway = start_gateway(server={"admin_key": ADMIN_KEY}, redis={"url": redis_server})
    store = redis.Redis.from_url(redis_server)
    admin = httpx.Client(
        base_url=f"{gateway.url}/admin", headers={"authorization": f"Bearer {ADMIN_KEY}"}
    )
    request.addfinalizer(admin.close)
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=CLIENT_KEY, max_retries=0)
    made = client.files.create(file=("in.jsonl", b"{}\n"), purpose="batch")
    key = f"o1gw:owner:file:{made.id}"
    left = store.ttl(key)
    assert left > 30 * 86400
    assert admin.post("/teams", json={"name": "other", "tier": "tier-5"}).status_code == 201
    for team in ("other", "other", "test"):
        assigned = admin.post(f"/objects/file/{made.id}", json={"team": team})
        assert assigned.status_code == 200
        assert store.get(key) == team.encode()
        assert left - 5 <= store.ttl(key) <= left + 3  # rounded up a second each time
    assert store.zscore("o1gw:owned:{t:other}:file", made.id) is None
    assert store.zscore("o1gw:owned:{t:test}:file", made.id) is not None
    # A stored chat completion: kept as upstream keeps one, 30 days and the day, from now.
    hi: Any = [{"role": "user", "content": "hi"}]
    chat = client.chat.completions.create(model="gpt-4o-mini", messages=hi, store=True).id
    assert admin.post(f"/objects/chat_completion/{chat}", json={"team": "other"}).status_code == 200
    assert 31 * 86400 - 60 <= store.ttl(f"o1gw:owner:chat_completion:{chat}") <= 31 * 86400
