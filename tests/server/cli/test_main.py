"""The CLI as users run it: a real process, a real port."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from gateway.cli.admin import MEMORY_NOTE
from gateway.cli.main import main
from gateway.runtime.gateway import SANDBOX_KEY
from tests.conftest import ROOT, free_port

EMBEDDED_DIR = "O1GW__REDIS__EMBEDDED_DIR"
ADMIN_KEY = "adm-" + "0123456789abcdef" * 3


def run_gateway(
    *args: str, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> tuple[subprocess.Popen[str], int]:
    """`o1-gateway serve` in a process, ready; without REDIS_URL, and with the in-memory store
    unless `env` names an embedded store directory (O1GW__REDIS__EMBEDDED_DIR)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--port", str(port), *args],
        cwd=cwd,
        env={
            **{k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "REDIS_URL")},
            EMBEDDED_DIR: "",
            **(env or {}),
            "PYTHONPATH": str(ROOT),
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).status_code == 200:
                return proc, port
        except httpx.HTTPError:
            time.sleep(0.1)
        if proc.poll() is not None:
            break
    proc.kill()
    raise RuntimeError(f"gateway did not start:\n{proc.communicate()[0]}")


def stop(proc: subprocess.Popen[str]) -> str:
    proc.terminate()
    return proc.communicate(timeout=20)[0]


def test_serve_without_upstream_key_simulates_and_says_so() -> None:
    proc, port = run_gateway()
    try:
        client = openai.OpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key=SANDBOX_KEY, max_retries=0
        )
        reply = client.chat.completions.create(
            model="o1-mini", messages=[{"role": "user", "content": "2+2?"}]
        )
        assert reply.model == "o1-mini-2024-09-12"
        # The sandbox serves callers without a key too, but never a key that fails.
        assert httpx.get(f"http://127.0.0.1:{port}/v1/models").status_code == 200
        made_up = client.with_options(api_key="sk-gw-made-up-0123456789")
        with pytest.raises(openai.AuthenticationError) as refused:
            made_up.models.list()
        assert refused.value.code == "invalid_api_key"
    finally:
        output = stop(proc)
    assert "OPENAI_API_KEY is not set: serving from the built-in simulated upstream" in output
    assert "REDIS_URL is not set" in output


def test_the_in_memory_store_refuses_two_workers_and_admin_commands_say_it_is_not_kept(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # No REDIS_URL and no embedded store directory: the store is in the one process's memory.
    refused = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--simulate", "--workers", "2"],
        capture_output=True, text=True, timeout=30, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), EMBEDDED_DIR: "", "REDIS_URL": ""},
    )  # fmt: skip
    assert refused.returncode == 2
    assert "--workers 2 needs one store that all workers share" in refused.stderr
    assert "set REDIS_URL to a Redis server" in refused.stderr
    proc, port = run_gateway("--simulate", env={"GATEWAY_ADMIN_KEY": ADMIN_KEY})
    try:
        url = f"http://127.0.0.1:{port}"
        for argv in (["teams", "create", "lost", "--tier", "tier-1"], ["teams", "list"]):
            capsys.readouterr()
            assert main([*argv, "--url", url, "--admin-key", ADMIN_KEY]) == 0
            out, err = capsys.readouterr()
            assert "lost" in out
            assert err.strip() == MEMORY_NOTE  # once per command, on stderr
    finally:
        output = stop(proc)
    assert "teams, keys and spend are kept in this process's memory and lost" in output


def test_the_metrics_port_serves_metrics_alone_and_the_api_port_none() -> None:
    metrics_port = free_port()
    metrics_key = "metrics-key-0123456789-0123456789"
    proc, port = run_gateway(
        "--simulate", "--metrics-port", str(metrics_port), env={"GATEWAY_METRICS_KEY": metrics_key}
    )
    api, metrics = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}"
    try:
        assert httpx.get(f"{api}/v1/models").status_code == 200
        # With a metrics port the API port serves no metrics, even to the metrics key.
        refused = httpx.get(f"{api}/metrics", headers={"authorization": f"Bearer {metrics_key}"})
        assert refused.status_code == 404 and "gateway_" not in refused.text
        scraped = httpx.get(f"{metrics}/metrics")
        assert scraped.status_code == 200
        assert 'gateway_budget_spent_microdollars{team="sandbox"}' in scraped.text
        for path in ("/v1/models", "/healthz", "/admin/teams", "/metrics/"):
            answer = httpx.get(f"{metrics}{path}")
            assert answer.status_code == 404, path
            assert answer.json()["error"]["code"] == "unknown_url"
    finally:
        output = stop(proc)
    assert f"Uvicorn running on http://127.0.0.1:{metrics_port}" in output


def test_invalid_config_exits_with_the_bad_key_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("upstream:\n  read_timeout: 5\nmodels: {m: {upstream: x}}\n")
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 2
    assert "upstream.read_timeout: unknown key (did you mean 'read_timeout_s'?)" in result.stderr


def test_a_short_admin_key_stops_the_start() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--simulate", "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": str(ROOT), "GATEWAY_ADMIN_KEY": "adm-0123456789"},
    )
    assert result.returncode == 2
    assert (
        "config error: server.admin_key (GATEWAY_ADMIN_KEY): at least 32 characters, got 14"
        in result.stderr
    )


def test_simulate_command_serves_the_upstream_alone() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "simulate", "--port", str(port), "--request-log", "5"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        client = openai.OpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-simulated-upstream", max_retries=0
        )
        while True:
            try:
                models = client.models.list()
                break
            except openai.APIConnectionError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.1)
        assert "o1-preview" in {m.id for m in models}
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(
                base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-nope", max_retries=0
            ).models.list()
        assert len(httpx.get(f"http://127.0.0.1:{port}/_sim/requests").json()["data"]) == 2
    finally:
        stop(proc)


def test_hash_key_prints_the_digest() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "hash-key", "sk-abc"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.stdout.strip() == hashlib.sha256(b"sk-abc").hexdigest()
