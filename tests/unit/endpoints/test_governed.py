"""How a governed call is settled: by its answer's usage or price rule, and never for less than
upstream may bill when the answer does not say (a stream asked for, a format without usage)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import orjson

from gateway.endpoints.governed import Cost, GovernedAttempt
from gateway.wire.usage import Usage
from tests.conftest import base_config

CONFIG = base_config()


class Ticket:
    def __init__(self) -> None:
        self.plan = SimpleNamespace(reserve=777)
        self.price = None
        self.charged: list[tuple[str, Any]] = []

    def settle(self, usage: Usage | None, *_: object) -> None:
        self.charged.append(("usage", usage))

    def charge(self, cost: int, usage: Usage | None = None) -> None:
        self.charged.append(("cost", cost))

    def release(self) -> None:
        self.charged.append(("released", None))


def settled(cost: Cost, model: str, payload: dict[str, Any], status: int, content: bytes) -> Any:
    request = SimpleNamespace(scope={"path": "/v1/x"})
    attempt = GovernedAttempt(
        cast(Any, SimpleNamespace(models={})), cast(Any, request), cast(Any, None),
        cast(Any, SimpleNamespace(team=SimpleNamespace(upstream_key_env=""))), model,
        CONFIG.models[model], cost, payload,
    )  # fmt: skip
    ticket = Ticket()
    attempt.ticket = cast(Any, ticket)
    attempt.settle(status, content)
    return ticket.charged


def test_usage_settles_a_token_priced_answer() -> None:
    answer = orjson.dumps({"usage": {"prompt_tokens": 5, "total_tokens": 5}})
    assert settled(Cost.EMBEDDINGS, "text-embedding-3-small", {}, 200, answer) == [
        ("usage", Usage(prompt_tokens=5))
    ]


def test_an_answer_that_does_not_say_what_it_cost_is_charged_the_hold() -> None:
    stream = b'data: {"choices": [{"text": "hi"}]}\n\ndata: [DONE]\n\n'
    assert settled(Cost.COMPLETIONS, "gpt-3.5-turbo-instruct", {}, 200, stream) == [("cost", 777)]
    assert settled(Cost.IMAGES, "gpt-image-1", {}, 200, b'{"data": []}') == [("cost", 777)]
    assert settled(Cost.TRANSCRIPTION, "whisper-1", {}, 200, b"plain text") == [("cost", 777)]


def test_price_rules_charge_what_the_answer_shows() -> None:
    images = orjson.dumps({"data": [{"url": "a"}, {"url": "b"}]})
    assert settled(Cost.IMAGES, "dall-e-2", {"size": "256x256"}, 200, images) == [("cost", 32_000)]
    audio = orjson.dumps({"text": "hi", "usage": {"type": "duration", "seconds": 3}})
    assert settled(Cost.TRANSCRIPTION, "whisper-1", {}, 200, audio) == [("cost", 300)]
