"""Requests naming a shut-down model, served by its successor, against a real redis-server:
the team's limits on the model it named still apply (README "Retired models")."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


TeamsServer = Callable[[dict[str, dict[str, str]]], ServerThread]


@pytest.fixture
def teams_on_today(
    start_gateway: GatewayFactory, simulator: ServerThread, redis_server: str, tmp_path: Path
) -> TeamsServer:
    """Serves a gateway knowing the teams given, judging shutdowns by TODAY."""
    return lambda teams: serve_teams(
        start_gateway, redis_server, tmp_path, teams, config=on_today(simulator)
    )


def on_the_day(gateway: ServerThread, team: str) -> openai.OpenAI:
    """The team's client, asking the simulator on the day the gateway judges by."""
    return sdk(gateway, team).with_options(default_headers={"x-sim-today": TODAY})


def test_a_weekly_cap_on_the_model_named_holds_for_its_successor(
    teams_on_today: TeamsServer,
) -> None:
    # A team allowed o1-preview alone, 2 of its messages a week.
    limits = "{models: {o1-preview: {messages_per_week: 2}}}"
    gateway = teams_on_today(
        {"capped": {"tier": "tier-5", "models": "[o1-preview]", "limits": limits}}
    )
    client = on_the_day(gateway, "capped")
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
    teams_on_today: TeamsServer,
) -> None:
    gateway = teams_on_today(
        {"capped": {"tier": "tier-5", "limits": "{models: {o1-preview: {messages_per_week: 1}}}"}}
    )
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
    client = on_the_day(gateway, "capped")
    ask = {"model": "gpt-6.2-astra", "messages": [{"role": "user", "content": "Hi"}]}
    raw = client.chat.completions.with_raw_response.create(**ask)  # type: ignore[call-overload]
    assert raw.headers["x-gateway-fallback"] == (
        "gpt-6.2-astra -> gpt-6.1-sol (upstream_unreachable)"
    )
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(**ask)  # type: ignore[call-overload]
    assert "messages per week of o1-mini" in refused.value.message


def test_a_team_not_allowed_the_model_named_is_not_served_its_successor(
    teams_on_today: TeamsServer,
) -> None:
    # Tier 1 has no o1 models: o1-preview, served by gpt-6.2-astra since its shutdown, is a
    # model it cannot use, refused as any other; nothing says or counts a substitution.
    gateway = teams_on_today({"small": {"tier": "tier-1"}, "large": {"tier": "tier-5"}})
    small = on_the_day(gateway, "small")
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
    large = on_the_day(gateway, "large")
    raw = large.chat.completions.with_raw_response.create(model="o1-preview", messages=hi)  # type: ignore[arg-type]
    assert raw.headers["x-gateway-model-substituted"] == "o1-preview -> gpt-6.2-astra"
    assert (
        'gateway_model_substitutions_total{model="o1-preview",successor="gpt-6.2-astra"} 1.0'
    ) in scrape(gateway.url)


def test_stored_completions_a_successor_served_are_found_by_the_model_named(
    teams_on_today: TeamsServer,
) -> None:
    gateway = teams_on_today({"mine": {"tier": "tier-5"}, "theirs": {"tier": "tier-5"}})
    mine, theirs = on_the_day(gateway, "mine"), on_the_day(gateway, "theirs")
    hi: Any = [{"role": "user", "content": "Hi"}]
    named = mine.chat.completions.create(model="o1-preview", messages=hi, store=True).id
    made = mine.chat.completions.create(model="o1-preview", messages=hi, store=True, stream=True)
    (streamed,) = {chunk.id for chunk in made}
    mine.chat.completions.retrieve(streamed)  # its owner record is written beside the stream
    direct = mine.chat.completions.create(model="gpt-6.2-astra", messages=hi, store=True).id
    other = theirs.chat.completions.create(model="o1-preview", messages=hi, store=True).id
    assert mine.chat.completions.retrieve(named).model == "gpt-6.2-astra"  # stored so upstream

    def listed(client: openai.OpenAI, model: str) -> list[str]:
        return [c.id for c in client.chat.completions.list(model=model)]

    # By the name its client sent (or that name's snapshot), and by the successor's own.
    assert listed(mine, "o1-preview") == listed(mine, "o1-preview-2024-09-12") == [named, streamed]
    assert listed(mine, "gpt-6.2-astra") == [named, streamed, direct]
    assert listed(mine, "o1-mini") == []
    # Each team finds its own only.
    assert listed(theirs, "o1-preview") == [other]
