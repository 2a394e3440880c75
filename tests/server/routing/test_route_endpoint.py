"""Routing at the request edge: `POST /v1/route`, a team's default policy, budget step-down."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import CLIENT_KEY, GatewayFactory, ServerThread

HARD_SCIENCE = (
    "A spin-1/2 particle in a uniform magnetic field B along z starts in the +x eigenstate. "
    "Using the Heisenberg picture, derive the expectation value of the spin operator S_x(t), "
    "and compute the Larmor precession frequency for an electron in a 1.5 T field "
    "(gyromagnetic ratio 1.76e11 rad/(s*T))."
)
CHEAP_KEY = "sk-gw-cheap-team-key-0123456789"
THRIFTY_KEY = "sk-gw-thrifty-team-key-0123456789"


def teams_yaml(path: Path) -> Path:
    def digest(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()

    path.write_text(
        f"""
teams:
  - name: test
    tier: tier-5
    keys: [{{name: client, sha256: {digest(CLIENT_KEY)}}}]
  - name: cheap
    tier: tier-5
    routing_policy: auto-cheap
    keys: [{{name: client, sha256: {digest(CHEAP_KEY)}}}]
  - name: thrifty
    tier: tier-5
    budget_usd: 10
    keys: [{{name: client, sha256: {digest(THRIFTY_KEY)}}}]
"""
    )
    return path


def route(server: ServerThread, key: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/route", json=body, headers={"Authorization": f"Bearer {key}"}
    )


@pytest.fixture
def gateway(start_gateway: GatewayFactory, tmp_path: Path) -> ServerThread:
    return start_gateway(admission={"teams_file": str(teams_yaml(tmp_path / "teams.yaml"))})


def test_route_answers_the_decision_and_the_cost_on_each_model(gateway: ServerThread) -> None:
    messages = [{"role": "user", "content": HARD_SCIENCE}]
    answer = route(gateway, CLIENT_KEY, {"model": "auto", "messages": messages})
    assert answer.status_code == 200
    body = answer.json()
    assert body["policy"] == "auto"
    assert body["model"] == "o1-preview"
    assert body["upstream_model"] == "o1-preview-2024-09-12"
    assert body["reasons"][0] == "domain: science"
    assert 0 < body["score"] <= 1
    estimates = body["estimates"]
    assert set(estimates) == {"gpt-4o", "o1-mini", "o1-preview"}
    prompt = estimates["gpt-4o"]["prompt_tokens"]
    assert prompt > 50
    # gpt-4o: 500 typical output tokens at $10/M, the prompt at $2.50/M (config/gateway.yaml).
    assert estimates["gpt-4o"]["estimated_cost_micros"] == -(-(prompt * 2_500_000 + 500 * 10_000_000) // 1_000_000)  # fmt: skip
    assert (
        estimates["gpt-4o"]["estimated_cost_micros"]
        < estimates["o1-mini"]["estimated_cost_micros"]
        < estimates["o1-preview"]["estimated_cost_micros"]
    )
    assert estimates["o1-preview"]["max_completion_tokens"] == 32768


def test_route_estimates_count_images_and_tools_by_each_models_figures(
    gateway: ServerThread,
) -> None:
    """The estimate's prompt is the one the request would be held for: its image inputs by the
    model's own figures (`image_input_tokens`; gpt-4o-mini bills an image far above gpt-4o's),
    and its tool schemas."""
    text = [{"role": "user", "content": "Describe the picture."}]
    image = {
        "type": "image_url",
        "image_url": {"url": "https://example.com/a.png", "detail": "high"},
    }
    tools = [{"type": "function", "function": {"name": "look", "parameters": {"type": "object"}}}]
    with_image = [{"role": "user", "content": [{"type": "text", "text": "Describe the picture."}, image]}]  # fmt: skip
    models = ["gpt-4o", "gpt-4o-mini"]
    plain = {m: route(gateway, CLIENT_KEY, {"model": m, "messages": text}).json() for m in models}
    seen = {
        m: route(gateway, CLIENT_KEY, {"model": m, "messages": with_image}).json() for m in models
    }
    tooled = route(gateway, CLIENT_KEY, {"model": "gpt-4o", "messages": text, "tools": tools})
    for model, high in (("gpt-4o", 1_445), ("gpt-4o-mini", 48_169)):
        alone = plain[model]["estimates"][model]["prompt_tokens"]
        assert seen[model]["estimates"][model]["prompt_tokens"] >= alone + high, model
    alone = plain["gpt-4o"]["estimates"]["gpt-4o"]["prompt_tokens"]
    assert tooled.json()["estimates"]["gpt-4o"]["prompt_tokens"] > alone


def test_route_calls_no_upstream(gateway: ServerThread, simulator: ServerThread) -> None:
    before = httpx.get(f"{simulator.url}/_sim/requests").json()["data"]
    route(gateway, CLIENT_KEY, {"messages": [{"role": "user", "content": "hi"}]})
    assert httpx.get(f"{simulator.url}/_sim/requests").json()["data"] == before


def test_route_respects_max_completion_tokens_and_default_alias(gateway: ServerThread) -> None:
    body = {"messages": [{"role": "user", "content": "Hello!"}], "max_completion_tokens": 100}
    answer = route(gateway, CLIENT_KEY, body).json()
    assert answer["policy"] == "auto" and answer["model"] == "gpt-4o"
    assert all(e["estimated_completion_tokens"] == 100 for e in answer["estimates"].values())
    assert all(e["max_completion_tokens"] == 100 for e in answer["estimates"].values())


def test_route_for_a_named_model_is_not_routed(gateway: ServerThread) -> None:
    body = {"model": "o1-mini", "messages": [{"role": "user", "content": "Hello!"}]}
    answer = route(gateway, CLIENT_KEY, body).json()
    assert answer["policy"] is None and answer["model"] == "o1-mini"
    assert list(answer["estimates"]) == ["o1-mini"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "nope", "messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "auto"}, "messages"),
        ({"model": "auto", "messages": "text"}, "messages"),
        ({"model": 7, "messages": [{"role": "user", "content": "x"}]}, "model"),
    ],
)
def test_route_rejects_bad_requests(
    gateway: ServerThread, body: dict[str, Any], param: str
) -> None:
    answer = route(gateway, CLIENT_KEY, body)
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == param


def test_route_needs_a_key(gateway: ServerThread) -> None:
    answer = route(gateway, "sk-gw-wrong", {"messages": [{"role": "user", "content": "x"}]})
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "invalid_api_key"


def test_a_team_default_policy_decides_what_auto_means(gateway: ServerThread) -> None:
    messages = [{"role": "user", "content": HARD_SCIENCE}]
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=CHEAP_KEY, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=messages)  # type: ignore[arg-type]
    assert raw.headers["x-gateway-route-model"] == "o1-mini"  # auto-cheap: never o1-preview
    assert raw.parse().model == "o1-mini-2024-09-12"
    # An explicit alias still means what it says.
    raw = client.chat.completions.with_raw_response.create(model="auto-best", messages=messages)  # type: ignore[arg-type]
    assert raw.headers["x-gateway-route-model"] == "o1-preview"
    assert route(gateway, CHEAP_KEY, {"messages": messages}).json()["policy"] == "auto-cheap"
