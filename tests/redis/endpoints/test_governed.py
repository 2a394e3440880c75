"""Endpoints beyond chat, governed on a real redis-server: the model checked, the worst case
held under concurrency, the charge settled to the usage upstream reports."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import redis

from gateway.admission.pricing import cost_micros, worst_case_micros
from gateway.config import Price
from gateway.wire import tokens
from gateway.wire.usage import Usage
from tests.conftest import SIM_KEY, GatewayFactory, ServerThread, base_config
from tests.redis.admission.test_end_to_end import spend
from tests.redis.endpoints.teams import key_of, sdk, serve_teams

COMPLETIONS = "/v1/completions"

KEYS = {name: key_of(name) for name in ("tiny", "nickel", "metered", "small", "whisper")}
EMBEDDING = Price(input=20_000)
LONG_TEXT = " ".join(["tokens"] * 200)


TEAMS: dict[str, dict[str, str]] = {
    "tiny": {"tier": "tier-5", "budget_usd": "0.000001"},
    "nickel": {"tier": "tier-5", "budget_usd": "0.05"},
    "metered": {"tier": "tier-5"},
    "small": {"tier": "free"},
    "whisper": {"tier": "tier-1", "models": "[whisper-1]"},
}


@pytest.fixture
def gateway(start_gateway: GatewayFactory, redis_server: str, tmp_path: Path) -> ServerThread:
    return serve_teams(start_gateway, redis_server, tmp_path, TEAMS)


def test_embeddings_are_charged_their_usage(gateway: ServerThread, store: redis.Redis) -> None:
    answer = sdk(gateway, "metered").embeddings.create(
        model="text-embedding-3-small", input=["hello world", LONG_TEXT]
    )
    expected = cost_micros(EMBEDDING, Usage(prompt_tokens=answer.usage.prompt_tokens))
    assert expected > 0
    assert spend(store, "metered") == (expected, 0)


def test_moderations_are_free(gateway: ServerThread, store: redis.Redis) -> None:
    assert sdk(gateway, "metered").moderations.create(input="hello").results
    assert spend(store, "metered") == (0, 0)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/embeddings", {"model": "text-embedding-3-small", "input": LONG_TEXT}),
        ("/v1/images/generations", {"model": "dall-e-2", "prompt": "a cat", "size": "256x256"}),
        ("/v1/images/generations", {"model": "gpt-image-1", "prompt": "a cat", "quality": "low"}),
    ],
)
def test_concurrent_calls_never_pass_a_budget_smaller_than_one_worst_case(
    gateway: ServerThread, store: redis.Redis, path: str, body: dict[str, str]
) -> None:
    async def fire() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=100)) as c:
            auth = {"Authorization": f"Bearer {KEYS['tiny']}"}
            calls = [c.post(f"{gateway.url}{path}", json=body, headers=auth) for _ in range(100)]
            return list(await asyncio.gather(*calls))

    answers = asyncio.run(fire())
    assert {a.status_code for a in answers} == {429}
    assert {a.json()["error"]["code"] for a in answers} == {"request_over_budget"}
    assert spend(store, "tiny") == (0, 0)


def test_a_chat_reserve_counts_every_choice(gateway: ServerThread, store: redis.Redis) -> None:
    # 128 answers of up to 500 tokens at $10/1M is $0.64: far over a $0.05 budget, though one
    # answer would fit.
    messages = [{"role": "user", "content": "Say hello."}]
    with pytest.raises(openai.RateLimitError) as info:
        sdk(gateway, "nickel").chat.completions.create(
            model="gpt-4o",
            messages=messages,
            n=128,
            max_tokens=500,  # type: ignore[arg-type]
        )
    assert info.value.code == "request_over_budget"
    assert sdk(gateway, "nickel").chat.completions.create(
        model="gpt-4o",
        messages=messages,
        max_tokens=500,  # type: ignore[arg-type]
    )


def test_models_outside_the_tier_or_unpriced_are_not_found(gateway: ServerThread) -> None:
    with pytest.raises(openai.NotFoundError):
        sdk(gateway, "small").embeddings.create(model="text-embedding-3-large", input="hi")
    with pytest.raises(openai.NotFoundError) as info:
        sdk(gateway, "metered").embeddings.create(model="text-embedding-ada-002", input="hi")
    assert info.value.code == "model_not_found"


def test_an_upload_names_its_model_as_upstream_reads_it(
    gateway: ServerThread, simulator: ServerThread
) -> None:
    """An audio upload goes upstream as it came: a second `model` field the gateway's reader
    skipped (an unquoted name) would be the model upstream serves, one the team may not use."""
    boundary = b"XyZ"
    parts = [
        (b"Content-Disposition: form-data; name=model", b"gpt-4o-transcribe"),
        (b'Content-Disposition: form-data; name="model"', b"whisper-1"),
        (b'Content-Disposition: form-data; name="file"; filename="a.mp3"', b"\x00" * 4000),
    ]
    body = b"".join(b"--" + boundary + b"\r\n" + head + b"\r\n\r\n" + value + b"\r\n"
                    for head, value in parts) + b"--" + boundary + b"--\r\n"  # fmt: skip
    headers = {
        "Authorization": f"Bearer {KEYS['whisper']}",
        "Content-Type": "multipart/form-data; boundary=XyZ",
    }
    log = f"{simulator.url}/_sim/requests"
    before = httpx.get(log).json()["data"]
    answer = httpx.post(f"{gateway.url}/v1/audio/transcriptions", content=body, headers=headers)
    assert answer.status_code == 400, answer.text  # given twice: no model the gateway can check
    bad_head = body.replace(b'name="model"\r\n', b'name="model"\n', 1)
    answer = httpx.post(f"{gateway.url}/v1/audio/transcriptions", content=bad_head, headers=headers)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "invalid_multipart"
    assert httpx.get(log).json()["data"] == before
    # The model it may use, as the SDK sends it, is served.
    audio = ("a.mp3", b"\x00" * 4000)
    assert sdk(gateway, "whisper").audio.transcriptions.create(model="whisper-1", file=audio).text


@pytest.fixture
def named(
    simulator: ServerThread, start_gateway: GatewayFactory, redis_server: str, tmp_path: Path
) -> ServerThread:
    """A gateway whose config has names of its own for two models: `embeddings`
    (text-embedding-3-small upstream) and `transcriber` (whisper-1)."""
    shipped = base_config(OPENAI_BASE_URL=f"{simulator.url}/v1", OPENAI_API_KEY=SIM_KEY)
    own = {
        "embeddings": shipped.models["text-embedding-3-small"],
        "transcriber": shipped.models["whisper-1"],
    }
    config = dataclasses.replace(shipped, models={**shipped.models, **own})
    return serve_teams(start_gateway, redis_server, tmp_path, TEAMS, config=config)


def test_a_configured_name_goes_upstream_as_the_model_it_stands_for(
    named: ServerThread, simulator: ServerThread, store: redis.Redis
) -> None:
    """An operator's name for a model (`embeddings`: text-embedding-3-small upstream) is checked
    and charged as that model: upstream is asked for it, not for the name, which it may not
    know (the call failed) or may read as another model than the one priced."""
    client = sdk(named, "metered")
    log = f"{simulator.url}/_sim/requests"
    answer = client.embeddings.create(model="embeddings", input="hello world")
    assert httpx.get(log).json()["data"][-1]["body"]["model"] == "text-embedding-3-small"
    charged = cost_micros(EMBEDDING, Usage(prompt_tokens=answer.usage.prompt_tokens))
    assert spend(store, "metered") == (charged, 0)
    audio = ("a.mp3", b"\x00" * 4000)
    assert client.audio.transcriptions.create(model="transcriber", file=audio).text
    sent = httpx.get(log).json()["data"][-1]
    assert b'name="model"\r\n\r\nwhisper-1\r\n' in sent["raw"].encode()
    assert b"transcriber" not in sent["raw"].encode()


def test_a_model_field_named_the_rfc_2231_way_never_reaches_upstream(
    gateway: ServerThread, simulator: ServerThread
) -> None:
    """`name*=UTF-8''model` names the part `model` to aiohttp and Werkzeug (before the plain
    `name`): a team allowed whisper-1 only, checked and charged for it, served another model."""
    body = (
        b"--XyZ\r\nContent-Disposition: form-data; name=\"note\"; name*=UTF-8''model\r\n\r\n"
        b"gpt-4o-transcribe\r\n"
        b'--XyZ\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a.mp3"\r\n\r\n'
        + b"\x00" * 4000 + b"\r\n--XyZ--\r\n"
    )  # fmt: skip
    headers = {
        "Authorization": f"Bearer {KEYS['whisper']}",
        "Content-Type": "multipart/form-data; boundary=XyZ",
    }
    log = f"{simulator.url}/_sim/requests"
    before = httpx.get(log).json()["data"]
    answer = httpx.post(f"{gateway.url}/v1/audio/transcriptions", content=body, headers=headers)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "invalid_multipart"
    assert httpx.get(log).json()["data"] == before


def test_a_model_field_in_the_forms_charset_never_reaches_upstream(
    gateway: ServerThread, simulator: ServerThread
) -> None:
    """Starlette reads a form's names and text fields in its Content-Type's charset: a part
    named `model` in UTF-16 is the model it serves (the last given), other text to the gateway,
    which checked and charged the plain whisper-1 beside it."""
    wide = "model".encode("utf-16-le"), "gpt-4o-transcribe".encode("utf-16-le")
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a.mp3"\r\n\r\n'
        + b"\x00" * 4000 + b'\r\n--XyZ\r\nContent-Disposition: form-data; name="' + wide[0]
        + b'"\r\n\r\n' + wide[1] + b"\r\n--XyZ--\r\n"
    )  # fmt: skip
    headers = {
        "Authorization": f"Bearer {KEYS['whisper']}",
        "Content-Type": "multipart/form-data; boundary=XyZ; charset=utf-16-le",
    }
    log = f"{simulator.url}/_sim/requests"
    before = httpx.get(log).json()["data"]
    answer = httpx.post(f"{gateway.url}/v1/audio/transcriptions", content=body, headers=headers)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "invalid_multipart"
    assert httpx.get(log).json()["data"] == before


def test_a_form_whose_headers_no_library_sends_is_refused_before_it_is_read_long(
    gateway: ServerThread, simulator: ServerThread
) -> None:
    """A Content-Disposition of 120,000 short parameters (1 MB) held the gateway's event loop
    for seconds (every team's requests with it; 10 MB, minutes): refused at once now."""
    many = b"".join(b"; p%d=1" % i for i in range(120_000))
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="model"' + many
        + b"\r\n\r\nwhisper-1\r\n--XyZ--\r\n"
    )  # fmt: skip
    headers = {
        "Authorization": f"Bearer {KEYS['whisper']}",
        "Content-Type": "multipart/form-data; boundary=XyZ",
    }
    log = f"{simulator.url}/_sim/requests"
    before = httpx.get(log).json()["data"]
    answer = httpx.post(f"{gateway.url}/v1/audio/transcriptions", content=body, headers=headers)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "invalid_multipart"
    assert httpx.get(log).json()["data"] == before


