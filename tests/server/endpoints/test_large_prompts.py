"""A large prompt is counted off the event loop: while one team's body of megabytes is
counted (seconds of CPU for random letters), the loop goes on serving every other team.

Checked by where the count runs, not by timing it (a timed test flakes on a busy host):
the tokenizer is watched, and each text it counts says whether an event loop was running in
its thread."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.wire import tokens
from tests.conftest import GatewayFactory
from tests.redis.endpoints.teams import key_of, teams_yaml

BIG = 200_000  # characters: past `tokens.OFF_LOOP_BYTES` once in a body


class Watched:
    """The tokenizer, recording for each long text it counts whether it ran on an event loop."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.on_loop: list[bool] = []

    def count(self, text: str) -> Any:
        if len(text) >= BIG:
            try:
                asyncio.get_running_loop()
                self.on_loop.append(True)
            except RuntimeError:
                self.on_loop.append(False)
        return self.inner.count(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def watched(monkeypatch: pytest.MonkeyPatch) -> Iterator[Watched]:
    """Every vocabulary watched, recording into one list (embeddings count in cl100k_base)."""
    tokenizer = Watched(tokens._TOKENIZER)
    monkeypatch.setattr(tokens, "_TOKENIZER", tokenizer)
    others: dict[str, Watched] = {}
    for name, inner in tokens._OTHERS.items():
        other = others[name] = Watched(inner)
        other.on_loop = tokenizer.on_loop
    monkeypatch.setattr(tokens, "_OTHERS", others)
    yield tokenizer


@pytest.mark.parametrize("where", ["messages", "prediction", "responses", "embeddings"])
def test_a_large_prompt_is_counted_off_the_event_loop(
    start_gateway: GatewayFactory, tmp_path: Path, watched: Watched, where: str
) -> None:
    # The team's budget refuses the prompt once counted: nothing goes upstream.
    teams = tmp_path / "teams.yaml"
    teams.write_text(teams_yaml({"noisy": {"tier": "tier-5", "budget_usd": "0.0001"}}))
    server = start_gateway(admission={"teams_file": str(teams)})
    text = "word " * (BIG // 5)
    path = "/v1/chat/completions"
    big: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": text}]}
    if where == "prediction":  # counted too: upstream bills its rejected tokens
        big["messages"][0]["content"] = "hi"
        big["prediction"] = {"type": "content", "content": text}
    elif where == "responses":
        path, big = "/v1/responses", {"model": "gpt-4o", "input": text}
    elif where == "embeddings":
        path, big = "/v1/embeddings", {"model": "text-embedding-3-small", "input": text}
    answer = httpx.post(
        f"{server.url}{path}",
        json=big,
        headers={"authorization": f"Bearer {key_of('noisy')}"},
        timeout=60,
    )
    assert answer.status_code == 429, answer.text
    assert answer.json()["error"]["code"] == "request_over_budget"  # counted whole
    assert watched.on_loop and not any(watched.on_loop), watched.on_loop
