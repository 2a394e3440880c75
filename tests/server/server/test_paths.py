"""Every spelling of a path but the canonical one is refused at the edge, and nothing of it
reaches upstream: a gateway that checks `/v1/organization` on the decoded path must not forward
`/v1/x/../organization` to an upstream that normalises it."""

from __future__ import annotations

import socket

import httpx
import pytest

from tests.conftest import CLIENT_KEY, ServerThread

SPELLINGS = [
    "/v1//chat/completions",
    "/v1/chat/completions/",
    "/v1/./chat/completions",
    "/v1/x/../chat/completions",
    "/v1/chat/%63ompletions",
    "/v1/chat%2Fcompletions",
    "/v1/%2e%2e/v1/organization/usage/completions",
    "/v1/organization%2Fusage",
    "/v1/x/..%2Forganization/usage",
    "/v1/./organization/usage/completions",
    "/v1//organization/usage/completions",
    "/v1/responses/resp_1/..",
    "/v1/files/file-1%2F..%2F..%2Forganization",
    "/v1/Chat/Completions",
    "/V1/chat/completions",
    "/v1/chat/completions;x=1",
]


def raw_request(server: ServerThread, method: str, path: str) -> tuple[int, bytes]:
    """Send the path byte for byte (HTTP clients normalise dot segments and escapes)."""
    host, port = server.url.removeprefix("http://").split(":")
    body = b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}'
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {CLIENT_KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(head.encode() + body)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    status = int(answer.split(b" ", 2)[1])
    return status, answer.split(b"\r\n\r\n", 1)[1]


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
@pytest.mark.parametrize("path", SPELLINGS)
def test_no_other_spelling_reaches_upstream(
    gateway: ServerThread, simulator: ServerThread, path: str, method: str
) -> None:
    before = httpx.get(f"{simulator.url}/_sim/requests").json()["data"]
    status, body = raw_request(gateway, method, path)
    assert status == 404, body
    assert b"Invalid URL" in body
    assert httpx.get(f"{simulator.url}/_sim/requests").json()["data"] == before


def test_the_canonical_spelling_is_served(gateway: ServerThread) -> None:
    status, body = raw_request(gateway, "POST", "/v1/chat/completions")
    assert status == 200, body


@pytest.mark.parametrize("path", ["/v1", "/healthz/", "/metrics/", "/readyz/"])
def test_a_slash_added_or_dropped_is_not_redirected(gateway: ServerThread, path: str) -> None:
    """A 404 in OpenAI's shape, never a redirect to a URL made of the caller's Host header."""
    answer = httpx.get(
        f"{gateway.url}{path}", headers={"Host": "evil.example"}, follow_redirects=False
    )
    assert answer.status_code == 404, answer.headers
    assert "location" not in answer.headers
    assert answer.json()["error"]["code"] == "unknown_url"