def test_a_form_of_more_parts_than_libraries_send_is_refused_before_they_are_read(
    gateway: ServerThread, simulator: ServerThread
) -> None:
    """10 MB of tiny parts (175,000) held the gateway's event loop seconds, every team's
    requests with it, and went upstream: refused at once now."""
    part = b'--XyZ\r\nContent-Disposition: form-data; name="n"\r\n\r\nx\r\n'
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n'
        + part * 170_000 + b"--XyZ--\r\n"
    )  # fmt: skip
    headers = {
        "Authorization": f"Bearer {KEYS['whisper']}",
        "Content-Type": "multipart/form-data; boundary=XyZ",
    }
    log = f"{simulator.url}/_sim/requests"
    before = httpx.get(log).json()["data"]
    answer = httpx.post(f"{gateway.url}/v1/audio/transcriptions", content=body, headers=headers)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "invalid_multipart"
    assert httpx.get(log).json()["data"] == before


@pytest.mark.parametrize("stream", [False, True])
def test_a_client_leaving_a_whole_answer_is_charged_what_upstream_billed(
    gateway: ServerThread, store: redis.Redis, stream: bool
) -> None:
    # o1-mini answers whole (its streams are faked): upstream bills the answer whoever waits.
    body = {"model": "o1-mini", "messages": [{"role": "user", "content": f"Count {stream}."}]}
    auth = {"Authorization": f"Bearer {KEYS['metered']}"}
    whole = httpx.post(f"{gateway.url}/v1/chat/completions", json=body, headers=auth).json()
    start = spend(store, "metered")[0]
    with pytest.raises(httpx.ReadTimeout), httpx.stream(
        "POST", f"{gateway.url}/v1/chat/completions",
        json={**body, "stream": stream}, headers={**auth, "x-sim-latency-ms": "1500"},
        timeout=0.3,
    ) as answer:  # fmt: skip
        for _ in answer.iter_bytes():
            pass
    usage = whole["usage"]
    expected = cost_micros(
        Price(input=3_000_000, cached_input=1_500_000, output=12_000_000),
        Usage(usage["prompt_tokens"], usage["completion_tokens"]),
    )
    deadline = time.monotonic() + 10
    while spend(store, "metered")[0] - start != expected:
        assert time.monotonic() < deadline, (spend(store, "metered")[0] - start, expected)
        time.sleep(0.1)


