"""Routing's budget step-down, reading a team's spend from a real redis-server."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime
from pathlib import Path

import openai
import redis

from tests.conftest import CLIENT_KEY, GatewayFactory, base_config
from tests.server.routing.test_route_endpoint import HARD_SCIENCE, THRIFTY_KEY, route, teams_yaml


def test_budget_step_down_on_real_redis(
    start_gateway: GatewayFactory, tmp_path: Path, redis_server: str
) -> None:
    policies = dict(base_config().routing.policies)
    policies["auto"] = dataclasses.replace(policies["auto"], step_down_at=0.8)
    server = start_gateway(
        routing={"policies": policies},
        redis={"url": redis_server},
        admission={"teams_file": str(teams_yaml(tmp_path / "teams.yaml")), "cache_ttl_s": 0.05},
    )
    messages = [{"role": "user", "content": HARD_SCIENCE}]
    assert route(server, THRIFTY_KEY, {"messages": messages}).json()["model"] == "o1-preview"

    # The team has spent $8.50 of its $10 this month: 85% >= 80%.
    month = datetime.now(UTC).strftime("%Y-%m")
    redis.Redis.from_url(redis_server).set(f"{{t:thrifty}}:spend:{month}", 8_500_000)
    time.sleep(0.1)  # past the replica's 0.05 s trust in what it last read
    answer = route(server, THRIFTY_KEY, {"messages": messages}).json()
    assert answer["model"] == "o1-mini"
    assert any("85% spent" in reason for reason in answer["reasons"])
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=THRIFTY_KEY, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=messages)  # type: ignore[arg-type]
    assert raw.headers["x-gateway-route-model"] == "o1-mini"
    assert "budget" in raw.headers["x-gateway-route-reason"]
    assert raw.parse().model == "o1-mini-2024-09-12"
    # A team under its share, and a policy without a step-down, are untouched.
    assert route(server, CLIENT_KEY, {"messages": messages}).json()["model"] == "o1-preview"
    body = {"model": "auto-best", "messages": messages}
    assert route(server, THRIFTY_KEY, body).json()["model"] == "o1-preview"
