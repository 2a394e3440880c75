"""The default client and the gateway behind a real third-party front: Debian's nginx with TLS
before the simulator, as a CDN or an ingress sits before an upstream. nginx closes idle
keep-alive connections after a short timeout, compresses what passes one of its servers
whatever the client asked for, adds trailers, and relays a raw origin that resets mid-body.
Skipped where nginx is not installed (`tests/run.sh` installs it)."""

from __future__ import annotations

import asyncio
import random
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest

from gateway.config import UpstreamConfig
from gateway.upstream.http1_client import Http1Upstream
from gateway.wire.errors import GatewayError
from tests.conftest import CLIENT_KEY, SIM_KEY, GatewayFactory, ServerThread, base_config, free_port

NGINX = shutil.which("nginx") or next(
    (path for path in ("/usr/sbin/nginx",) if Path(path).exists()), None
)
pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is not installed")

# nginx's idle keep-alive timeout: short, so hundreds of reuses at it take seconds.
KEEPALIVE_MS = 300
SPREAD_MS = 3
ADMIN_KEY = "admin-key-for-the-nginx-front-tests-0123456789"
PROXIED = "proxy_http_version 1.1; proxy_buffering off; proxy_set_header Connection '';"

CONFIG = """
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi; uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {dir}/cert.pem;
    ssl_certificate_key {dir}/key.pem;
    keepalive_timeout {keepalive}ms;
    keepalive_requests 100000;
    location /v1/ {{ proxy_pass http://127.0.0.1:{simulator}; {proxied} }}
    # Compressed by the server behind, which is told the client takes gzip.
    location /gz/ {{
      proxy_pass http://127.0.0.1:{inner}/; proxy_set_header Accept-Encoding gzip; {proxied}
    }}
    location /trailers/ {{
      proxy_pass http://127.0.0.1:{simulator}/; {proxied}
      add_trailer content-type text/plain always;
      add_trailer x-request-id req_from_a_trailer always;
    }}
    location /cut/ {{ proxy_pass http://127.0.0.1:{raw}; {proxied} }}
    location /plain/ {{ default_type application/json; return 200 '{{"object": "list"}}'; }}
  }}
  server {{
    listen 127.0.0.1:{inner};
    gzip on; gzip_types *; gzip_min_length 0; gzip_proxied any;
    location / {{ proxy_pass http://127.0.0.1:{simulator}; {proxied} }}
  }}
}}
"""


