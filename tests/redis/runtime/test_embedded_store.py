"""`o1-gateway serve` without REDIS_URL, as users run it: the redis-server it starts itself on a
socket in `redis.embedded_dir` is one store for all its workers, and keeps teams, keys and spend
across a restart."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from gateway.cli.main import main
from gateway.runtime.gateway import SANDBOX_KEY
from tests.conftest import ROOT, SIM_DAY_ENV, SIM_KEY, ServerThread, free_port
from tests.server.cli.test_main import ADMIN_KEY, EMBEDDED_DIR, run_gateway, stop

HI = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


def serve(simulator: ServerThread, store: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    """The gateway on the simulator (not `--simulate`, whose sandbox team would serve a key
    a worker does not know)."""
    env = {
        EMBEDDED_DIR: str(store),
        "GATEWAY_ADMIN_KEY": ADMIN_KEY,
        "OPENAI_BASE_URL": f"{simulator.url}/v1",
        "OPENAI_API_KEY": SIM_KEY,
        "O1GW__UPSTREAM__FORWARD_HEADER_PREFIXES": "x-sim-",
        **SIM_DAY_ENV,
    }
    proc, port = run_gateway(*args, env=env)
    return proc, f"http://127.0.0.1:{port}"


def cli(capsys: pytest.CaptureFixture[str], url: str, *argv: str) -> str:
    capsys.readouterr()
    assert main([*argv, "--url", url, "--admin-key", ADMIN_KEY]) == 0
    out, err = capsys.readouterr()
    assert err == ""  # no note: what is made here is kept
    return out


def settled_usage(url: str, team: str) -> tuple[int, int]:
    """(spend, calls of gpt-4o) of the team once nothing is held (the last settles landed)."""
    deadline = time.monotonic() + 10
    while True:
        usage = httpx.get(
            f"{url}/admin/teams/{team}/usage", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        ).json()
        if usage["held_micros"] == 0 or time.monotonic() > deadline:
            calls = usage["by_model"].get("gpt-4o", {}).get("requests", 0)
            return int(usage["spent_micros"]), calls


def chat(url: str, key: str, latency_ms: int = 0) -> int:
    """One call on a connection of its own."""
    return httpx.post(
        f"{url}/v1/chat/completions",
        json=HI,
        headers={"Authorization": f"Bearer {key}", "x-sim-latency-ms": str(latency_ms)},
    ).status_code


def test_two_workers_share_the_embedded_store_and_a_restart_keeps_teams_keys_and_spend(
    simulator: ServerThread, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    proc, url = serve(simulator, store, "--workers", "2")
    try:
        cli(capsys, url, "teams", "create", "kept", "--tier", "tier-5", "--budget-usd", "5")
        found = re.search(r"sk-gw-\S+", cli(capsys, url, "keys", "create", "kept"))
        assert found is not None
        key = found.group()
        # Made through one worker, known to both: every call is served and counted, whichever
        # worker takes it (overlapping connections spread over both).
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda _: chat(url, key, latency_ms=50), range(64)))
        assert answers == [200] * 64
        spent, calls = settled_usage(url, "kept")
        assert spent > 0 and calls == 64
    finally:
        output = stop(proc)
    assert proc.returncode == 0
    assert f"the gateway's own redis-server keeps teams, keys and spend in {store}" in output
    assert not (store / "redis.sock").exists()  # its server stopped with it

    proc, url = serve(simulator, store)
    try:
        assert "kept" in cli(capsys, url, "teams", "list")
        assert settled_usage(url, "kept") == (spent, 64)
        assert chat(url, key) == 200
        assert settled_usage(url, "kept")[1] == 65
    finally:
        stop(proc)


def test_a_second_gateway_cannot_take_an_embedded_store_in_use(
    simulator: ServerThread, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    proc, url = serve(simulator, store)
    try:
        second = subprocess.run(
            [sys.executable, "-m", "gateway", "serve", "--simulate", "--port", "0"],
            capture_output=True, text=True, timeout=30, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), EMBEDDED_DIR: str(store), "REDIS_URL": ""},
        )  # fmt: skip
        assert second.returncode == 2
        assert f"the embedded store in {store} is in use by another gateway" in second.stderr
        assert httpx.get(f"{url}/readyz").status_code == 200  # the first one is unharmed
    finally:
        stop(proc)


def test_two_workers_count_every_request_in_their_metrics(tmp_path: Path) -> None:
    # Outside the repository the packaged config is used; --workers starts uvicorn's process
    # manager, and the embedded store serves both workers.
    metrics_port = free_port()
    temp = tmp_path / "tmp"
    temp.mkdir()
    proc, port = run_gateway(
        "--simulate", "--workers", "2", "--metrics-port", str(metrics_port), cwd=tmp_path,
        env={EMBEDDED_DIR: str(tmp_path / "s"), "TMPDIR": str(temp)},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        # Fresh connections spread over both workers; every scrape, whichever worker serves
        # it, must count all of them (multiprocess metrics).
        assert [chat(url, SANDBOX_KEY) for _ in range(20)] == [200] * 20
        # Metrics on the metrics port alone, without a key; not on the API port.
        assert httpx.get(f"{url}/metrics").status_code == 404
        assert httpx.get(f"http://127.0.0.1:{metrics_port}/healthz").status_code == 404
        for _ in range(6):
            text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
            total = sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("gateway_requests_total{")
            )
            assert total == 20
            assert "gateway_in_flight_requests 0.0" in text
        # Without PROMETHEUS_MULTIPROC_DIR the workers' files are in a directory made for them.
        assert [path.name[:13] for path in temp.iterdir()] == ["o1gw-metrics-"]
    finally:
        output = stop(proc)
    assert "--simulate given" in output
    # ... which the gateway removes when it stops (every run used to leave one behind).
    assert not list(temp.glob("o1gw-metrics-*"))
