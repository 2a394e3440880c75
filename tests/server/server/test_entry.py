"""The per-request record on a running gateway: one JSON access-log line per API request,
without secrets; and what enters that the gateway serves no route for (a WebSocket)."""

from __future__ import annotations

import io
import json
import logging
import socket
import time

import httpx
import openai
import pytest

from tests.conftest import CLIENT_KEY, SIM_KEY, GatewayFactory, ServerThread

HELLO = [{"role": "user", "content": "Hello there"}]


@pytest.fixture
def gateway(start_gateway: GatewayFactory) -> ServerThread:
    return start_gateway()


def capture(server: ServerThread) -> io.BytesIO:
    """Send the gateway's access log (normally stderr) to a buffer."""
    sink = io.BytesIO()
    server.server.config.app.state.gateway.access_log.stream = sink
    return sink


def access_lines(sink: io.BytesIO, expected: int = 1) -> list[dict[str, object]]:
    # Lines leave in batches (every 0.2 s), after the response has gone.
    deadline = time.monotonic() + 3
    while True:
        lines = [json.loads(line) for line in sink.getvalue().splitlines()]
        if len(lines) >= expected or time.monotonic() > deadline:
            return lines
        time.sleep(0.02)


def test_one_line_per_request_with_models_usage_and_cost(gateway: ServerThread) -> None:
    sink = capture(gateway)
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=CLIENT_KEY, max_retries=0)
    messages = [{"role": "system", "content": "Be brief."}, *HELLO]
    raw = client.chat.completions.with_raw_response.create(model="o1-mini", messages=messages)  # type: ignore[arg-type]
    completion = raw.parse()
    [line] = access_lines(sink)
    assert line["status"] == 200 and line["path"] == "/v1/chat/completions"
    assert line["team"] == "test" and str(line["key_id"])
    assert line["model"] == "o1-mini" and line["routed_model"] == "o1-mini"
    assert line["request_id"] == raw.headers["x-request-id"]
    assert line["patches"] == ["system_messages"]
    assert completion.usage is not None
    assert line["prompt_tokens"] == completion.usage.prompt_tokens
    assert line["completion_tokens"] == completion.usage.completion_tokens
    assert line["reasoning_tokens"] == completion.usage.completion_tokens_details.reasoning_tokens  # type: ignore[union-attr]
    assert isinstance(line["cost_micros"], int) and line["cost_micros"] > 0
    assert float(line["upstream_ms"]) <= float(line["duration_ms"])  # type: ignore[arg-type]


def test_routed_and_streamed_requests_say_so(gateway: ServerThread) -> None:
    sink = capture(gateway)
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=CLIENT_KEY, max_retries=0)
    list(client.chat.completions.create(model="auto", messages=HELLO, stream=True))  # type: ignore[call-overload]
    [line] = access_lines(sink)
    assert line["model"] == "auto" and line["routed_model"] == "gpt-4o"
    assert line["policy"] == "auto" and str(line["route_reason"]).startswith("domain: ")
    assert line["stream"] is True and "ttft_ms" in line
    assert isinstance(line["cost_micros"], int) and line["cost_micros"] > 0


def test_errors_are_logged_without_the_key(
    gateway: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sink = capture(gateway)
    secret = "sk-gw-this-is-a-secret-that-must-not-leak"
    answer = httpx.post(
        f"{gateway.url}/v1/chat/completions?api_key={secret}",
        json={"model": "gpt-4o", "messages": HELLO},
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert answer.status_code == 401
    [line] = access_lines(sink)
    assert line["status"] == 401 and line["error_code"] == "invalid_api_key"
    assert line["team"] == "" and line["path"] == "/v1/chat/completions"
    # The client's own httpx log shows the URL it sent; the gateway's logs must not.
    everything = sink.getvalue().decode() + "\n".join(
        r.getMessage() for r in caplog.records if r.name.startswith(("gateway", "uvicorn"))
    )
    assert secret not in everything and SIM_KEY not in everything


def test_access_log_can_be_turned_off(start_gateway: GatewayFactory) -> None:
    server = start_gateway(observability={"access_log": False})
    assert server.server.config.app.state.gateway.access_log is None


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/v1/realtime?model=gpt-4o-realtime-preview", 403, "realtime_not_governed"),
        ("/v1/chat/completions", 404, "unknown_url"),
        ("/admin/teams", 404, "unknown_url"),
        ("/metrics", 404, "unknown_url"),
    ],
)
def test_a_websocket_upgrade_is_refused_in_openais_shape(
    gateway: ServerThread, caplog: pytest.LogCaptureFixture, path: str, status: int, code: str
) -> None:
    """No route takes a WebSocket, the Realtime API's included: the upgrade is answered the
    path's error as JSON, never a bare 403 or, on the admin API, a 500 and a traceback."""
    host, port = gateway.url.removeprefix("http://").split(":")
    upgrade = (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        f"Authorization: Bearer {CLIENT_KEY}\r\n\r\n"
    )
    with caplog.at_level(logging.ERROR), socket.create_connection((host, int(port))) as conn:
        conn.settimeout(10)
        conn.sendall(upgrade.encode())
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % status), answer
    assert json.loads(body)["error"]["code"] == code
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
