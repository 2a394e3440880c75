"""A team with its own upstream key (its own OpenAI project): every call it makes goes upstream
with that key, never the gateway's; a team whose key is missing is refused, not served on the
shared key."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from gateway.config import SimulatorConfig
from gateway.simulator import create_simulator
from tests.conftest import SIM_KEY, GatewayFactory, ServerThread, base_config

OWN_KEY = "sk-team-own-project-key"
REVOKED_KEY = "sk-team-revoked-project-key-0123"
KEYS = {
    "own": "sk-gw-own-0123456789abcdef",
    "lost": "sk-gw-lost-0123456789abcdef",
    "revoked": "sk-gw-revoked-0123456789abcdef",
}


@pytest.fixture
def upstream() -> Iterator[ServerThread]:
    config = SimulatorConfig(api_keys=(SIM_KEY, OWN_KEY), request_log=50)
    with ServerThread(create_simulator(config)) as server:
        yield server


@pytest.fixture
def gateway(
    start_gateway: GatewayFactory, upstream: ServerThread, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> ServerThread:  # fmt: skip
    monkeypatch.setenv("OWN_TEAM_OPENAI_KEY", OWN_KEY)
    monkeypatch.delenv("LOST_TEAM_OPENAI_KEY", raising=False)
    monkeypatch.setenv("REVOKED_TEAM_OPENAI_KEY", REVOKED_KEY)  # one the upstream refuses

    def digest(name: str) -> str:
        return hashlib.sha256(KEYS[name].encode()).hexdigest()

    teams = tmp_path / "teams.yaml"
    teams.write_text(
        "teams:\n"
        "  - name: own\n    tier: tier-5\n    upstream_key_env: OWN_TEAM_OPENAI_KEY\n"
        f"    keys: [{{name: k, sha256: {digest('own')}}}]\n"
        "  - name: lost\n    tier: tier-5\n    upstream_key_env: LOST_TEAM_OPENAI_KEY\n"
        f"    keys: [{{name: k, sha256: {digest('lost')}}}]\n"
        "  - name: revoked\n    tier: tier-5\n    upstream_key_env: REVOKED_TEAM_OPENAI_KEY\n"
        f"    keys: [{{name: k, sha256: {digest('revoked')}}}]\n"
    )
    config = base_config(OPENAI_BASE_URL=f"{upstream.url}/v1", OPENAI_API_KEY=SIM_KEY)
    knobs = {"forward_header_prefixes": ("x-sim-",)}
    return start_gateway(config, admission={"teams_file": str(teams)}, upstream=knobs)


def sdk(server: ServerThread, team: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEYS[team], max_retries=0)


def chat(server: ServerThread, team: str) -> object:
    return sdk(server, team).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
    )


def sent_keys(upstream: ServerThread) -> list[str]:
    log = httpx.get(f"{upstream.url}/_sim/requests").json()["data"]
    return [entry["headers"]["authorization"] for entry in log]


def test_every_call_of_the_team_uses_its_own_key(
    gateway: ServerThread, upstream: ServerThread
) -> None:
    client = sdk(gateway, "own")
    chat(gateway, "own")
    created = client.responses.create(model="gpt-4o", input="hi")
    client.responses.retrieve(created.id)
    client.responses.create(model="o1-mini", input="and?", previous_response_id=created.id)
    client.embeddings.create(model="text-embedding-3-small", input="hi")
    assert set(sent_keys(upstream)) == {f"Bearer {OWN_KEY}"}


def test_a_team_whose_key_is_missing_is_refused_not_served_on_the_shared_key(
    gateway: ServerThread, upstream: ServerThread
) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        chat(gateway, "lost")
    assert info.value.status_code == 503 and info.value.code == "upstream_key_missing"
    assert sent_keys(upstream) == []


def test_a_team_whose_own_key_upstream_refuses_is_told_it_is_that_key(
    gateway: ServerThread, upstream: ServerThread
) -> None:
    # Not the gateway's credentials, which its operator would fix: the team's own.
    with pytest.raises(openai.AuthenticationError) as info:
        chat(gateway, "revoked")
    message = info.value.message
    assert "refused your team's own upstream key (HTTP 401, invalid_api_key)" in message
    assert "gateway's own credentials" not in message and REVOKED_KEY[-4:] not in message
    assert sent_keys(upstream) == [f"Bearer {REVOKED_KEY}"]


def test_a_failed_background_response_of_a_team_with_its_own_key_is_told_of_that_key(
    gateway: ServerThread,
) -> None:
    # Upstream words the failure for the account of the key it ran on: the team's own.
    client = sdk(gateway, "own")
    queued = client.responses.create(
        model="gpt-4o", input="hi", background=True, extra_headers={"x-sim-background": "failed"}
    )
    deadline = time.monotonic() + 30  # a guard: each read moves the response one step
    while (polled := client.responses.retrieve(queued.id)).status != "failed":
        assert time.monotonic() < deadline, polled.status
    for error in (polled.error, client.responses.cancel(queued.id).error):
        assert error is not None and error.code == "rate_limit_exceeded"
        assert error.message == (
            "The upstream API's rate limit for your team's own upstream key was reached. "
            "Please try again in 1.4s."
        )