def test_every_team_has_its_own_safety_identifier_upstream(
    gateway: ServerThread, simulator: ServerThread
) -> None:
    def sent_identifier(team: str, **extra: str) -> str:
        sdk(gateway, team).chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            **extra,  # type: ignore[arg-type]
        )
        body = httpx.get(f"{simulator.url}/_sim/requests").json()["data"][-1]["body"]
        return str(body["safety_identifier"])

    mine, again, theirs = (
        sent_identifier("metered"),
        sent_identifier("metered"),
        sent_identifier("nickel"),
    )
    assert mine == again != theirs
    assert "metered" not in mine and "nickel" not in theirs
    # A caller's own identifier (an end user of the team) is folded in, never passed as is.
    user = sent_identifier("metered", safety_identifier="user-42")
    assert user not in (mine, "user-42") and user != sent_identifier(
        "nickel", safety_identifier="user-42"
    )


def refused_over_budget(
    start_gateway: GatewayFactory, redis_server: str, tmp_path: Path, store: redis.Redis,
    budget_usd: str, path: str, body: Any,
) -> None:  # fmt: skip
    """A team with `budget_usd` left sends `body` to `path`: refused `429 request_over_budget`
    before upstream, nothing held or spent."""
    gateway = serve_teams(
        start_gateway,
        redis_server,
        tmp_path,
        {"capped": {"tier": "tier-5", "budget_usd": budget_usd}},
    )
    answer = httpx.post(
        f"{gateway.url}{path}", json=body, timeout=120,
        headers={"Authorization": f"Bearer {key_of('capped')}"},
    )  # fmt: skip
    assert answer.status_code == 429, (answer.text[:200], spend(store, "capped"))
    assert answer.json()["error"]["code"] == "request_over_budget"
    assert spend(store, "capped") == (0, 0)


