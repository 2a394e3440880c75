"""A key given twice in a JSON body: the gateway reads its last value, and another parser might
take the first (a cheap model checked and charged, a dear one served). What upstream receives
is the object the gateway read, written again: one key, the value checked and charged. A batch
input line, which upstream reads from the file as it is, is refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from gateway.admission.pricing import cost_micros
from gateway.config import Price
from gateway.wire.usage import Usage
from tests.conftest import GatewayFactory, ServerThread
from tests.redis.admission.test_end_to_end import spend
from tests.redis.endpoints.teams import key_of, refused_batch, sdk, serve_teams
from tests.redis.endpoints.test_responses import PRICES

TEAMS: dict[str, dict[str, str]] = {"metered": {"tier": "tier-5"}}
HI = '[{"role":"user","content":"Hi."}]'
EMBEDDING = Price(input=20_000)  # text-embedding-3-small; -3-large costs 130,000


@pytest.fixture
def gateway(start_gateway: GatewayFactory, redis_server: str, tmp_path: Path) -> ServerThread:
    return serve_teams(start_gateway, redis_server, tmp_path, TEAMS)


def sim_requests(simulator: ServerThread) -> list[dict[str, Any]]:
    return list(httpx.get(f"{simulator.url}/_sim/requests").json()["data"])


@pytest.mark.parametrize(
    ("path", "text", "sent_model"),
    [
        ("/v1/chat/completions",
         '{"model":"o1-preview","model":"gpt-4o-2024-08-06","messages":' + HI + "}",
         "gpt-4o-2024-08-06"),
        ("/v1/responses", '{"model":"o1-preview","input":"Hi.","model":"gpt-4o"}',
         "gpt-4o-2024-08-06"),
        ("/v1/embeddings",
         '{"model":"text-embedding-3-large","input":"Hi.","model":"text-embedding-3-small"}',
         "text-embedding-3-small"),
    ],
    ids=["chat", "responses", "embeddings"],
)  # fmt: skip
def test_upstream_reads_the_one_model_the_gateway_checked_and_charged(
    gateway: ServerThread,
    simulator: ServerThread,
    store: redis.Redis,
    path: str,
    text: str,
    sent_model: str,
) -> None:
    answer = httpx.post(
        f"{gateway.url}{path}", content=text,
        headers={"authorization": f"Bearer {key_of('metered')}", "content-type": "application/json"},
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    sent = sim_requests(simulator)[-1]
    assert sent["path"] == path
    assert sent["raw"].count('"model"') == 1
    assert sent["body"]["model"] == sent_model
    usage = answer.json()["usage"]
    tokens = Usage(
        prompt_tokens=usage.get("prompt_tokens", usage.get("input_tokens")),
        completion_tokens=usage.get("completion_tokens", usage.get("output_tokens", 0)),
    )
    # Charged as the model that served it: the gpt-4o snapshot, or the small embeddings model.
    price = PRICES["gpt-4o"] if sent_model.startswith("gpt-4o") else EMBEDDING
    assert spend(store, "metered") == (cost_micros(price, tokens), 0)


def test_a_batch_line_that_repeats_a_key_is_refused_before_the_batch_is_made(
    gateway: ServerThread, simulator: ServerThread, store: redis.Redis
) -> None:
    line = (
        '{"custom_id":"r0","method":"POST","url":"/v1/chat/completions","body":'
        '{"model":"o1-preview","messages":' + HI + ',"model":"gpt-4o"}}'
    )
    refused = refused_batch(sdk(gateway, "metered"), simulator, line.encode())
    assert refused.code == "invalid_batch_line"
    assert "'model' twice" in refused.message
    assert spend(store, "metered") == (0, 0)


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ("/v1/chat/completions", '{"model":"gpt-4o-mini","messages":' + HI + ',"+AG0-odel":"o1"}'),
        ("/v1/embeddings",
         '{"model":"text-embedding-3-small","input":"Hi.","+AG0-odel":"text-embedding-3-large"}'),
        ("/v1/audio/speech",
         '{"model":"tts-1","input":"Hi.","voice":"alloy","+AG0-odel":"gpt-4o-mini-tts"}'),
    ],
    ids=["chat", "embeddings", "speech"],
)  # fmt: skip
def test_upstream_is_told_the_json_body_is_utf8_as_the_gateway_read_and_wrote_it(
    gateway: ServerThread, simulator: ServerThread, path: str, text: str
) -> None:
    """The gateway reads JSON as UTF-8 and writes it so; a client's `charset=utf-7` sent on
    would have a parser that honours it (aiohttp's `Request.json()`, Django REST framework)
    read `+AG0-odel` as a second `model`, the dearer one it serves after the checked one."""
    declared = "application/json; charset=utf-7"
    assert json.loads(text.encode().decode("utf-7"))["model"] != json.loads(text)["model"]
    answer = httpx.post(
        f"{gateway.url}{path}", content=text,
        headers={"authorization": f"Bearer {key_of('metered')}", "content-type": declared},
    )  # fmt: skip
    assert answer.status_code in (200, 400), answer.text
    sent = sim_requests(simulator)[-1]
    assert sent["path"] == path
    assert sent["headers"]["content-type"] == "application/json"
