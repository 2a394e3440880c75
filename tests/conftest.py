"""Shared fixtures: real servers on loopback sockets (uvicorn in threads, redis-server processes)."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
import uvloop
from hypothesis import HealthCheck, settings

from gateway.config import Config, ServerConfig, SimulatorConfig, load_config
from gateway.server.protocol import protocol_for

ROOT = Path(__file__).resolve().parent.parent
# Property tests check results, not speed: on a shared, loaded CI host a per-example deadline only
# adds failures that say nothing about the code.
settings.register_profile(
    "shared-host", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("shared-host")
SIM_KEY = "sk-simulated-upstream"
CLIENT_KEY = "sk-gw-test-client-key"
# Test gateways serve /metrics on their API port to this key (`scrape`).
METRICS_KEY = "metrics-key-of-the-tests-0123456789"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerThread:
    """A uvicorn server on a real loopback socket, in a thread with its own event loop."""

    def __init__(
        self,
        app: Any,
        port: int | None = None,
        limits: ServerConfig | None = None,
        loop: str = "asyncio",
    ) -> None:
        """`loop`: "uvloop" to run on the loop `o1-gateway serve` runs on."""
        self.port = port or free_port()
        self.loop = loop
        self.server = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=self.port,
                log_level="warning",
                lifespan="on",
                access_log=False,
                http=protocol_for(limits or ServerConfig()),  # as `o1-gateway serve` runs it
                timeout_graceful_shutdown=2,
            )
        )
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        if self.loop == "uvloop":
            uvloop.run(self.server.serve())
        else:
            asyncio.run(self.server.serve())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def requests_in_flight(self) -> int:
        """Requests this server is still working on (uvicorn's per-request tasks)."""
        return sum(1 for task in list(self.server.server_state.tasks) if not task.done())

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


# The simulator's day (config `simulator.today`): a gateway in front of a simulator it did not
# start itself is told that this is today, as `o1-gateway serve` tells its built-in one.
SIM_TODAY = "2024-10-01"
SIM_DAY_ENV = {"O1GW__RETIREMENT__TODAY": SIM_TODAY}


def base_config(**env: str) -> Config:
    text = (ROOT / "config" / "gateway.yaml").read_text()
    return load_config(text, {**SIM_DAY_ENV, **env})


@pytest.fixture(scope="session")
def simulator() -> Iterator[ServerThread]:
    """The simulated OpenAI upstream on a real socket, with its request log on."""
    from gateway.simulator import create_simulator

    with ServerThread(create_simulator(SimulatorConfig(request_log=200))) as server:
        yield server


GatewayFactory = Callable[..., ServerThread]


TEAMS_YAML = f"""
teams:
  - name: test
    tier: tier-5
    keys:
      - name: client
        sha256: {hashlib.sha256(CLIENT_KEY.encode()).hexdigest()}
"""


@pytest.fixture(scope="session")
def teams_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Team `test` (tier 5) with the key CLIENT_KEY."""
    path = tmp_path_factory.mktemp("teams") / "teams.yaml"
    path.write_text(TEAMS_YAML)
    return path


@pytest.fixture
def start_gateway(simulator: ServerThread, teams_file: Path) -> Iterator[GatewayFactory]:
    """Start a gateway wired to the simulator over TCP; keyword args replace config sections.

    Its store knows team `test` with the key CLIENT_KEY.
    """
    from gateway.app import create_app

    started: list[ServerThread] = []

    def start(config: Config | None = None, loop: str = "asyncio", **sections: Any) -> ServerThread:
        if config is None:
            config = base_config(OPENAI_BASE_URL=f"{simulator.url}/v1", OPENAI_API_KEY=SIM_KEY)
        config = dataclasses.replace(
            config,
            admission=dataclasses.replace(config.admission, teams_file=str(teams_file)),
            # Wrong admin keys slow a test's next admin call by this much, doubling.
            server=dataclasses.replace(
                config.server, metrics_key=METRICS_KEY, auth_failure_delay_s=0.01
            ),
        )
        for name, values in sections.items():
            config = dataclasses.replace(
                config, **{name: dataclasses.replace(getattr(config, name), **values)}
            )
        server = ServerThread(create_app(config), limits=config.server, loop=loop).__enter__()
        started.append(server)
        return server

    yield start
    for server in started:
        server.__exit__()


@pytest.fixture
def gateway(start_gateway: GatewayFactory) -> ServerThread:
    return start_gateway()


def chat_scope(app: Any, key: str, **extra: str) -> dict[str, Any]:
    """The ASGI scope of a chat call with `key` (and `extra` headers) to the in-process
    gateway `app`."""
    headers = [
        (b"host", b"gateway"), (b"content-type", b"application/json"),
        (b"authorization", f"Bearer {key}".encode()),
        *((name.encode(), value.encode()) for name, value in extra.items()),
    ]  # fmt: skip
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions",
        "query_string": b"", "root_path": "", "client": ("127.0.0.1", 1234),
        "server": ("gateway", 80), "app": app, "headers": headers,
    }  # fmt: skip


async def cut_at_its_headers(app: Any, body: dict[str, Any], key: str, **extra: str) -> None:
    """A chat call to the in-process gateway `app` whose task is cancelled (as at shutdown)
    while its answer's headers are written, before any of its body."""
    writing = asyncio.Event()
    messages = [{"type": "http.request", "body": orjson.dumps(body), "more_body": False}]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await asyncio.Event().wait()  # the client stays
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            writing.set()
            await asyncio.Event().wait()  # the socket's buffer is full: the write waits

    task = asyncio.create_task(app(chat_scope(app, key, **extra), receive, send))
    await asyncio.wait_for(writing.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def scrape(url: str) -> str:
    """A test gateway's metrics: `url` is its base URL (start_gateway sets the metrics key)."""
    answer = httpx.get(f"{url}/metrics", headers={"authorization": f"Bearer {METRICS_KEY}"})
    assert answer.status_code == 200, answer.text
    return answer.text


def running_redis(*extra: str) -> Iterator[str]:
    """A real redis-server on a free port for as long as the generator runs; yields its URL."""
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_redis_server(tmp, *extra)
        try:
            yield url
        finally:
            proc.kill()
            proc.wait()


@pytest.fixture
def redis_server() -> Iterator[str]:
    """A real redis-server on a free port; yields its URL."""
    yield from running_redis()


def start_redis_server(tmp: str, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    """Start a redis-server on a free loopback port with `extra` options; returns it and its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail(
            "redis-server is not installed: run the README's test command, which installs it"
        )
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            tmp,
            *extra,
        ],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("redis-server did not start") from None
            time.sleep(0.02)


@pytest.fixture(scope="module")
def redis_server_module() -> Iterator[str]:
    """`redis_server` shared by a whole module: tests that flush it themselves between cases."""
    yield from running_redis()


@pytest.fixture(scope="module")
def redis_debug_server() -> Iterator[str]:
    """A module's redis-server that accepts DEBUG (DEBUG SLEEP stalls it to force timeouts)."""
    yield from running_redis("--enable-debug-command", "yes")


def start_gateway_process(
    simulator: ServerThread,
    redis_url: str,
    teams: Path,
    log: Path | None = None,
    **env: str,
) -> tuple[subprocess.Popen[bytes], int]:
    """`python -m gateway serve` in its own process on a free port, ready; `env` adds variables
    (e.g. O1GW__SERVER__SHUTDOWN_TIMEOUT_S="20")."""
    port = free_port()
    full_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("O1GW", "OPENAI_", "REDIS_"))},
        "PYTHONPATH": str(ROOT),
        "OPENAI_BASE_URL": f"{simulator.url}/v1",
        "OPENAI_API_KEY": SIM_KEY,
        "REDIS_URL": redis_url,
        "O1GW__ADMISSION__TEAMS_FILE": str(teams),
        # Without a Redis URL: the in-memory store, never the user's own embedded one.
        "O1GW__REDIS__EMBEDDED_DIR": "",
        **SIM_DAY_ENV,
        **env,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--port", str(port), "--log-level", "warning"],
        env=full_env, stdout=subprocess.DEVNULL,
        stderr=log.open("wb") if log is not None else subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=0.5).status_code == 200:
                return proc, port
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise AssertionError("gateway process did not start")
        time.sleep(0.1)