def test_a_legacy_completion_with_max_tokens_null_holds_the_model_output_cap(
    start_gateway: GatewayFactory, redis_server: str, tmp_path: Path, store: redis.Redis
) -> None:
    """`max_tokens: null` is no cap upstream (an absent one is 16): every one of 20 candidates
    for each of 100 prompts is written whole, about $0.36 of output, which a team with $0.10
    left must not be let through for on a hold of 16 tokens a candidate ($0.07)."""
    body = {
        "model": "gpt-3.5-turbo-instruct", "max_tokens": None, "best_of": 20,
        "prompt": [f"Tell me story number {i}." for i in range(100)],
    }  # fmt: skip
    refused_over_budget(start_gateway, redis_server, tmp_path, store, "0.10", COMPLETIONS, body)


def test_a_legacy_prompt_of_token_arrays_holding_a_boolean_is_counted(
    start_gateway: GatewayFactory, redis_server: str, tmp_path: Path, store: redis.Redis
) -> None:
    """Upstream reads `true` in a token array as a token (JSON's true is an integer to it):
    400 prompts of 4,000 tokens each are $2.40 of gpt-3.5-turbo-instruct input, which a team
    with $0.50 left must not be let through for on a hold that counted no prompt at all."""
    prompt = [[1] * 4_000 + [True] for _ in range(400)]
    body = {"model": "gpt-3.5-turbo-instruct", "prompt": prompt, "max_tokens": 1}
    refused_over_budget(start_gateway, redis_server, tmp_path, store, "0.50", COMPLETIONS, body)


