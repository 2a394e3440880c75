"""o1 models with unchanged clients, end to end: the openai SDK -> gateway -> simulated upstream
(which rejects exactly what o1-preview and o1-mini rejected in September 2024)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import CLIENT_KEY, SIM_KEY, GatewayFactory, ServerThread, base_config, scrape
from tests.redis.endpoints.teams import key_of, teams_yaml

SYSTEM_AND_USER = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is 17 * 23?"},
]


@pytest.fixture
def gateway(start_gateway: GatewayFactory) -> ServerThread:
    # No upstream retries: these tests time upstream errors against the status grace period.
    return start_gateway(
        upstream={"forward_header_prefixes": ("x-sim-",), "retries": 0},
        compat={"keepalive_s": 0.3, "status_grace_s": 0.3},
    )


def sdk(server: ServerThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=CLIENT_KEY, max_retries=0)


def last_upstream_body(simulator: ServerThread) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{simulator.url}/_sim/requests").json()["data"][-1]["body"]
    return body


def test_system_message_sampling_and_max_tokens_are_patched(
    gateway: ServerThread, simulator: ServerThread
) -> None:
    raw = sdk(gateway).chat.completions.with_raw_response.create(
        model="o1-preview", messages=SYSTEM_AND_USER, temperature=0.2, max_tokens=50,  # type: ignore[arg-type]
    )  # fmt: skip
    completion = raw.parse()
    assert completion.model == "o1-preview-2024-09-12"
    assert completion.choices[0].message.content
    patched = raw.headers["x-gateway-patched"].split(",")
    assert {"system_messages", "max_tokens", "temperature"} <= set(patched)
    sent = last_upstream_body(simulator)
    assert [m["role"] for m in sent["messages"]] == ["user"]
    assert "You are terse." in sent["messages"][0]["content"]
    assert "What is 17 * 23?" in sent["messages"][0]["content"]
    assert "temperature" not in sent and "max_tokens" not in sent
    assert sent["max_completion_tokens"] == 4096  # headroom for reasoning


def test_fake_stream_reassembles_into_the_non_streamed_answer(gateway: ServerThread) -> None:
    client = sdk(gateway)
    messages = [{"role": "user", "content": "Explain why the sky is blue."}]
    whole = client.chat.completions.create(model="o1-mini", messages=messages)  # type: ignore[arg-type]
    chunks = list(
        client.chat.completions.create(
            model="o1-mini", messages=messages, stream=True,  # type: ignore[arg-type]
            stream_options={"include_usage": True},
        )
    )  # fmt: skip
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content_chunks) > 3  # words, not one blob
    assert {c.id for c in chunks} == {chunks[0].id}
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens_details is not None
    assert chunks[-1].usage.completion_tokens_details.reasoning_tokens > 0


def test_keepalives_flow_while_the_model_thinks(gateway: ServerThread) -> None:
    with httpx.stream(
        "POST",
        f"{gateway.url}/v1/chat/completions",
        json={"model": "o1-preview", "messages": SYSTEM_AND_USER, "stream": True},
        headers={"Authorization": f"Bearer {CLIENT_KEY}", "x-sim-latency-ms": "3000"},
        timeout=10,
    ) as resp:
        # The 200 comes after the grace period (0.3 s here), long before the 3 s answer: the
        # keepalives sent while waiting for it could not have gone out otherwise.
        assert resp.status_code == 200
        body = resp.read().decode()
    assert body.startswith(": ")
    assert body.count(": o1-gateway") >= 3
    assert body.rstrip().endswith("data: [DONE]")


def test_upstream_error_before_the_first_byte_keeps_its_status(gateway: ServerThread) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        list(
            sdk(gateway).chat.completions.create(
                model="o1-mini", messages=SYSTEM_AND_USER, stream=True,  # type: ignore[arg-type]
                extra_headers={"x-sim-fault": "500"},
            )
        )  # fmt: skip
    assert info.value.status_code == 500


def test_upstream_error_after_keepalives_arrives_in_stream(gateway: ServerThread) -> None:
    stream = sdk(gateway).chat.completions.create(
        model="o1-mini", messages=SYSTEM_AND_USER, stream=True,  # type: ignore[arg-type]
        extra_headers={"x-sim-fault": "500", "x-sim-latency-ms": "1000"},
    )  # fmt: skip
    with pytest.raises(openai.APIError):
        list(stream)


def test_stop_sequences_are_applied_to_the_answer(gateway: ServerThread) -> None:
    completion = sdk(gateway).chat.completions.create(
        model="o1-mini", messages=SYSTEM_AND_USER, stop=["world"],  # type: ignore[arg-type]
        extra_headers={"x-sim-answer": "hello world again"},
    )  # fmt: skip
    assert completion.choices[0].message.content == "hello "
    assert completion.choices[0].finish_reason == "stop"


def test_images_are_refused_clearly_on_a_model_that_cannot_see(gateway: ServerThread) -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    messages = [{"role": "user", "content": [{"type": "text", "text": "What is this?"}, image]}]
    with pytest.raises(openai.BadRequestError) as info:
        sdk(gateway).chat.completions.create(model="o1-preview", messages=messages)  # type: ignore[arg-type]
    assert info.value.code == "unsupported_content"


def test_gpt_4o_requests_pass_through_untouched(
    gateway: ServerThread, simulator: ServerThread
) -> None:
    request = {"model": "gpt-4o", "messages": SYSTEM_AND_USER, "temperature": 0.2, "max_tokens": 50}
    raw = sdk(gateway).chat.completions.with_raw_response.create(**request)  # type: ignore[arg-type]
    assert "x-gateway-patched" not in raw.headers
    sent = last_upstream_body(simulator)
    # Only the snapshot name, the team's identifier (never its name) and `auto`, the tier a
    # request naming none is served at (so that the answer names the tier upstream bills), are
    # the gateway's.
    assert sent == {
        **request,
        "model": "gpt-4o-2024-08-06",
        "safety_identifier": sent["safety_identifier"],
        "service_tier": "auto",
    }
    assert sent["safety_identifier"].startswith("o1gw-") and "test" not in sent["safety_identifier"]


def test_a_stale_capability_table_is_patched_after_one_refusal(
    start_gateway: GatewayFactory, simulator: ServerThread
) -> None:
    # The table claims o1-mini streams (it did from November 2024); this upstream says no.
    config = base_config(
        OPENAI_BASE_URL=f"{simulator.url}/v1",
        OPENAI_API_KEY=SIM_KEY,
        **{"O1GW__MODELS__O1-MINI__CAPABILITIES__STREAMING": "true"},
    )
    server = start_gateway(config)
    client = sdk(server)
    for _ in range(2):
        chunks = list(
            client.chat.completions.create(model="o1-mini", messages=SYSTEM_AND_USER, stream=True)  # type: ignore[arg-type]
        )
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    metrics = scrape(server.url)
    # Learned once, then remembered: the second request went straight to the patched form.
    assert 'gateway_adaptive_patches_total{capability="streaming",model="o1-mini"} 1.0' in metrics


def test_a_strict_team_gets_upstream_errors_as_they_are(
    start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    digest = hashlib.sha256(b"sk-gw-strict-team-key").hexdigest()
    teams = tmp_path / "teams.yaml"
    teams.write_text(
        f"teams:\n  - name: purist\n    tier: tier-5\n    strict: true\n"
        f"    keys: [{{name: k, sha256: {digest}}}]\n"
    )
    server = start_gateway(admission={"teams_file": str(teams)})
    client = openai.OpenAI(
        base_url=f"{server.url}/v1", api_key="sk-gw-strict-team-key", max_retries=0
    )
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="o1-preview", messages=SYSTEM_AND_USER)  # type: ignore[arg-type]
    assert info.value.code == "unsupported_value" and info.value.param == "messages[0].role"


def test_one_teams_refused_request_does_not_patch_other_teams_requests(
    start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    # gpt-6-luna takes `temperature` at effort none only: a refusal at another effort says
    # nothing about the model, and nothing about another team's requests.
    from gateway.config import SimulatorConfig
    from gateway.simulator import create_simulator

    today = "2026-12-07"
    noisy, quiet = key_of("noisy"), key_of("quiet")
    teams = tmp_path / "teams.yaml"
    teams.write_text(teams_yaml({"noisy": {"tier": "tier-5"}, "quiet": {"tier": "tier-5"}}))
    with ServerThread(create_simulator(SimulatorConfig(request_log=20, today=today))) as sim:
        config = base_config(
            OPENAI_BASE_URL=f"{sim.url}/v1", OPENAI_API_KEY=SIM_KEY, O1GW__RETIREMENT__TODAY=today
        )
        server = start_gateway(config, admission={"teams_file": str(teams)})

        def ask(key: str, effort: str) -> Any:
            client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)
            return client.chat.completions.with_raw_response.create(
                model="gpt-6-luna", messages=SYSTEM_AND_USER, temperature=0.2,  # type: ignore[arg-type]
                reasoning_effort=effort,  # type: ignore[arg-type]
            )  # fmt: skip

        # The noisy team's own request is served, patched once upstream refused it.
        assert ask(noisy, "high").parse().choices[0].message.content
        raw = ask(quiet, "none")
        assert "x-gateway-patched" not in raw.headers
        assert last_upstream_body(sim)["temperature"] == 0.2
        # The noisy team's lesson holds for its own requests at that effort, not at another.
        assert "temperature" in ask(noisy, "high").headers["x-gateway-patched"]
        assert last_upstream_body(sim).get("temperature") is None
        assert "x-gateway-patched" not in ask(noisy, "none").headers
        assert last_upstream_body(sim)["temperature"] == 0.2
