"""Charged equals billed: every governed endpoint, called as a team, against the simulated
upstream that keeps OpenAI's bill (`/_sim/bill`); the team's spend in Redis equals the bill to
the micro-dollar. And a team with nothing left is refused on every endpoint that costs money,
before anything reaches upstream."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
import redis

from gateway.wire.tokens import count_text
from tests.conftest import GatewayFactory, ServerThread
from tests.redis.admission.test_end_to_end import spend
from tests.redis.endpoints.teams import billed, key_of, sdk, serve_teams

KEYS = {name: key_of(name) for name in ("payer", "broke", "snug")}
AUDIO = b"\x00" * 48_000  # no audio format: three seconds at the simulator's 16 kB a second


TEAMS: dict[str, dict[str, str]] = {
    "payer": {"tier": "tier-5"},
    "broke": {"tier": "tier-5", "budget_usd": "0.000001"},
    "snug": {"tier": "tier-5", "budget_usd": "0.01"},
}


@pytest.fixture
def gateway(start_gateway: GatewayFactory, redis_server: str, tmp_path: Path) -> ServerThread:
    return serve_teams(start_gateway, redis_server, tmp_path, TEAMS, knobs=False)


HELLO: Any = [{"role": "user", "content": "Say hello."}]
CALLS: dict[str, Callable[[openai.OpenAI], object]] = {
    "chat gpt-4o": lambda c: c.chat.completions.create(model="gpt-4o", messages=HELLO),
    "chat o1-mini": lambda c: c.chat.completions.create(model="o1-mini", messages=HELLO),
    "chat stream": lambda c: list(
        c.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True)
    ),
    "responses gpt-4o": lambda c: c.responses.create(model="gpt-4o", input="Say hello."),
    "responses o1-preview": lambda c: c.responses.create(model="o1-preview", input="Hello."),
    "embeddings": lambda c: c.embeddings.create(
        model="text-embedding-3-small", input=["hello", "world"]
    ),
    "completions best_of": lambda c: c.completions.create(
        model="gpt-3.5-turbo-instruct", prompt="Say this is a test", max_tokens=30, best_of=3
    ),
    "images dall-e-2": lambda c: c.images.generate(model="dall-e-2", prompt="a cat", n=2),
    "images dall-e-3 hd": lambda c: c.images.generate(
        model="dall-e-3", prompt="a cat", quality="hd", size="1792x1024"
    ),
    "images gpt-image-1": lambda c: c.images.generate(
        model="gpt-image-1", prompt="a cat", quality="low"
    ),
    "speech": lambda c: c.audio.speech.create(
        model="tts-1", voice="alloy", input="Hello from the gateway."
    ).read(),
    "transcription": lambda c: c.audio.transcriptions.create(
        model="whisper-1", file=("a.mp3", AUDIO)
    ),
    "transcription verbose": lambda c: c.audio.transcriptions.create(
        model="whisper-1", file=("a.mp3", AUDIO), response_format="verbose_json"
    ),
    "speech gpt-4o-mini-tts sse": lambda c: c.audio.speech.create(
        model="gpt-4o-mini-tts", voice="alloy", input="Hello.", stream_format="sse"
    ).read(),
    "transcription gpt-4o-transcribe": lambda c: c.audio.transcriptions.create(
        model="gpt-4o-transcribe", file=("a.mp3", AUDIO), prompt="Hello."
    ),
    "transcription gpt-4o-mini-transcribe stream": lambda c: list(
        c.audio.transcriptions.create(
            model="gpt-4o-mini-transcribe", file=("a.mp3", AUDIO), stream=True
        )
    ),
}


# Held at creation and charged when the job ends (test_fine_tuning.py shows the charge equals
# the bill); a team with nothing left is refused them too.
FOLLOWED: dict[str, Callable[[openai.OpenAI], object]] = {
    "fine-tuning": lambda c: c.fine_tuning.jobs.create(
        model="gpt-4o-mini",
        training_file=c.files.create(
            file=("train.jsonl", b'{"messages": [{"role": "user", "content": "Hi"}]}\n'),
            purpose="fine-tune",
        ).id,
    ),
}


def test_every_endpoint_is_charged_exactly_what_upstream_bills(
    gateway: ServerThread, simulator: ServerThread, store: redis.Redis
) -> None:
    httpx.delete(f"{simulator.url}/_sim/bill")
    client = sdk(gateway, "payer")
    for name, call in CALLS.items():
        before = billed(simulator), spend(store, "payer")[0]
        call(client)
        after = billed(simulator), spend(store, "payer")[0]
        assert after[0] > before[0], f"{name}: upstream billed nothing"
        assert after[1] - before[1] == after[0] - before[0], name
    assert client.moderations.create(input="hello").results  # free both sides
    assert spend(store, "payer") == (billed(simulator), 0)


@pytest.mark.parametrize("name", sorted(CALLS) + sorted(FOLLOWED))
def test_a_team_with_nothing_left_is_refused_before_upstream(
    gateway: ServerThread, simulator: ServerThread, store: redis.Redis, name: str
) -> None:
    # Spend the whole budget (one micro-dollar) on the cheapest call there is.
    sdk(gateway, "broke").embeddings.create(model="text-embedding-3-small", input="a")
    assert spend(store, "broke") == (1, 0)
    httpx.delete(f"{simulator.url}/_sim/bill")
    with pytest.raises(openai.RateLimitError) as info:
        (CALLS.get(name) or FOLLOWED[name])(sdk(gateway, "broke"))
    assert info.value.code == "insufficient_quota"
    assert billed(simulator) == 0
    assert spend(store, "broke") == (1, 0)


WORDS = "word " * 5_000  # 5,000 tokens: $0.0125 of gpt-4o input, past $0.01
TURNS: dict[str, Any] = {
    "legacy function call": [
        {"role": "user", "content": "Look it up."},
        {"role": "assistant", "content": None,
         "function_call": {"name": "lookup", "arguments": '{"q": "' + WORDS + '"}'}},
        {"role": "function", "name": "lookup", "content": "Found."},
    ],
    "refusal field": [
        {"role": "user", "content": "Do it."},
        {"role": "assistant", "content": "No.", "refusal": WORDS},
        {"role": "user", "content": "Please."},
    ],
    "refusal part": [
        {"role": "user", "content": "Do it."},
        {"role": "assistant", "content": [{"type": "refusal", "refusal": WORDS}]},
        {"role": "user", "content": "Please."},
    ],
}  # fmt: skip


@pytest.mark.parametrize("turn", sorted(TURNS))
def test_every_string_of_an_earlier_assistant_turn_is_held(
    gateway: ServerThread, simulator: ServerThread, store: redis.Redis, turn: str
) -> None:
    """Upstream reads an earlier assistant turn whole: a legacy `function_call`'s name and
    arguments and a refusal (the `refusal` field or a refusal part) are prompt tokens, billed
    as input. 5,000 of them are past the team's $0.01 on gpt-4o: the hold counts them, so the
    request is refused before upstream, while the same turn said briefly is served."""
    assert count_text(WORDS) * 2_500_000 // 1_000_000 > 10_000
    client = sdk(gateway, "snug")
    log = f"{simulator.url}/_sim/requests"
    before = httpx.get(log).json()["data"]
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(
            model="gpt-4o", messages=TURNS[turn], max_completion_tokens=16
        )
    assert refused.value.code == "request_over_budget"
    assert httpx.get(log).json()["data"] == before  # nothing reached upstream
    assert spend(store, "snug") == (0, 0)
    brief = orjson.loads(orjson.dumps(TURNS[turn]).replace(WORDS.encode(), b"word"))
    assert client.chat.completions.create(
        model="gpt-4o", messages=brief, max_completion_tokens=16
    ).choices