# Hindi, which cl100k_base (the tokenizer the embedding models and gpt-3.5-turbo-instruct are
# billed in) reads as about three times the tokens o200k_base does.
HINDI = "नमस्ते दुनिया, यह एक परीक्षण है। " * 100


@pytest.mark.parametrize(
    ("path", "body", "price", "budget_usd"),
    [
        # 1,002 o200k tokens ($0.000021) held before, billed 3,400 cl100k ones ($0.000068).
        ("/v1/embeddings", {"model": "text-embedding-3-small", "input": HINDI}, EMBEDDING, "0.00004"),
        # 1,002 o200k tokens ($0.0015) held before, billed 3,400 cl100k ones ($0.0051).
        (COMPLETIONS, {"model": "gpt-3.5-turbo-instruct", "prompt": HINDI, "max_tokens": 1},
         Price(input=1_500_000, output=2_000_000), "0.003"),
    ],
)  # fmt: skip
def test_a_model_billed_in_cl100k_tokens_is_held_for_them(
    start_gateway: GatewayFactory, redis_server: str, tmp_path: Path, store: redis.Redis,
    simulator: ServerThread, path: str, body: dict[str, Any], price: Price, budget_usd: str,
) -> None:  # fmt: skip
    """A team whose budget covers the text counted in o200k tokens, but not in the cl100k ones
    upstream bills, is refused before upstream: held the o200k count, it was let through and
    charged past its budget."""
    text = tokens.count_text(HINDI)
    billed = tokens.count_text_in("cl100k_base", HINDI)
    budget = int(Decimal(budget_usd) * 1_000_000)
    assert worst_case_micros(price, text, 1) <= budget < worst_case_micros(price, billed, 0)
    log = f"{simulator.url}/_sim/requests"
    before = httpx.get(log).json()["data"]
    refused_over_budget(start_gateway, redis_server, tmp_path, store, budget_usd, path, body)
    assert httpx.get(log).json()["data"] == before


def test_a_gpt_image_request_naming_no_size_holds_the_largest_image(
    start_gateway: GatewayFactory, redis_server: str, tmp_path: Path, store: redis.Redis
) -> None:
    """gpt-image-1's size defaults to `auto`, which upstream may make 1024x1536: ten high
    images of 6,240 output tokens at $40/1M are $2.50, which a team with $2 left must not be
    let through for on a hold of ten square ones (4,160 tokens each, $1.66)."""
    body = {"model": "gpt-image-1", "prompt": "a cat", "quality": "high", "n": 10}
    refused_over_budget(
        start_gateway, redis_server, tmp_path, store, "2", "/v1/images/generations", body
    )


def test_a_gpt_image_stream_holds_its_partial_images(
    start_gateway: GatewayFactory, redis_server: str, tmp_path: Path, store: redis.Redis
) -> None:
    """Each partial image a streamed GPT image sends is billed 100 image output tokens beside
    it: ten low square images with three partials each are 5,720 output tokens at $40/1M
    ($0.23), which a team with $0.15 left must not be let through for on a hold of the ten
    images alone (2,720 tokens, $0.11)."""
    body = {
        "model": "gpt-image-1", "prompt": "a cat", "quality": "low", "size": "1024x1024",
        "n": 10, "stream": True, "partial_images": 3,
    }  # fmt: skip
    refused_over_budget(
        start_gateway, redis_server, tmp_path, store, "0.15", "/v1/images/generations", body
    )


INSTRUCT = "gpt-3.5-turbo-instruct"


