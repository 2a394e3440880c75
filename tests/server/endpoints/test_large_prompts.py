"""A large prompt is counted off the event loop: while one team's body of megabytes is
counted, another team's calls are served as usual."""

from __future__ import annotations

import hashlib
import random
import string
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import GatewayFactory

NOISY, QUIET = "sk-gw-noisy-team-key", "sk-gw-quiet-team-key"
SMALL = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}


@pytest.mark.parametrize("where", ["messages", "prediction", "responses", "embeddings"])
def test_another_team_is_served_while_a_large_prompt_is_counted(
    start_gateway: GatewayFactory, tmp_path: Path, where: str
) -> None:
    # The noisy team's budget refuses its prompt once counted: only the gateway's own work is
    # measured, none of the upstream's.
    teams = tmp_path / "teams.yaml"
    teams.write_text(
        "teams:\n"
        + "".join(
            f"  - name: {name}\n    tier: tier-5\n    budget_usd: {budget}\n"
            f"    keys: [{{name: k, sha256: {hashlib.sha256(key.encode()).hexdigest()}}}]\n"
            for name, key, budget in (("noisy", NOISY, 0.01), ("quiet", QUIET, 100))
        )
    )
    server = start_gateway(admission={"teams_file": str(teams)})
    # Random letters are the tokenizer's slowest text: about 1.5 s of counting on the loop.
    text = "".join(random.Random(7).choices(string.ascii_letters, k=3_000_000))
    path = "/v1/chat/completions"
    big: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": text}]}
    if where == "prediction":  # counted too: upstream bills its rejected tokens
        big["messages"][0]["content"] = "hi"
        big["prediction"] = {"type": "content", "content": text}
    elif where == "responses":
        path, big = "/v1/responses", {"model": "gpt-4o", "input": text}
    elif where == "embeddings":
        path, big = "/v1/embeddings", {"model": "text-embedding-3-small", "input": text}
    noisy: list[httpx.Response] = []

    body = orjson.dumps(big)
    spent: list[float] = []

    def send_big() -> None:
        headers = {"authorization": f"Bearer {NOISY}", "content-type": "application/json"}
        started = time.perf_counter()
        noisy.append(httpx.post(f"{server.url}{path}", content=body, headers=headers, timeout=60))
        spent.append(time.perf_counter() - started)

    quiet = {"authorization": f"Bearer {QUIET}"}
    assert httpx.post(f"{server.url}/v1/chat/completions", json=SMALL, headers=quiet).is_success
    sender = threading.Thread(target=send_big)
    sender.start()
    took: list[float] = []
    while sender.is_alive():
        started = time.perf_counter()
        answer = httpx.post(f"{server.url}/v1/chat/completions", json=SMALL, headers=quiet)
        took.append(time.perf_counter() - started)
        assert answer.is_success
    sender.join()
    assert noisy[0].status_code == 429, noisy[0].text
    assert noisy[0].json()["error"]["code"] == "request_over_budget"  # counted whole
    print(
        f"{len(took)} quiet calls in the {spent[0] * 1000:.0f} ms of the large one, the slowest "
        f"{max(took) * 1000:.0f} ms"
    )
    # Counted on the loop, a quiet call waited for nearly all of it (1.2 s of 1.4 s); off it,
    # for the parsing and the rest of its path (under a fifth of it).
    assert max(took) < spent[0] / 3
