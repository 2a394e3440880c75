"""The admin key's guard over a real socket: every action audited and counted, wrong keys
slowed per client address (counted here, never timed)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import orjson

from gateway.observability.audit import key_fingerprint
from tests.conftest import METRICS_KEY, GatewayFactory, ServerThread, scrape
from tests.server.admin.test_api import ADMIN_KEY, error_of

WRONG = "adm-wrong-0123456789-0123456789-012345"


def audit_lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_text().splitlines()]


def admin_client(server: ServerThread, key: str = ADMIN_KEY) -> httpx.Client:
    return httpx.Client(base_url=f"{server.url}/admin", headers={"authorization": f"Bearer {key}"})


def test_every_admin_action_is_audited_and_counted(
    start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    audit = tmp_path / "audit.jsonl"
    server = start_gateway(server={"admin_key": ADMIN_KEY}, observability={"audit_log": str(audit)})
    with admin_client(server) as admin:
        assert admin.post("/teams", json={"name": "search", "tier": "tier-3"}).status_code == 201
        assert admin.post("/teams", json={"name": "search", "tier": "tier-3"}).status_code == 409
        assert admin.patch("/teams/search", json={"budget_usd": 10}).status_code == 200
        created = admin.post("/teams/search/keys", json={"name": "ci"}).json()
        assert admin.get("/teams").status_code == 200  # reads are not audited
        assert admin.get("/teams/search/keys").status_code == 200
        assert admin.delete(f"/keys/{created['id']}").status_code == 200
        assert admin.post("/objects/file/file-abc", json={"team": "search"}).status_code == 200
        assert admin.delete("/teams/nobody").status_code == 404
        assert admin.delete("/teams/search").status_code == 200
    lines = audit_lines(audit)
    assert [(line["action"], line["target"], line["outcome"]) for line in lines] == [
        ("team.create", "search", "success"),
        ("team.create", "search", "error"),
        ("team.update", "search", "success"),
        ("key.create", created["id"], "success"),
        ("key.revoke", created["id"], "success"),
        ("object.assign", "file/file-abc", "success"),
        ("team.delete", "nobody", "error"),
        ("team.delete", "search", "success"),
    ]
    assert [line.get("team") for line in lines[3:6]] == ["search"] * 3
    assert (lines[1]["status"], lines[1]["error"]) == (409, "conflict")
    assert (lines[6]["status"], lines[6]["error"]) == (404, "not_found")
    for line in lines:
        assert line["log"] == "audit" and line["client"] == "127.0.0.1"
        assert line["admin"] == key_fingerprint(ADMIN_KEY)
        assert line["time"].endswith("+00:00")
    # Neither the admin key nor the key made are written anywhere in the log.
    text = audit.read_text()
    assert ADMIN_KEY not in text and created["key"] not in text
    metrics = scrape(server.url)
    for action, outcome, count in [
        ("team.create", "success", 1), ("team.create", "error", 1), ("team.update", "success", 1),
        ("key.create", "success", 1), ("key.revoke", "success", 1),
        ("object.assign", "success", 1), ("team.delete", "error", 1),
        ("team.delete", "success", 1),
    ]:  # fmt: skip
        series = f'gateway_admin_actions_total{{action="{action}",outcome="{outcome}"}}'
        assert f"{series} {count}.0" in metrics


def test_wrong_admin_keys_wait_longer_each_time_and_a_right_one_clears_them(
    start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    audit = tmp_path / "audit.jsonl"
    server = start_gateway(
        server={"admin_key": ADMIN_KEY, "auth_failure_delay_s": 0.02},
        observability={"audit_log": str(audit)},
    )
    with admin_client(server, WRONG) as wrong, admin_client(server) as right:
        for _ in range(4):
            refused = wrong.get("/teams")
            assert refused.status_code == 401
            assert error_of(refused)["code"] == "invalid_admin_key"
        assert right.get("/teams").status_code == 200  # after waiting its turn
        assert wrong.get("/teams").status_code == 401
    denied = [line for line in audit_lines(audit) if line["action"] == "authenticate"]
    assert [line["attempt"] for line in denied] == [1, 2, 3, 4, 1]
    assert [line["next_delay_s"] for line in denied] == [0.02, 0.04, 0.08, 0.16, 0.02]
    for line in denied:
        assert (line["outcome"], line["admin"], line["target"]) == (
            "denied",
            None,
            "GET /admin/teams",
        )
    assert WRONG not in audit.read_text()
    assert 'gateway_admin_actions_total{action="authenticate",outcome="denied"} 5.0' in scrape(
        server.url
    )


async def guess_at_once(url: str, key: str, count: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=60) as client:
        return await asyncio.gather(
            *(client.get(url, headers={"authorization": f"Bearer {key}"}) for _ in range(count))
        )


def test_concurrent_wrong_guesses_queue_and_the_queue_is_bounded(
    start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    """Ten guesses at once: checked one after the other, each waiting out the failures before
    it (0.05 s, doubling); the eighth would wait longer than 100 bases (5 s) and is refused
    unseen, as are the ones after it: nothing more waits in the gateway's memory."""
    audit = tmp_path / "audit.jsonl"
    server = start_gateway(
        server={"admin_key": ADMIN_KEY, "auth_failure_delay_s": 0.05},
        observability={"audit_log": str(audit)},
    )
    answers = asyncio.run(guess_at_once(f"{server.url}/admin/teams", WRONG, 10))
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [401] * 7 + [429] * 3
    for answer in answers:
        if answer.status_code == 429:
            assert error_of(answer)["code"] == "too_many_failed_keys"
            assert int(answer.headers["retry-after"]) >= 1
    lines = audit_lines(audit)
    denied = sorted(line["attempt"] for line in lines if line["outcome"] == "denied")
    assert denied == [1, 2, 3, 4, 5, 6, 7]
    assert [line["outcome"] for line in lines].count("throttled") == 3
    metrics = scrape(server.url)
    assert 'gateway_admin_actions_total{action="authenticate",outcome="throttled"} 3.0' in metrics


def test_wrong_metrics_keys_are_slowed_alike(start_gateway: GatewayFactory) -> None:
    server = start_gateway(server={"auth_failure_delay_s": 0.05})
    answers = asyncio.run(guess_at_once(f"{server.url}/metrics", WRONG, 10))
    assert sorted(answer.status_code for answer in answers) == [401] * 7 + [429] * 3
    assert all(
        error_of(answer)["code"] in ("invalid_metrics_key", "too_many_failed_keys")
        for answer in answers
    )
    assert METRICS_KEY not in answers[0].text