@pytest.mark.parametrize(
    ("path", "body", "param", "code"),
    [
        # Each of these was held at one candidate of 16 tokens (or one image, or speed 1),
        # whatever a lenient upstream reads it as.
        (COMPLETIONS, {"model": INSTRUCT, "prompt": "hi", "max_tokens": True}, "max_tokens",
         "invalid_type"),
        (COMPLETIONS, {"model": INSTRUCT, "prompt": "hi", "max_tokens": "4000"}, "max_tokens",
         "invalid_type"),
        (COMPLETIONS, {"model": INSTRUCT, "prompt": "hi", "max_tokens": 4000.0}, "max_tokens",
         "invalid_type"),
        (COMPLETIONS, {"model": INSTRUCT, "prompt": "hi", "max_tokens": -1}, "max_tokens",
         "integer_below_min_value"),
        (COMPLETIONS, {"model": INSTRUCT, "prompt": "hi", "best_of": True}, "best_of",
         "invalid_type"),
        (COMPLETIONS, {"model": INSTRUCT, "prompt": "hi", "best_of": 21}, "best_of",
         "integer_above_max_value"),
        (COMPLETIONS, {"model": INSTRUCT, "prompt": "hi", "n": 10**30}, "n",
         "integer_above_max_value"),
        (COMPLETIONS, {"model": INSTRUCT, "prompt": [[1.0] * 50]}, "prompt[0][0]",
         "invalid_type"),
        (COMPLETIONS, {"model": INSTRUCT, "prompt": {"text": "hi"}}, "prompt", "invalid_type"),
        ("/v1/embeddings", {"model": "text-embedding-3-small", "input": [1.0, 2.0]}, "input[0]",
         "invalid_type"),
        ("/v1/embeddings", {"model": "text-embedding-3-small", "input": "hi", "dimensions": "8"},
         "dimensions", "invalid_type"),
        ("/v1/images/generations", {"model": "dall-e-2", "prompt": "a cat", "n": True}, "n",
         "invalid_type"),
        ("/v1/images/generations", {"model": "dall-e-2", "prompt": "a cat", "n": "10"}, "n",
         "invalid_type"),
        ("/v1/images/generations", {"model": "dall-e-2", "prompt": "a cat", "n": 11}, "n",
         "integer_above_max_value"),
        ("/v1/images/generations", {"model": "dall-e-2", "prompt": "a cat", "size": ["1024x1024"]},
         "size", "invalid_type"),
        ("/v1/images/generations",
         {"model": "gpt-image-1", "prompt": "a cat", "stream": True, "partial_images": "3"},
         "partial_images", "invalid_type"),
        ("/v1/audio/speech", {"model": "tts-1", "voice": "alloy", "input": ["hi"] * 100},
         "input", "invalid_type"),
        ("/v1/audio/speech", {"model": "tts-1", "voice": "alloy", "input": "a" * 4097},
         "input", "string_above_max_length"),
        ("/v1/audio/speech",
         {"model": "gpt-4o-mini-tts", "voice": "alloy", "input": "hi", "speed": "0.25"},
         "speed", "invalid_type"),
        ("/v1/audio/speech",
         {"model": "gpt-4o-mini-tts", "voice": "alloy", "input": "hi", "speed": 0.1},
         "speed", "decimal_below_min_value"),
    ],
)  # fmt: skip
def test_a_count_the_hold_cannot_read_as_upstream_does_is_refused_before_upstream(
    gateway: ServerThread, simulator: ServerThread, store: redis.Redis,
    path: str, body: dict[str, Any], param: str, code: str,
) -> None:  # fmt: skip
    """A value the hold reads one way (a boolean or string count as the default, a float token
    as none) and a lenient upstream another is OpenAI's own 400, naming it, and never sent."""
    log = f"{simulator.url}/_sim/requests"
    before = httpx.get(log).json()["data"]
    answer = httpx.post(
        f"{gateway.url}{path}", json=body, timeout=30,
        headers={"Authorization": f"Bearer {KEYS['metered']}"},
    )  # fmt: skip
    assert answer.status_code == 400, answer.text[:300]
    error = answer.json()["error"]
    assert (error["param"], error["code"], error["type"]) == (
        param,
        code,
        "invalid_request_error",
    )
    assert httpx.get(log).json()["data"] == before
    assert spend(store, "metered") == (0, 0)
