"""The chat route's short path answers errors exactly as the full Starlette stack would."""

from __future__ import annotations

import httpx
import pytest

from gateway.endpoints import chat as proxy
from tests.conftest import CLIENT_KEY, ServerThread, scrape

AUTH = {"authorization": f"Bearer {CLIENT_KEY}"}
CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


def test_gateway_errors_keep_their_status_and_shape(gateway: ServerThread) -> None:
    resp = httpx.post(f"{gateway.url}/v1/chat/completions", headers=AUTH, content=b"{not json")
    assert resp.status_code == 400
    assert resp.json()["error"]["type"] == "invalid_request_error"
    assert resp.headers["x-request-id"].startswith("req_")
    resp = httpx.post(f"{gateway.url}/v1/chat/completions", json=CHAT)
    assert resp.status_code == 401 and resp.json()["error"]["code"] == "missing_api_key"


def test_other_methods_still_go_through_the_router(
    gateway: ServerThread, simulator: ServerThread
) -> None:
    # PUT on the chat path is not in the endpoint table: the router refuses it, and nothing
    # goes upstream. GET goes through the router to the team's stored completions.
    before = httpx.get(f"{simulator.url}/_sim/requests").json()["data"]
    resp = httpx.put(f"{gateway.url}/v1/chat/completions", headers=AUTH)
    assert resp.status_code == 404
    assert resp.json()["error"]["message"].startswith("Invalid URL (PUT /v1/chat/completions)")
    assert httpx.get(f"{simulator.url}/_sim/requests").json()["data"] == before
    listed = httpx.get(f"{gateway.url}/v1/chat/completions", headers=AUTH)
    assert listed.status_code == 200 and listed.json()["data"] == []
    assert httpx.get(f"{simulator.url}/_sim/requests").json()["data"] == before


def test_an_unexpected_error_is_a_logged_500_and_counted(
    gateway: ServerThread, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(proxy.ChatRequest, "serve_with_fallbacks", broken)
    resp = httpx.post(f"{gateway.url}/v1/chat/completions", headers=AUTH, json=CHAT)
    assert resp.status_code == 500
    assert resp.json()["error"] == {
        "message": "The gateway had an internal error.",
        "type": "server_error",
        "param": None,
        "code": "internal_error",
    }
    assert "a bug" not in resp.text  # never a stack trace to the caller
    assert any("unhandled error on POST /v1/chat/completions" in r.message for r in caplog.records)
    metrics = scrape(gateway.url)
    assert any(
        line.startswith("gateway_requests_total") and 'status_class="5xx"' in line
        for line in metrics.splitlines()
    )