class CuttingOrigin:
    """A raw origin that answers every request and resets the connection mid-body: a chat
    completion cut in half (content-length), or a stream cut after its first content."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, body = data.split(b"\r\n\r\n", 1)
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            while len(body) < length:
                body += conn.recv(65536)
            if orjson.loads(body).get("stream"):
                events = b"".join(
                    b"data: " + orjson.dumps(chunk) + b"\n\n"
                    for chunk in (chunk_of({"role": "assistant", "content": ""}),
                                  chunk_of({"content": "Hello there, this was cut"}))
                )  # fmt: skip
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                    b"transfer-encoding: chunked\r\n\r\n%x\r\n%s\r\n" % (len(events), events)
                )
            else:
                whole = orjson.dumps(completion())
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    b"content-length: %d\r\n\r\n%s" % (len(whole), whole[: len(whole) // 2])
                )
            time.sleep(0.05)  # what was sent reaches nginx before the reset
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def close(self) -> None:
        self.sock.close()


def chunk_of(delta: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-cut", "object": "chat.completion.chunk", "created": 1,
        "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
    }  # fmt: skip


def completion() -> dict[str, Any]:
    return {
        "id": "chatcmpl-cut", "object": "chat.completion", "created": 1,
        "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "Hello there " * 40}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 400, "total_tokens": 410},
    }  # fmt: skip


class Front:
    def __init__(self, port: int, cert: Path) -> None:
        self.port = port
        self.cert = cert

    def url(self, prefix: str = "/v1") -> str:
        return f"https://127.0.0.1:{self.port}{prefix}"

    def upstream(self, prefix: str = "/v1") -> Http1Upstream:
        return Http1Upstream(UpstreamConfig(base_url=self.url(prefix), ca_file=str(self.cert)))


@pytest.fixture(scope="module")
def front(simulator: ServerThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    assert NGINX is not None
    folder = tmp_path_factory.mktemp("nginx")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem"),
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    origin = CuttingOrigin()
    port = free_port()
    text = CONFIG.format(
        dir=folder, port=port, inner=free_port(), simulator=simulator.port,
        raw=origin.port, keepalive=KEEPALIVE_MS, proxied=PROXIED,
    )  # fmt: skip
    (folder / "nginx.conf").write_text(text)
    proc = subprocess.Popen(
        [NGINX, "-p", str(folder), "-c", str(folder / "nginx.conf"), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                assert proc.stderr is not None
                raise RuntimeError(f"nginx did not start: {proc.stderr.read().decode()}") from None
            time.sleep(0.05)
    try:
        yield Front(port, folder / "cert.pem")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        origin.close()


async def call(
    upstream: Http1Upstream, method: str = "GET", path: str = "/models", body: bytes = b""
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    headers = {"authorization": f"Bearer {SIM_KEY}", "accept-encoding": "identity"}
    if body:
        headers["content-type"] = "application/json"
    async with asyncio.timeout(30):  # a guard against hanging, far from what a call needs
        resp = await upstream.send(method, path, b"", headers, body)
        try:
            return resp.status, resp.headers, await resp.read()
        finally:
            await resp.close()


CHAT = orjson.dumps(
    {"model": "gpt-4o-2024-08-06", "messages": [{"role": "user", "content": "Hello there"}]}
)


class Counting(Http1Upstream):
    """Counts the new connections made to repeat a request lost on a reused one."""

    repeats = 0

    async def acquire(self, fresh: bool = False) -> Any:
        self.repeats += fresh
        return await super().acquire(fresh)


@pytest.mark.anyio
async def test_500_reuses_at_the_idle_timeout_give_no_error(front: Front) -> None:
    # Each worker reuses its connection when nginx is about to close it, or has just done so:
    # the request is written as the close is on its way, the race a client meets about once
    # in 60 reuses. Such a request goes again on a new connection; none reaches the caller.
    upstream = Counting(UpstreamConfig(base_url=front.url(), ca_file=str(front.cert)))
    rng = random.Random(7)
    errors: list[str] = []
    ok = 0

    async def worker(calls: int) -> None:
        nonlocal ok
        for _ in range(calls):
            await asyncio.sleep((KEEPALIVE_MS + rng.uniform(-SPREAD_MS, SPREAD_MS)) / 1000)
            try:
                status, _, body = await call(upstream, "POST", "/chat/completions", CHAT)
            except GatewayError as exc:
                errors.append(f"{exc.code}: {exc.message}")
            else:
                ok += status == 200 and b'"chat.completion"' in body

    first = [asyncio.create_task(call(upstream)) for _ in range(25)]  # 25 open connections
    await asyncio.gather(*first)
    await asyncio.gather(*(worker(20) for _ in range(25)))
    await upstream.close()
    print(f"\n500 reuses at nginx's idle timeout: {len(errors)} errors, {ok} answers, "
          f"{upstream.repeats} requests repeated on a new connection")  # fmt: skip
    assert errors == [] and ok == 500


def without_date(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return [(name, value) for name, value in headers if name != b"date"]


@pytest.mark.anyio
async def test_trailers_never_become_headers_and_head_ends_with_its_headers(front: Front) -> None:
    upstream = front.upstream("/trailers/v1")
    status, headers, body = await call(upstream)
    assert status == 200 and orjson.loads(body)["object"] == "list"
    names = [name for name, _ in headers]
    assert names.count(b"content-type") == 1
    assert (b"x-request-id", b"req_from_a_trailer") not in headers
    # HEAD: a content-length, and no body to wait for; the next call is answered.
    plain = front.upstream("/plain")
    for _ in range(2):
        status, headers, body = await call(plain, "HEAD")
        assert status == 200 and body == b""
        assert int(dict(headers)[b"content-length"]) == len(b'{"object": "list"}')
    # The date may tick between the HEAD and the GET; every other header must be the same.
    status, got, body = await call(plain)
    assert (status, body) == (200, b'{"object": "list"}')
    assert without_date(got) == without_date(headers)
    await upstream.close()
    await plain.close()


@pytest.mark.anyio
async def test_a_body_compressed_by_the_front_is_decoded(front: Front) -> None:
    upstream = front.upstream("/gz/v1")
    status, headers, body = await call(upstream, "POST", "/chat/completions", CHAT)
    assert status == 200 and orjson.loads(body)["usage"]["completion_tokens"] > 0
    assert b"content-encoding" not in dict(headers)
    await upstream.close()


@pytest.mark.anyio
async def test_a_body_cut_by_a_reset_behind_the_front_is_an_error(front: Front) -> None:
    upstream = front.upstream("/cut/v1")
    for stream in (False, True):
        resp = await upstream.send(
            "POST", "/chat/completions", b"", {}, orjson.dumps({"stream": stream})
        )
        assert resp.status == 200
        with pytest.raises(GatewayError) as info:
            await resp.read()
        assert info.value.status == 502 and info.value.code == "upstream_truncated"
        await resp.close()
    await upstream.close()


# -- the gateway behind the front, with the official SDK ----------------------------------------


def behind(start_gateway: GatewayFactory, front: Front, prefix: str) -> ServerThread:
    config = base_config(OPENAI_BASE_URL=front.url(prefix), OPENAI_API_KEY=SIM_KEY)
    return start_gateway(
        config, upstream={"ca_file": str(front.cert)}, server={"admin_key": ADMIN_KEY}
    )


def spent_micros(gateway: ServerThread, more_than: int = -1) -> int:
    """The team's spend once it is more than `more_than` (settling is deferred)."""
    deadline = time.monotonic() + 10
    while True:
        answer = httpx.get(
            f"{gateway.url}/admin/teams/test/usage",
            headers={"authorization": f"Bearer {ADMIN_KEY}"},
        )
        assert answer.status_code == 200, answer.text
        spent: int = answer.json()["spent_micros"]
        if spent > more_than or time.monotonic() > deadline:
            return spent
        time.sleep(0.05)


