"""Requests naming a shut-down model, served by its successor, against a real redis-server:
the team's limits on the model it named still apply (README "Retired models")."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import openai
import pytest

from gateway.config import Config, DeploymentConfig
from tests.conftest import SIM_KEY, GatewayFactory, ServerThread, base_config, free_port, scrape
from tests.redis.endpoints.teams import sdk, serve_teams

TODAY = "2026-12-05"  # o1-preview shut down on 2025-07-28: gpt-6.2-astra serves it


def on_today(simulator: ServerThread) -> Config:
    return base_config(
        OPENAI_BASE_URL=f"{simulator.url}/v1", OPENAI_API_KEY=SIM_KEY,
        O1GW__RETIREMENT__TODAY=TODAY,
    )  # fmt: skip


def test_a_weekly_cap_on_the_model_named_holds_for_its_successor(
    start_gateway: GatewayFactory, simulator: ServerThread, redis_server: str, tmp_path: Path
) -> None:
    # A team allowed o1-preview alone, 2 of its messages a week.
    limits = "{models: {o1-preview: {messages_per_week: 2}}}"
    gateway = serve_teams(
        start_gateway, redis_server, tmp_path,
        {"capped": {"tier": "tier-5", "models": "[o1-preview]", "limits": limits}},
        config=on_today(simulator),
    )  # fmt: skip
    client = sdk(gateway, "capped").with_options(default_headers={"x-sim-today": TODAY})
    raw = client.chat.completions.with_raw_response.create(
        model="o1-preview", messages=[{"role": "user", "content": "Hi"}]
    )
    assert raw.headers["x-gateway-model-substituted"] == "o1-preview -> gpt-6.2-astra"
    # The Responses API counts as chat does.
    raw_response = client.responses.with_raw_response.create(model="o1-preview", input="Hi")
    assert raw_response.headers["x-gateway-model-substituted"] == "o1-preview -> gpt-6.2-astra"
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(
            model="o1-preview", messages=[{"role": "user", "content": "Hi"}]
        )
    assert "messages per week of o1-preview" in refused.value.message


def test_a_cache_hit_for_a_shut_down_model_counts_against_its_cap(
    start_gateway: GatewayFactory, simulator: ServerThread, redis_server: str, tmp_path: Path
) -> None:
    gateway = serve_teams(
        start_gateway, redis_server, tmp_path,
        {"capped": {"tier": "tier-5", "limits": "{models: {o1-preview: {messages_per_week: 1}}}"}},
        config=on_today(simulator),
    )  # fmt: skip
    client = sdk(gateway, "capped").with_options(
        default_headers={"x-sim-today": TODAY, "x-gateway-cache": "on"}
    )
    ask = {"model": "o1-preview", "messages": [{"role": "user", "content": "Hi"}]}
    raw = client.chat.completions.with_raw_response.create(**ask)  # type: ignore[call-overload]
    assert raw.headers["x-gateway-cache"] == "miss"
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(**ask)  # type: ignore[call-overload]
    assert "messages per week of o1-preview" in refused.value.message


def test_a_governed_endpoint_fits_the_limits_of_the_model_named(
    start_gateway: GatewayFactory, simulator: ServerThread, redis_server: str, tmp_path: Path
) -> None:
    config = on_today(simulator)
    models = dict(config.models)
    models["text-embedding-3-small"] = dataclasses.replace(
        models["text-embedding-3-small"], shutdown="2026-01-01", successor="text-embedding-3-large"
    )
    gateway = serve_teams(
        start_gateway, redis_server, tmp_path,
        {"capped": {"tier": "tier-5",
                    "limits": "{models: {text-embedding-3-small: {requests_per_minute: 1}}}"}},
        config=dataclasses.replace(config, models=models),
    )  # fmt: skip
    client = sdk(gateway, "capped")
    raw = client.embeddings.with_raw_response.create(model="text-embedding-3-small", input="Hi")
    assert raw.headers["x-gateway-model-substituted"] == (
        "text-embedding-3-small -> text-embedding-3-large"
    )
    with pytest.raises(openai.RateLimitError) as refused:
        client.embeddings.create(model="text-embedding-3-small", input="Hi")
    assert "requests per min (RPM) of text-embedding-3-small" in refused.value.message
    # Counted under the model asked for, served by its successor (as chat counts them).
    assert (
        'gateway_requests_total{endpoint="embeddings",model="text-embedding-3-small",'
        'routed_model="text-embedding-3-large",status_class="2xx",team="capped"} 1.0'
    ) in scrape(gateway.url)


def test_a_shut_down_fallback_served_by_its_successor_fits_its_limits(
    start_gateway: GatewayFactory, simulator: ServerThread, redis_server: str, tmp_path: Path
) -> None:
    config = on_today(simulator)
    models = dict(config.models)
    # gpt-6.2-astra unreachable; its fallback o1-mini (gpt-6.1-sol serves it) is capped.
    models["gpt-6.2-astra"] = dataclasses.replace(
        models["gpt-6.2-astra"],
        fallbacks=("o1-mini",),
        deployments={"gone": DeploymentConfig(base_url=f"http://127.0.0.1:{free_port()}/v1")},
    )
    gateway = serve_teams(
        start_gateway, redis_server, tmp_path,
        {"capped": {"tier": "tier-5", "limits": "{models: {o1-mini: {messages_per_week: 1}}}"}},
        config=dataclasses.replace(config, models=models),
        upstream={"forward_header_prefixes": ("x-sim-",), "retries": 0},
    )  # fmt: skip
    client = sdk(gateway, "capped").with_options(default_headers={"x-sim-today": TODAY})
    ask = {"model": "gpt-6.2-astra", "messages": [{"role": "user", "content": "Hi"}]}
    raw = client.chat.completions.with_raw_response.create(**ask)  # type: ignore[call-overload]
    assert raw.headers["x-gateway-fallback"] == (
        "gpt-6.2-astra -> gpt-6.1-sol (upstream_unreachable)"
    )
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(**ask)  # type: ignore[call-overload]
    assert "messages per week of o1-mini" in refused.value.message


def test_a_team_not_allowed_the_model_named_is_not_served_its_successor(
    start_gateway: GatewayFactory, simulator: ServerThread, redis_server: str, tmp_path: Path
) -> None:
    # Tier 1 has no o1 models: o1-preview, served by gpt-6.2-astra since its shutdown, is a
    # model it cannot use, refused as any other; nothing says or counts a substitution.
    gateway = serve_teams(
        start_gateway, redis_server, tmp_path,
        {"small": {"tier": "tier-1"}, "large": {"tier": "tier-5"}},
        config=on_today(simulator),
    )  # fmt: skip
    small = sdk(gateway, "small").with_options(default_headers={"x-sim-today": TODAY})
    hi = [{"role": "user", "content": "Hi"}]
    for refuse in (
        lambda: small.chat.completions.create(model="o1-preview", messages=hi),  # type: ignore[arg-type]
        lambda: small.embeddings.create(model="o1-preview", input="Hi"),
    ):
        with pytest.raises(openai.NotFoundError) as refused:
            refuse()
        assert refused.value.message.endswith(
            "The model `o1-preview` does not exist or you do not have access to it."
        )
        assert "x-gateway-model-substituted" not in refused.value.response.headers
    assert "gateway_model_substitutions_total{" not in scrape(gateway.url)
    large = sdk(gateway, "large").with_options(default_headers={"x-sim-today": TODAY})
    raw = large.chat.completions.with_raw_response.create(model="o1-preview", messages=hi)  # type: ignore[arg-type]
    assert raw.headers["x-gateway-model-substituted"] == "o1-preview -> gpt-6.2-astra"
    assert (
        'gateway_model_substitutions_total{model="o1-preview",successor="gpt-6.2-astra"} 1.0'
    ) in scrape(gateway.url)
