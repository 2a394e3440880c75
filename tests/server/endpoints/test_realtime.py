"""Realtime sessions and client secrets hand out a credential whose use never passes the
gateway again: refused with a clear 403, unless the operator opens them to a team
(`passthrough.allow` with `teams`); to every other team such a path does not exist."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import httpx
import pytest

from gateway.config import AllowedPath, ModelConfig, Price
from tests.conftest import SIM_KEY, GatewayFactory, ServerThread, base_config

REALTIME = "gpt-4o-realtime-preview"
KEYS = {"voice": "sk-gw-voice-0123456789abcdef", "other": "sk-gw-other-0123456789abcdef"}
PATHS = (
    "/v1/realtime/sessions",
    "/v1/realtime/client_secrets",
    "/v1/realtime/transcription_sessions",
)


def teams_file(tmp_path: Path) -> str:
    path = tmp_path / "teams.yaml"
    path.write_text(
        "teams:\n"
        + "".join(
            f"  - name: {name}\n    tier: tier-5\n"
            f"    keys: [{{name: k, sha256: {hashlib.sha256(key.encode()).hexdigest()}}}]\n"
            for name, key in KEYS.items()
        )
    )
    return str(path)


def post(server: ServerThread, path: str, team: str, model: str = REALTIME) -> httpx.Response:
    return httpx.post(
        f"{server.url}{path}",
        json={"session": {"type": "realtime", "model": model}},
        headers={"Authorization": f"Bearer {KEYS[team]}"},
    )


def sent_paths(simulator: ServerThread) -> list[str]:
    log = httpx.get(f"{simulator.url}/_sim/requests").json()["data"]
    return [entry["path"] for entry in log]


@pytest.mark.parametrize("path", PATHS)
def test_realtime_is_refused_and_never_sent_upstream(
    start_gateway: GatewayFactory, simulator: ServerThread, tmp_path: Path, path: str
) -> None:
    gateway = start_gateway(admission={"teams_file": teams_file(tmp_path)})
    answer = post(gateway, path, "voice")
    assert answer.status_code == 403
    error = answer.json()["error"]
    assert error["code"] == "realtime_not_governed" and error["type"] == "permission_error"
    assert "cannot be metered" in error["message"]
    assert path not in sent_paths(simulator)


def test_an_operator_may_open_client_secrets_to_one_team(
    start_gateway: GatewayFactory, simulator: ServerThread, tmp_path: Path
) -> None:
    """With the path, the operator configures the model its sessions name: the gateway
    governs every model a team uses, and any other is refused on this free entry too."""
    allow = (
        AllowedPath(method="POST", path="/v1/realtime/client_secrets", charge="free", teams=("voice",)),
    )  # fmt: skip
    config = base_config(OPENAI_BASE_URL=f"{simulator.url}/v1", OPENAI_API_KEY=SIM_KEY)
    # OpenAI's prices for it at its launch: $5 and $20 per 1M text tokens, $100 and $200 audio.
    prices = {"input": 5, "output": 20, "audio_input": 100, "audio_output": 200}
    realtime = ModelConfig(
        upstream=REALTIME, price=Price(**{k: usd * 1_000_000 for k, usd in prices.items()})
    )
    config = dataclasses.replace(config, models={**config.models, REALTIME: realtime})
    gateway = start_gateway(
        config, admission={"teams_file": teams_file(tmp_path)}, passthrough={"allow": allow}
    )
    refused = post(gateway, "/v1/realtime/client_secrets", "other")
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "unknown_url"
    assert "/v1/realtime/client_secrets" not in sent_paths(simulator)
    unknown = post(gateway, "/v1/realtime/client_secrets", "voice", model="gpt-realtime-x")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"
    assert "/v1/realtime/client_secrets" not in sent_paths(simulator)
    post(gateway, "/v1/realtime/client_secrets", "voice")  # the simulator's own answer
    assert sent_paths(simulator)[-1] == "/v1/realtime/client_secrets"
    # Only the path opened: sessions stay refused for the allowed team too.
    assert post(gateway, "/v1/realtime/sessions", "voice").status_code == 403
