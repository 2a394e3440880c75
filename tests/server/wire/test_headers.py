"""Headers a running gateway sends upstream: a client's `Idempotency-Key` is its team's, since
every team shares the gateway's upstream key and upstream may replay an answer by that key."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.config import AllowedPath
from tests.conftest import GatewayFactory, ServerThread

KEYS = {"a": "sk-gw-a-0123456789abcdef", "b": "sk-gw-b-0123456789abcdef"}
CLIENT_VALUE = "retry-of-order-42"
LINE = {
    "custom_id": "r", "method": "POST", "url": "/v1/chat/completions",
    "body": {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi."}]},
}  # fmt: skip


@pytest.fixture
def gateway(start_gateway: GatewayFactory, tmp_path: Path) -> ServerThread:
    teams = tmp_path / "teams.yaml"
    teams.write_text(
        "teams:\n"
        + "".join(
            f"  - name: {name}\n    tier: tier-5\n"
            f"    keys: [{{name: k, sha256: {hashlib.sha256(key.encode()).hexdigest()}}}]\n"
            for name, key in KEYS.items()
        )
    )
    allow = (AllowedPath("POST", "/v1/evals", "free"),)
    return start_gateway(admission={"teams_file": str(teams)}, passthrough={"allow": allow})


def auth(team: str) -> dict[str, str]:
    return {"authorization": f"Bearer {KEYS[team]}"}


def chat(url: str, team: str, headers: dict[str, str]) -> httpx.Response:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi."}]}
    return httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers)


def responses(url: str, team: str, headers: dict[str, str]) -> httpx.Response:
    body = {"model": "gpt-4o", "input": "Hi."}
    return httpx.post(f"{url}/v1/responses", json=body, headers=headers)


def upload(url: str, team: str, headers: dict[str, str]) -> httpx.Response:
    data = {"purpose": "user_data"}
    return httpx.post(f"{url}/v1/files", data=data, files={"file": b"notes"}, headers=headers)


def batch(url: str, team: str, headers: dict[str, str]) -> httpx.Response:
    lines = httpx.post(
        f"{url}/v1/files", data={"purpose": "batch"},
        files={"file": ("in.jsonl", json.dumps(LINE).encode())}, headers=auth(team),
    ).json()["id"]  # fmt: skip
    body = {
        "input_file_id": lines, "endpoint": "/v1/chat/completions", "completion_window": "24h"
    }  # fmt: skip
    return httpx.post(f"{url}/v1/batches", json=body, headers=headers)


def passthrough(url: str, team: str, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{url}/v1/evals", json={"name": "x"}, headers=headers)


CALLS: dict[str, tuple[str, Callable[[str, str, dict[str, str]], httpx.Response]]] = {
    "chat": ("/v1/chat/completions", chat),
    "responses": ("/v1/responses", responses),
    "upload": ("/v1/files", upload),
    "batch": ("/v1/batches", batch),
    "pass-through": ("/v1/evals", passthrough),
}


def upstream_requests(simulator: ServerThread) -> list[dict[str, Any]]:
    return list(httpx.get(f"{simulator.url}/_sim/requests").json()["data"])


@pytest.mark.parametrize("call", CALLS)
def test_an_idempotency_key_goes_upstream_as_the_teams_own(
    gateway: ServerThread, simulator: ServerThread, call: str
) -> None:
    """Two teams sending the same key send upstream two different ones; a team's retries
    send the same one."""
    path, send = CALLS[call]
    httpx.delete(f"{simulator.url}/_sim/requests")
    for team in ("a", "a", "b"):
        answer = send(gateway.url, team, {**auth(team), "idempotency-key": CLIENT_VALUE})
        assert answer.status_code < 500, answer.text
    sent = [
        r["headers"].get("idempotency-key")
        for r in upstream_requests(simulator)
        if (r["method"], r["path"]) == ("POST", path) and "idempotency-key" in r["headers"]
    ]
    assert len(sent) == 3, sent
    first, retry, other = sent
    assert first == retry  # the team's own retries still share a key
    assert other != first  # never the other team's
    assert CLIENT_VALUE not in sent
