"""One team's calls in flight cannot take every upstream connection of a worker: another
team's call is served at once while the first holds as many slow calls as it may."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.conftest import GatewayFactory
from tests.redis.endpoints.teams import key_of, teams_yaml

NOISY, QUIET = key_of("noisy"), key_of("quiet")
ASK = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
SLOW_MS = 3000


def two_teams(tmp_path: Path) -> Path:
    teams = tmp_path / "teams.yaml"
    teams.write_text(teams_yaml({"noisy": {"tier": "tier-5"}, "quiet": {"tier": "tier-5"}}))
    return teams


def call(url: str, key: str, slow: bool) -> tuple[int, float]:
    headers = {"authorization": f"Bearer {key}"}
    if slow:
        headers["x-sim-latency-ms"] = str(SLOW_MS)
    started = time.perf_counter()
    answer = httpx.post(f"{url}/v1/chat/completions", json=ASK, headers=headers, timeout=30)
    return answer.status_code, time.perf_counter() - started


def test_a_team_holding_slow_calls_leaves_connections_for_other_teams(
    start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    # Four upstream connections, two of them at most for one team's requests. Without the
    # bound the quiet team's call queued behind two rounds of the noisy team's (6.2 s).
    server = start_gateway(
        upstream={"pool_size": 4, "forward_header_prefixes": ("x-sim-",), "retries": 0},
        server={"max_team_requests": 2},
        admission={"teams_file": str(two_teams(tmp_path))},
    )
    assert call(server.url, QUIET, slow=False)[0] == 200  # warm
    with ThreadPoolExecutor(8) as pool:
        noisy = [pool.submit(call, server.url, NOISY, True) for _ in range(8)]
        time.sleep(0.5)  # the noisy team's calls are in flight
        status, took = call(server.url, QUIET, slow=False)
        print(f"quiet team's call: {status} in {took * 1000:.0f} ms")
        statuses = sorted(f.result()[0] for f in noisy)
    assert status == 200
    assert took < 1.0
    # The noisy team's share was served; the rest refused at once, as a rate limit.
    assert statuses == [200, 200, 429, 429, 429, 429, 429, 429]
    # Its share is given back as its calls end, refused ones included.
    shares = server.server.config.app.state.gateway.shares
    deadline = time.monotonic() + 2  # given back just after each answer went
    while shares.in_flight("noisy") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert shares.in_flight("noisy") == 0
    assert call(server.url, NOISY, slow=False)[0] == 200


def test_the_refusal_says_why_and_when_to_retry(
    start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    server = start_gateway(
        upstream={"forward_header_prefixes": ("x-sim-",)},
        server={"max_team_requests": 1},
        admission={"teams_file": str(two_teams(tmp_path))},
    )
    headers = {"authorization": f"Bearer {NOISY}"}
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(call, server.url, NOISY, True)
        time.sleep(0.5)
        answer = httpx.post(f"{server.url}/v1/chat/completions", json=ASK, headers=headers)
        assert slow.result()[0] == 200
    assert answer.status_code == 429
    assert answer.headers["retry-after"] == "1"
    error = answer.json()["error"]
    assert error["code"] == "too_many_requests_in_flight" and error["type"] == "requests"
    assert "Limit 1" in error["message"]
