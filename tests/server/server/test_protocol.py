"""The HTTP server's limits over real sockets: what a client sending too much, too slowly, too
many connections or not HTTP at all gets (OpenAI-shaped errors, closed connections, counted),
HTTP/1.0 answers, and SIGTERM during a stalled upload."""

from __future__ import annotations

import select
import signal
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import CLIENT_KEY, GatewayFactory, ServerThread, start_gateway_process

GUARD_S = 30  # a socket read's guard against a hung test, far beyond every timeout used here


class Answer:
    """A raw HTTP answer read to the connection's end."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        head, _, self.body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split(" ")[1]) if lines[0] else 0
        self.headers = {
            name.lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines[1:])
        }

    def error(self) -> dict[str, Any]:
        assert self.headers["content-type"] == "application/json"
        assert int(self.headers["content-length"]) == len(self.body)
        error: dict[str, Any] = orjson.loads(self.body)["error"]
        assert set(error) == {"message", "type", "param", "code"}
        return error


def connect(server: ServerThread) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.settimeout(GUARD_S)
    return sock


def send_until_answered(sock: socket.socket, chunk: bytes, times: int, every_s: float) -> bool:
    """Send `chunk` up to `times` times, `every_s` apart, until the server answers or closes;
    whether it did."""
    try:
        for _ in range(times):
            sock.sendall(chunk)
            if select.select([sock], [], [], every_s)[0]:
                return True
    except OSError:
        return True  # closed by the server
    return False


def read_to_end(sock: socket.socket) -> Answer:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    sock.close()
    return Answer(b"".join(chunks))


def dropped(server: ServerThread, reason: str) -> float:
    registry = server.server.config.app.state.gateway.metrics.registry
    value = registry.get_sample_value("gateway_dropped_connections_total", {"reason": reason})
    return float(value or 0)


def chat_head(length: int, version: str = "1.1") -> bytes:
    return (
        f"POST /v1/chat/completions HTTP/{version}\r\nHost: gw\r\n"
        f"Authorization: Bearer {CLIENT_KEY}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\nConnection: close\r\n\r\n"
    ).encode()


def test_a_head_over_the_limit_is_refused_431_as_it_arrives(
    start_gateway: GatewayFactory,
) -> None:
    gateway = start_gateway(server={"max_header_bytes": 8192})
    sock = connect(gateway)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: gw\r\nX-Flood: ")
    # A header that never ends: the gateway answers long before 4 MiB of it.
    assert send_until_answered(sock, b"a" * 4096, 1024, 0)
    answer = read_to_end(sock)
    assert answer.status == 431
    error = answer.error()
    assert error["code"] == "request_headers_too_large"
    assert "the limit is 8192" in error["message"]
    assert answer.headers["connection"] == "close"
    assert answer.headers["x-request-id"].startswith("req_")
    # A whole head over the limit in one go is refused too; within it, served.
    big = httpx.get(f"{gateway.url}/healthz", headers={"x-big": "a" * 9000}, timeout=GUARD_S)
    assert big.status_code == 431
    assert big.json()["error"]["code"] == "request_headers_too_large"
    ok = httpx.get(f"{gateway.url}/healthz", headers={"x-big": "a" * 6000}, timeout=GUARD_S)
    assert ok.status_code == 200
    assert dropped(gateway, "headers_too_large") == 2


def test_a_head_not_finished_in_time_is_408_and_a_silent_connection_is_closed(
    start_gateway: GatewayFactory,
) -> None:
    gateway = start_gateway(server={"header_timeout_s": 0.5})
    trickling = connect(gateway)
    trickling.sendall(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n")
    silent = connect(gateway)
    # A byte at a time keeps arriving, the head never completes.
    assert send_until_answered(trickling, b"X", GUARD_S * 10, 0.1)
    answer = read_to_end(trickling)
    assert answer.status == 408
    assert answer.error()["code"] == "request_timeout"
    assert read_to_end(silent).raw == b""  # nothing asked, nothing answered: just closed
    assert dropped(gateway, "header_timeout") == 2


def test_a_stalled_body_is_408_and_its_request_ends(start_gateway: GatewayFactory) -> None:
    gateway = start_gateway(server={"body_timeout_s": 0.5})
    sock = connect(gateway)
    sock.sendall(chat_head(1000) + b'{"model": "gpt-4o", ')
    answer = read_to_end(sock)
    assert answer.status == 408
    error = answer.error()
    assert error["code"] == "request_timeout"
    assert "stopped arriving" in error["message"]
    assert dropped(gateway, "body_timeout") == 1
    deadline = time.monotonic() + GUARD_S
    while gateway.requests_in_flight() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gateway.requests_in_flight() == 0


def test_a_body_that_keeps_coming_is_not_cut(start_gateway: GatewayFactory) -> None:
    gateway = start_gateway(server={"body_timeout_s": 0.5})
    body = orjson.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
    sock = connect(gateway)
    sock.sendall(chat_head(len(body)))
    for i in range(len(body)):  # longer in all than the timeout, never silent that long
        sock.sendall(body[i : i + 1])
        time.sleep(0.02)
    answer = read_to_end(sock)
    assert answer.status == 200, answer.raw
    assert orjson.loads(answer.body)["object"] == "chat.completion"


def test_an_idle_keep_alive_connection_is_closed(start_gateway: GatewayFactory) -> None:
    gateway = start_gateway(server={"keep_alive_timeout_s": 0.5})
    sock = connect(gateway)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n")
    answer = read_to_end(sock)  # returns once the gateway closes the idle connection
    assert answer.status == 200
    assert "connection" not in answer.headers  # it was kept alive, then closed when idle


def test_connections_over_the_cap_get_503_at_once_and_are_counted(
    start_gateway: GatewayFactory,
) -> None:
    gateway = start_gateway(server={"max_connections": 3})
    held = [connect(gateway) for _ in range(3)]
    refused = connect(gateway)  # sends nothing: refused before any request
    answer = read_to_end(refused)
    assert answer.status == 503
    assert answer.headers["retry-after"] == "1"
    error = answer.error()
    assert (error["type"], error["code"]) == ("server_error", "too_many_connections")
    # The held connections are served; once one is gone, a new connection is too.
    held[0].sendall(b"GET /healthz HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")
    assert read_to_end(held[0]).status == 200
    deadline = time.monotonic() + GUARD_S
    while len(gateway.server.server_state.connections) >= 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert httpx.get(f"{gateway.url}/healthz", timeout=GUARD_S).status_code == 200
    assert dropped(gateway, "connection_cap") == 1
    for sock in held[1:]:
        sock.close()


@pytest.mark.parametrize(
    ("request_bytes", "reason"),
    [
        (b"GARBAGE\r\n\r\n", "Invalid method encountered"),
        (b"GET /healthz HTTP/1.1\r\nX-Bad: a\x01b\r\n\r\n", "Invalid header value char"),
        (b"GET /healthz HTTP/1.1\r\nBad Name: x\r\n\r\n", "Invalid header token"),
        (b"GET /a b HTTP/1.1\r\n\r\n", "Expected HTTP/"),
        # httptools reads both as it reads HTTP/1.1: they had been served.
        (
            b"POST /v1/chat/completions HTTP/2.0\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
            "Invalid HTTP version HTTP/2.0",
        ),
        (b"GET /healthz HTTP/0.9\r\nHost: x\r\n\r\n", "Invalid HTTP version HTTP/0.9"),
    ],
)
def test_what_is_not_http_gets_a_json_400_with_the_reason(
    gateway: ServerThread, request_bytes: bytes, reason: str
) -> None:
    sock = connect(gateway)
    sock.sendall(request_bytes)
    answer = read_to_end(sock)
    assert answer.status == 400
    error = answer.error()
    assert error["code"] == "malformed_request"
    assert reason in error["message"]
    assert dropped(gateway, "malformed_request") == 1


def test_an_http_1_0_client_reads_a_whole_stream(gateway: ServerThread) -> None:
    body = orjson.dumps(
        {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    )
    sock = connect(gateway)
    sock.sendall(chat_head(len(body), version="1.0") + body)
    answer = read_to_end(sock)  # an HTTP/1.0 client reads to the close
    assert answer.status == 200
    assert "transfer-encoding" not in answer.headers
    assert answer.headers["connection"] == "close"
    events = [line for line in answer.body.decode().split("\n\n") if line]
    assert events[-1] == "data: [DONE]"
    assert all(event.startswith("data: ") for event in events)
    text = "".join(
        choice["delta"].get("content") or ""
        for event in events[:-1]
        for choice in orjson.loads(event[6:])["choices"]
    )
    assert text
    # A known length still goes as content-length.
    plain = orjson.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
    sock = connect(gateway)
    sock.sendall(chat_head(len(plain), version="1.0") + plain)
    answer = read_to_end(sock)
    assert int(answer.headers["content-length"]) == len(answer.body)
    assert orjson.loads(answer.body)["object"] == "chat.completion"


@pytest.mark.parametrize("upgrade", ["h2c", "websocket"])
def test_a_body_asking_for_another_protocol_is_refused_not_read_as_empty(
    gateway: ServerThread, simulator: ServerThread, upgrade: str
) -> None:
    """`curl --http2` on an http:// URL asks to upgrade to h2c: the parser ends such a request
    at its head, so its body would reach the gateway empty. With a body it is refused with a
    400 that says why; without one it is served."""
    body = orjson.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
    asks = f"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: {upgrade}\r\n".encode()
    before = httpx.get(f"{simulator.url}/_sim/requests").json()["data"]
    for framing, sent in (
        (b"Content-Length: %d\r\n" % len(body), body),
        (b"Transfer-Encoding: chunked\r\n", b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)),
    ):
        sock = connect(gateway)
        head = (
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer "
            + CLIENT_KEY.encode()
            + b"\r\nContent-Type: application/json\r\n"
        )
        sock.sendall(head + asks + framing + b"\r\n" + sent)
        answer = read_to_end(sock)
        assert answer.status == 400, answer.raw
        assert answer.error()["code"] == "unsupported_upgrade"
    assert httpx.get(f"{simulator.url}/_sim/requests").json()["data"] == before
    sock = connect(gateway)
    sock.sendall(
        b"GET /v1/models HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer "
        + CLIENT_KEY.encode()
        + b"\r\nConnection: Upgrade, close\r\nUpgrade: h2c\r\n\r\n"
    )
    answer = read_to_end(sock)
    assert answer.status == 200 and orjson.loads(answer.body)["object"] == "list"


def test_sigterm_during_a_stalled_upload_ends_at_its_timeout_without_a_traceback(
    simulator: ServerThread, teams_file: Path, tmp_path: Path
) -> None:
    log = tmp_path / "gateway.log"
    proc, port = start_gateway_process(
        simulator, "", teams_file, log=log,
        O1GW__SERVER__BODY_TIMEOUT_S="1", O1GW__SERVER__SHUTDOWN_TIMEOUT_S="600",
    )  # fmt: skip
    try:
        sock = socket.create_connection(("127.0.0.1", port))
        sock.settimeout(GUARD_S)
        sock.sendall(chat_head(100_000) + b'{"model": "gpt-4o", "messages": [')
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        # The upload trickles on, never silent for its timeout: only its timeout counted from
        # the signal ends it (the trickle would last 5 min).
        cut = send_until_answered(sock, b" ", 3000, 0.1)
        answer = read_to_end(sock)
        # Long before shutdown_timeout_s (600): the process has exited after the upload's 408.
        assert proc.wait(timeout=GUARD_S) in (0, -signal.SIGTERM)
    finally:
        proc.kill()
    assert cut
    assert answer.status == 408
    assert answer.error()["code"] == "request_timeout"
    text = log.read_text()
    assert "Traceback" not in text
    assert "Cancel" not in text  # uvicorn's "Cancel N running task(s)": none were left


def test_a_client_that_stops_reading_is_dropped_and_its_request_ends(
    start_gateway: GatewayFactory,
) -> None:
    gateway = start_gateway(server={"write_timeout_s": 0.5})
    auth = {"Authorization": f"Bearer {CLIENT_KEY}"}
    size = 8 << 20  # beyond the socket buffers of both ends and the upstream client's 1 MiB
    uploaded = httpx.post(
        f"{gateway.url}/v1/files", headers=auth, data={"purpose": "batch"},
        files={"file": ("big.jsonl", b"x" * size)}, timeout=GUARD_S,
    )  # fmt: skip
    assert uploaded.status_code == 200, uploaded.text
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: it sticks
    sock.settimeout(GUARD_S)
    sock.connect(("127.0.0.1", gateway.port))
    sock.sendall(
        f"GET /v1/files/{uploaded.json()['id']}/content HTTP/1.1\r\nHost: gw\r\n"
        f"Authorization: Bearer {CLIENT_KEY}\r\n\r\n".encode()
    )
    # Nothing read: the gateway's writes stall once the buffers are full, and it gives up.
    deadline = time.monotonic() + GUARD_S
    while dropped(gateway, "write_timeout") == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert dropped(gateway, "write_timeout") == 1
    while gateway.requests_in_flight() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gateway.requests_in_flight() == 0  # its upstream call and team slot let go
    received = 0
    try:
        while chunk := sock.recv(1 << 20):
            received += len(chunk)
    except ConnectionResetError:
        pass  # aborted: what was still buffered is gone with it
    sock.close()
    assert received < size
