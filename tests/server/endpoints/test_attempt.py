"""What an attempt sends upstream besides its body, seen in the simulated upstream's request log:
the query string of a governed POST stays behind; a GET's, and an allowed path's, go on."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pytest

from gateway.config import AllowedPath
from tests.conftest import CLIENT_KEY, GatewayFactory, ServerThread

AUTH = {"Authorization": f"Bearer {CLIENT_KEY}"}


def upstream_log(simulator: ServerThread) -> list[dict[str, Any]]:
    return list(httpx.get(f"{simulator.url}/_sim/requests").json()["data"])


def bodies(text: str) -> dict[str, dict[str, Any]]:
    """A body mentioning `text` for each governed POST endpoint."""
    return {
        "/v1/chat/completions": {
            "model": "gpt-4o", "messages": [{"role": "user", "content": text}],
        },
        "/v1/responses": {"model": "gpt-4o", "input": text},
        "/v1/completions": {"model": "gpt-3.5-turbo-instruct", "prompt": text},
        "/v1/embeddings": {"model": "text-embedding-3-small", "input": text},
        "/v1/moderations": {"input": text},
        "/v1/images/generations": {"model": "dall-e-2", "prompt": text, "size": "256x256"},
        "/v1/audio/speech": {"model": "tts-1", "input": text, "voice": "alloy"},
    }  # fmt: skip


@pytest.mark.parametrize("query", ["api-version=2024-10-21", "stream=true&include[]=x"])
def test_a_governed_post_sends_upstream_no_query_string(
    gateway: ServerThread, simulator: ServerThread, query: str
) -> None:
    """OpenAI reads a POST's parameters from its body, which the gateway checks, prices and
    patches; a query string there would reach upstream unread by anything that governs (an
    Azure client's `api-version` is harmless, and still answered, not refused)."""
    text = f"Hello {secrets.token_hex(8)}"
    for path, body in bodies(text).items():
        answer = httpx.post(f"{gateway.url}{path}?{query}", json=body, headers=AUTH, timeout=30)
        assert answer.status_code == 200, (path, answer.text)
    sent = [(entry["path"], entry["query"]) for entry in upstream_log(simulator)
            if text in entry["raw"]]  # fmt: skip
    assert sent == [(path, "") for path in bodies(text)]


def test_a_translated_responses_post_sends_upstream_no_query_string(
    gateway: ServerThread, simulator: ServerThread
) -> None:
    text = f"Hello {secrets.token_hex(8)}"
    body = {"model": "o1-mini", "input": text}
    answer = httpx.post(f"{gateway.url}/v1/responses?api-version=1", json=body, headers=AUTH)
    assert answer.status_code == 200, answer.text
    sent = [(entry["path"], entry["query"]) for entry in upstream_log(simulator)
            if text in entry["raw"]]  # fmt: skip
    assert sent == [("/v1/chat/completions", "")]


def test_a_retrieve_sends_upstream_the_query_it_reads(
    gateway: ServerThread, simulator: ServerThread
) -> None:
    made = httpx.post(
        f"{gateway.url}/v1/responses?api-version=1", json={"model": "gpt-4o", "input": "Hi"},
        headers=AUTH,
    ).json()  # fmt: skip
    query = "include[]=message.output_text.logprobs"
    path = f"/v1/responses/{made['id']}"
    assert httpx.get(f"{gateway.url}{path}?{query}", headers=AUTH).status_code == 200
    sent = [entry["query"] for entry in upstream_log(simulator)
            if (entry["method"], entry["path"]) == ("GET", path)]  # fmt: skip
    assert sent == [query]


def test_an_allowed_path_sends_upstream_its_query_on_a_post_too(
    start_gateway: GatewayFactory, simulator: ServerThread
) -> None:
    allow = (AllowedPath(method="POST", path="/v1/evals", charge="free"),)
    gateway = start_gateway(passthrough={"allow": allow})
    name = secrets.token_hex(8)
    httpx.post(f"{gateway.url}/v1/evals?include[]=x", json={"name": name}, headers=AUTH)
    sent = [entry["query"] for entry in upstream_log(simulator) if name in entry["raw"]]
    assert sent == ["include[]=x"]