def sdk(gateway: ServerThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=CLIENT_KEY, max_retries=0)


HELLO: Any = [{"role": "user", "content": "Hello there"}]


def test_compressed_answers_reach_the_sdk_readable_and_are_charged(
    start_gateway: GatewayFactory, front: Front
) -> None:
    gateway = behind(start_gateway, front, "/gz/v1")
    client = sdk(gateway)
    answer = client.chat.completions.create(model="gpt-4o", messages=HELLO)
    assert answer.choices[0].message.content and answer.usage is not None
    spent = spent_micros(gateway, 0)
    assert spent > 0
    # A stream without include_usage: metered from its (decoded) events all the same.
    text = "".join(
        chunk.choices[0].delta.content or ""
        for chunk in client.chat.completions.create(model="gpt-4o", messages=HELLO, stream=True)
        if chunk.choices
    )
    assert text
    assert spent_micros(gateway, spent) > spent


def test_a_cut_answer_is_a_502_charged_its_hold_and_a_cut_stream_ends_in_an_error_event(
    start_gateway: GatewayFactory, front: Front
) -> None:
    gateway = behind(start_gateway, front, "/cut/v1")
    client = sdk(gateway)
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="gpt-4o", messages=HELLO, max_completion_tokens=100)
    assert info.value.status_code == 502
    # Not retried by the gateway: the answer was generated and billed (a retry is the client's,
    # a new request charged on its own).
    assert info.value.code == "upstream_truncated"
    assert "x-should-retry" not in info.value.response.headers
    held = spent_micros(gateway, 0)
    assert held > 0  # the hold: the answer was generated, its usage never came
    with pytest.raises(openai.APIError) as streamed:
        for _ in client.chat.completions.create(model="gpt-4o", messages=HELLO, stream=True):
            pass
    assert "cut off" in streamed.value.message
    assert spent_micros(gateway, held) > held  # the content seen before the cut
