"""Headers a running gateway sends upstream: a client's `Idempotency-Key` is its team's, since
every team shares the gateway's upstream key and upstream may replay an answer by that key.
And headers it reads: a body in a coding it does not undo is refused, never read as other
bytes than it says it is."""

from __future__ import annotations

import gzip
import hashlib
import json
import socket
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


def raw_answer(server: ServerThread, request: bytes) -> tuple[int, Any]:
    """A request sent byte for byte (HTTP clients set the framing themselves): the status and
    the JSON body of its answer."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(request)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


def test_a_body_in_a_coding_the_gateway_does_not_undo_is_refused(
    gateway: ServerThread, simulator: ServerThread
) -> None:
    """Compressed, or said to be and sent plain, on every kind of route: 415 (a Content-Encoding)
    or 501 (a Transfer-Encoding but chunked), before anything reads the body; an identity
    coding is served."""
    chat = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi."}]}
    plain = json.dumps(chat).encode()
    auth = {"Authorization": f"Bearer {KEYS['a']}", "Content-Type": "application/json"}
    log = f"{simulator.url}/_sim/requests"
    before = httpx.get(log).json()["data"]
    for path, body, coding in (
        ("/v1/chat/completions", gzip.compress(plain), "gzip"),
        ("/v1/chat/completions", plain, "gzip"),
        ("/v1/responses", plain, "br"),
        ("/v1/evals", plain, "deflate"),
        ("/v1/chat/completions", plain, "identity, zstd"),
    ):
        answer = httpx.post(
            f"{gateway.url}{path}", content=body, headers={**auth, "Content-Encoding": coding}
        )
        assert answer.status_code == 415, (path, coding, answer.text)
        assert answer.json()["error"]["code"] == "unsupported_content_encoding"
    upload = httpx.post(
        f"{gateway.url}/v1/files", files={"file": ("a.jsonl", b"{}")}, data={"purpose": "batch"},
        headers={"Authorization": f"Bearer {KEYS['a']}", "Content-Encoding": "gzip"},
    )  # fmt: skip
    assert upload.status_code == 415, upload.text
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(plain), plain)
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEYS['a']}"
        "\r\nContent-Type: application/json\r\nConnection: close\r\n"
    ).encode()
    status, error = raw_answer(
        gateway, head + b"Transfer-Encoding: gzip, chunked\r\n\r\n" + chunked
    )
    assert status == 501 and error["error"]["code"] == "unsupported_transfer_encoding", error
    assert httpx.get(log).json()["data"] == before  # none reached upstream
    status, answer = raw_answer(gateway, head + b"Transfer-Encoding: chunked\r\n\r\n" + chunked)
    assert status == 200, answer
    served = httpx.post(
        f"{gateway.url}/v1/chat/completions", content=plain,
        headers={**auth, "Content-Encoding": "identity"},
    )  # fmt: skip
    assert served.status_code == 200, served.text
