"""Predicted outputs (`prediction`) on a real redis-server, through the official SDK: upstream
bills the predicted tokens an answer rejects as completion tokens, beside those its cap bounds,
so the prediction is held too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import pytest
import redis

from gateway.admission.pricing import worst_case_micros
from gateway.wire import tokens
from tests.conftest import GatewayFactory, ServerThread
from tests.redis.admission.test_end_to_end import spend
from tests.redis.endpoints.teams import sdk, serve_teams
from tests.redis.endpoints.test_responses import PRICES

MESSAGES: Any = [{"role": "user", "content": "Fix the typo in this text."}]
PREDICTED = "The quick brown fox jumps over the lazy dog. " * 100
CAP = 1_000
TEAMS: dict[str, dict[str, str]] = {"cent": {"tier": "tier-5", "budget_usd": "0.015"}}


@pytest.fixture
def gateway(start_gateway: GatewayFactory, redis_server: str, tmp_path: Path) -> ServerThread:
    return serve_teams(start_gateway, redis_server, tmp_path, TEAMS)


def test_a_prediction_is_held_beside_the_completion_cap(
    gateway: ServerThread, store: redis.Redis
) -> None:
    """$0.015 covers the call's worst case (about $0.0100), not with the prediction's
    thousand-odd tokens beside it."""
    price, prompt = PRICES["gpt-4o"], tokens.count_messages(MESSAGES)
    assert worst_case_micros(price, prompt, CAP) < 15_000
    assert worst_case_micros(price, prompt, CAP + tokens.count_text(PREDICTED)) > 15_000
    client = sdk(gateway, "cent")
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, max_completion_tokens=CAP,
            prediction={"type": "content", "content": PREDICTED},
        )  # fmt: skip
    assert info.value.code == "request_over_budget"
    assert spend(store, "cent") == (0, 0)
    assert client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, max_completion_tokens=CAP
    ).choices
