"""SIGTERM under load: requests and streams in flight finish, every hold is settled, the
process exits cleanly, and the spend in Redis is what ran, to the micro-dollar."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import redis

from gateway.admission.pricing import cost_micros
from gateway.config import Price
from gateway.wire.usage import Usage, usage_from
from tests.conftest import ServerThread, base_config, start_gateway_process

KEY = "sk-gw-shutdown-test-key-0123456789"


def start(
    redis_url: str, simulator: ServerThread, tmp: Path
) -> tuple[subprocess.Popen[bytes], int]:
    teams = tmp / "teams.yaml"
    digest = hashlib.sha256(KEY.encode()).hexdigest()
    teams.write_text(
        f"teams:\n  - name: calm\n    tier: tier-5\n    keys: [{{name: k, sha256: {digest}}}]\n"
    )
    return start_gateway_process(
        simulator, redis_url, teams, log=tmp / "gateway.log",
        O1GW__UPSTREAM__FORWARD_HEADER_PREFIXES="x-sim-", O1GW__SERVER__SHUTDOWN_TIMEOUT_S="20",
    )  # fmt: skip


def test_sigterm_finishes_what_is_in_flight_and_settles_every_hold(
    redis_server: str, simulator: ServerThread, tmp_path: Path
) -> None:
    proc, port = start(redis_server, simulator, tmp_path)
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    headers = {"Authorization": f"Bearer {KEY}", "x-sim-latency-ms": "1500"}
    results: list[Any] = []

    def call(stream: bool) -> None:
        body = {
            "model": "gpt-4o", "messages": [{"role": "user", "content": "Slowly, please."}],
            "stream": stream, **({"stream_options": {"include_usage": True}} if stream else {}),
        }  # fmt: skip
        try:
            with httpx.stream("POST", url, json=body, headers=headers, timeout=30) as answer:
                text = answer.read().decode()
            results.append((answer.status_code, stream, text))
        except httpx.HTTPError as exc:
            results.append((0, stream, repr(exc)))

    threads = [threading.Thread(target=call, args=(i % 2 == 0,)) for i in range(6)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)  # all six are waiting on the (slow) upstream
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    refused = False
    try:
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
    except httpx.HTTPError:
        refused = True  # no new work once shutdown began
    for thread in threads:
        thread.join(timeout=30)
    # uvicorn re-raises the signal after its graceful shutdown, so the status says SIGTERM.
    assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
    assert "Traceback" not in (tmp_path / "gateway.log").read_text()
    assert refused
    assert len(results) == 6 and all(status == 200 for status, _, _ in results), results

    price: Price = base_config().models["gpt-4o"].price
    expected = 0
    for _, stream, text in results:
        if stream:
            assert text.rstrip().endswith("data: [DONE]")
            last = [line for line in text.splitlines() if line.startswith("data: {")][-1]
            usage = usage_from(orjson.loads(last[6:])["usage"])
        else:
            usage = usage_from(orjson.loads(text)["usage"])
        assert isinstance(usage, Usage)
        expected += cost_micros(price, usage)
    store = redis.Redis.from_url(redis_server)
    month = datetime.now(UTC).strftime("%Y-%m")
    assert int(store.get(f"{{t:calm}}:spend:{month}") or 0) == expected
    assert int(store.get(f"{{t:calm}}:held:{month}") or 0) == 0
    assert store.zcard("{t:calm}:holds") == 0
    # Every admission key will expire (the team and key records are meant to stay).
    for key in store.scan_iter("{t:calm}*"):
        if key not in (b"{t:calm}:team", b"{t:calm}:keys"):
            assert store.ttl(key) > 0, key
