"""Token-priced audio models (gpt-4o-mini-tts, gpt-4o-transcribe, gpt-4o-mini-transcribe) through
the gateway with the `openai` SDK, on a real redis-server: text and audio tokens each charged at
their price, to the micro-dollar of what the simulated upstream bills (`/_sim/bill`) where the
answer reports its usage, and the exact hold (more than upstream bills) where it does not. A team
with less left than the hold is refused before anything reaches upstream."""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import redis

from gateway.admission.pricing import audio_tokens_cost
from gateway.config import Price
from gateway.wire.tokens import count_text
from gateway.wire.usage import AudioUsage
from tests.conftest import SIM_KEY, GatewayFactory, ServerThread
from tests.redis.admission.test_end_to_end import spend
from tests.redis.endpoints.teams import billed, key_of, sdk, serve_teams

# The shipped config's prices (config/gateway.yaml).
MINI_TTS = Price(input=600_000, audio_output=12_000_000)
PRICES = {
    "gpt-4o-transcribe": Price(input=2_500_000, audio_input=6_000_000, output=10_000_000),
    "gpt-4o-mini-transcribe": Price(input=1_250_000, audio_input=3_000_000, output=5_000_000),
}
AUDIO = b"\x00" * 48_000  # no audio format: 3 s at the simulator's 16 kB a second, 48 audio tokens
PROMPT = "Names: Ada Lovelace, Grace Hopper."
TEXT = "The quick brown fox jumps over the lazy dogs; then it naps. " * 5  # 300 characters
UNDER_BUDGET = "0.008"  # more than a call below costs, less than its hold


TEAMS = {"payer": {"tier": "tier-1"}, "under": {"tier": "tier-1", "budget_usd": UNDER_BUDGET}}
Call = Callable[[openai.OpenAI], Any]
Measure = Callable[[Call], tuple[int, int, Any]]


@pytest.fixture
def gateway(start_gateway: GatewayFactory, redis_server: str, tmp_path: Path) -> ServerThread:
    return serve_teams(start_gateway, redis_server, tmp_path, TEAMS)


@pytest.fixture
def measure(gateway: ServerThread, simulator: ServerThread, store: redis.Redis) -> Measure:
    """Make a call as team payer: (what the team was charged, what upstream billed, the
    answer)."""

    def measured(call: Call) -> tuple[int, int, Any]:
        before = spend(store, "payer")[0], billed(simulator)
        answer = call(sdk(gateway, "payer"))
        return spend(store, "payer")[0] - before[0], billed(simulator) - before[1], answer

    return measured


def speech(client: openai.OpenAI, **extra: Any) -> bytes:
    return client.audio.speech.create(
        model="gpt-4o-mini-tts", voice="alloy", input=TEXT, **extra
    ).read()


def transcription(model: str, **extra: Any) -> Call:
    def call(client: openai.OpenAI) -> Any:
        answer = client.audio.transcriptions.create(
            model=model, file=("a.wav", AUDIO), prompt=PROMPT, **extra
        )
        return list(answer) if extra.get("stream") else answer

    return call


def tokens_of(usage: Any) -> AudioUsage:
    text = usage.input_token_details.text_tokens
    return AudioUsage(
        text_input=text, audio_input=usage.input_tokens - text, text_output=usage.output_tokens
    )


# What a speech of TEXT holds: its text tokens, and 3 audio tokens a character (the shipped
# config's audio_tokens_per_character).
SPEECH_HOLD = audio_tokens_cost(MINI_TTS, AudioUsage(text_input=count_text(TEXT), audio_output=900))


def test_speech_events_are_charged_their_reported_usage(measure: Measure) -> None:
    charged, bill, events = measure(lambda c: speech(c, stream_format="sse"))
    assert b'"speech.audio.delta"' in events
    assert b'"speech.audio.done"' in events.split(b"\n\n")[-2]
    # The text at $0.60/1M, the audio (4/3 tokens a character in the simulator) at $12/1M.
    used = AudioUsage(text_input=count_text(TEXT), audio_output=400)
    assert charged == bill == audio_tokens_cost(MINI_TTS, used) < SPEECH_HOLD


@pytest.mark.parametrize("model", sorted(PRICES))
def test_transcriptions_are_charged_their_text_and_audio_tokens(
    measure: Measure, model: str
) -> None:
    charged, bill, answer = measure(transcription(model))
    used = tokens_of(answer.usage)
    assert used.text_input == count_text(PROMPT) and used.audio_input == 48
    assert charged == bill == audio_tokens_cost(PRICES[model], used) > 0


@pytest.mark.parametrize("model", sorted(PRICES))
def test_streamed_transcriptions_are_charged_from_their_done_event(
    measure: Measure, model: str
) -> None:
    charged, bill, events = measure(transcription(model, stream=True))
    assert [e.type for e in events][-1] == "transcript.text.done"
    assert "".join(e.delta for e in events[:-1]) == events[-1].text
    used = tokens_of(events[-1].usage)
    assert charged == bill == audio_tokens_cost(PRICES[model], used) > 0


def direct(simulator: ServerThread) -> openai.OpenAI:
    """The simulated upstream called without the gateway: what a client would get from it."""
    return openai.OpenAI(base_url=f"{simulator.url}/v1", api_key=SIM_KEY, max_retries=0)


def test_plain_speech_is_charged_its_usage_and_answered_as_raw_audio(
    measure: Measure, simulator: ServerThread
) -> None:
    """Raw audio says nothing of its audio tokens: the gateway asks upstream for the same
    speech as events, which end with its usage, and answers the audio they carry."""
    for audio_format, media_type in (("mp3", "audio/mpeg"), ("wav", "audio/wav")):
        charged, bill, answer = measure(
            lambda c, f=audio_format: c.audio.speech.with_raw_response.create(  # type: ignore[misc]
                model="gpt-4o-mini-tts", voice="alloy", input=TEXT, response_format=f
            )
        )
        used = AudioUsage(text_input=count_text(TEXT), audio_output=400)
        assert charged == bill == audio_tokens_cost(MINI_TTS, used) < SPEECH_HOLD
        assert answer.headers["content-type"] == media_type
        assert answer.headers["x-gateway-patched"] == "response_format"
        assert answer.content == speech(direct(simulator), response_format=audio_format)


@pytest.mark.parametrize(
    ("model", "endpoint", "response_format"),
    [
        ("gpt-4o-transcribe", "transcriptions", "text"),
        ("gpt-4o-mini-transcribe", "transcriptions", "text"),
        ("whisper-1", "transcriptions", "text"),
        ("whisper-1", "translations", "text"),
        ("whisper-1", "translations", "json"),
        ("whisper-1", "transcriptions", "srt"),
        ("whisper-1", "transcriptions", "vtt"),
        ("whisper-1", "translations", "srt"),
    ],
)
def test_a_transcript_in_a_form_without_usage_is_charged_what_upstream_bills(
    measure: Measure, simulator: ServerThread, model: str, endpoint: str, response_format: str
) -> None:
    """Text, subtitles and a whisper-1 translation's JSON say nothing of the audio's length or
    tokens: charged its hold, a three-second clip cost thirty minutes. The gateway asks
    upstream for the JSON that says, which upstream bills the same, and answers the form asked
    for (subtitles written from its segments), as upstream would have."""

    def call(client: openai.OpenAI) -> Any:
        api = getattr(client.audio, endpoint).with_raw_response
        extra = {"prompt": PROMPT} if endpoint == "transcriptions" else {}
        return api.create(
            model=model, file=("a.wav", AUDIO), response_format=response_format, **extra
        )

    charged, bill, answer = measure(call)
    assert charged == bill > 0
    assert answer.headers["x-gateway-patched"] == "response_format"
    expected = call(direct(simulator))
    assert answer.content == expected.content
    assert answer.headers["content-type"] == expected.headers["content-type"]


LEFT_AUDIO = {
    "speech": (
        "/v1/audio/speech",
        {"json": {"model": "gpt-4o-mini-tts", "voice": "alloy", "input": TEXT, "stream_format": "sse"}},
    ),
    "transcription": (
        "/v1/audio/transcriptions",
        {"files": {"file": ("a.wav", AUDIO)}, "data": {"model": "gpt-4o-transcribe", "stream": "true"}},
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(LEFT_AUDIO))
def test_a_client_leaving_an_audio_stream_is_charged_what_upstream_bills(
    gateway: ServerThread, simulator: ServerThread, store: redis.Redis, name: str
) -> None:
    # Upstream bills the audio call whole, whoever reads it; only its done event says how many
    # audio tokens it was. A client that left was charged the hold: a 3-second clip as the 30
    # minutes of audio tokens held (200,000 µ$ against 1,648 billed), a speech 2.2 times its
    # bill. The gateway reads the stream on to its end, as a whole answer.
    path, body = LEFT_AUDIO[name]
    before = billed(simulator)
    headers = {"Authorization": f"Bearer {key_of('payer')}", "x-sim-chunk-interval-ms": "20"}
    with httpx.stream("POST", f"{gateway.url}{path}", headers=headers, **body) as answer:
        assert b".delta" in next(answer.iter_bytes())
    deadline = time.monotonic() + 10
    while spend(store, "payer") == (0, 0) or spend(store, "payer")[1]:
        assert time.monotonic() < deadline, spend(store, "payer")
        time.sleep(0.05)
    bill = billed(simulator) - before
    assert spend(store, "payer") == (bill, 0) and bill > 0


CALLS: dict[str, Call] = {
    "speech": speech,
    "speech sse": lambda c: speech(c, stream_format="sse"),
    "gpt-4o-transcribe": transcription("gpt-4o-transcribe"),
    "gpt-4o-mini-transcribe": transcription("gpt-4o-mini-transcribe"),
    "gpt-4o-mini-transcribe stream": transcription("gpt-4o-mini-transcribe", stream=True),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_a_team_with_less_left_than_the_hold_is_refused_before_upstream(
    gateway: ServerThread, simulator: ServerThread, store: redis.Redis, measure: Measure, name: str
) -> None:
    # Upstream bills the call less than the team has: it is the hold that does not fit.
    _, bill, _ = measure(CALLS[name])
    assert 0 < bill < int(Decimal(UNDER_BUDGET) * 1_000_000)
    httpx.delete(f"{simulator.url}/_sim/requests")
    with pytest.raises(openai.RateLimitError) as info:
        CALLS[name](sdk(gateway, "under"))
    assert info.value.code == "request_over_budget"  # the hold, not the spend, does not fit
    received = httpx.get(f"{simulator.url}/_sim/requests").json()["data"]
    assert [r["path"] for r in received if r["path"].startswith("/v1/audio")] == []
    assert spend(store, "under") == (0, 0)


def post_form(gateway: ServerThread, team: str, parts: list[tuple[str, Any]]) -> httpx.Response:
    """A transcription form of `parts` in their order (`(None, text)`: a text field;
    `(filename, bytes)`: a file part), as a team."""
    return httpx.post(
        f"{gateway.url}/v1/audio/transcriptions", files=parts, timeout=60,
        headers={"Authorization": f"Bearer {key_of(team)}"},
    )  # fmt: skip


def seen(simulator: ServerThread, store: redis.Redis) -> tuple[Any, int, int]:
    """What upstream was sent and billed, and what team payer was charged, so far."""
    sent = httpx.get(f"{simulator.url}/_sim/requests").json()["data"]
    return sent, billed(simulator), spend(store, "payer")[0]


def assert_refused_unread(
    answer: httpx.Response, simulator: ServerThread, store: redis.Redis, before: Any
) -> None:
    """A form parsers could read apart is refused before upstream: nothing sent, nothing billed,
    nothing charged (`before`: what `seen` gave before the request)."""
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "invalid_multipart"
    assert seen(simulator, store) == before


LONG_PROMPT = "word " * 400_000  # 400,000 text tokens: $1.00 of gpt-4o-transcribe input


def form_part(boundary: bytes, name: bytes, value: bytes, filename: bytes = b"") -> bytes:
    """One part of a form written by hand (to send shapes HTTP libraries never make)."""
    named = b'; filename="' + filename + b'"' if filename else b""
    return (
        b"--" + boundary + b'\r\nContent-Disposition: form-data; name="' + name + b'"' + named
        + b"\r\n\r\n" + value + b"\r\n"
    )  # fmt: skip


def transcription_form(boundary: bytes, model: bytes) -> bytes:
    """A whole transcription form of `model`, with a 40,000-character prompt and audio."""
    return (
        form_part(boundary, b"model", model)
        + form_part(boundary, b"prompt", LONG_PROMPT[:40_000].encode())
        + form_part(boundary, b"file", AUDIO, b"a.wav") + b"--" + boundary + b"--\r\n"
    )  # fmt: skip


def post_raw(gateway: ServerThread, body: bytes, *content_types: str) -> httpx.Response:
    """A transcription body as it is, as team payer, under each content type given (in order)."""
    headers = [("Authorization", f"Bearer {key_of('payer')}")]
    headers += [("Content-Type", content_type) for content_type in content_types]
    return httpx.post(
        f"{gateway.url}/v1/audio/transcriptions", content=body, timeout=60, headers=headers
    )


@pytest.mark.parametrize("as_file", [False, True], ids=["text_field", "file_part"])
def test_a_long_transcription_prompt_is_held(
    start_gateway: GatewayFactory,
    redis_server: str,
    tmp_path: Path,
    simulator: ServerThread,
    store: redis.Redis,
    as_file: bool,
) -> None:
    """Upstream reads and bills every token of the prompt, however long and whether its part
    names a file: a 2 MB prompt is $1.00 of input, which a team with $0.25 left (more than the
    audio and transcript hold, $0.20) must not be let through for."""
    gateway = serve_teams(
        start_gateway, redis_server, tmp_path, {"short": {"tier": "tier-5", "budget_usd": "0.25"}}
    )
    before = billed(simulator)
    prompt = ("p.txt", LONG_PROMPT.encode()) if as_file else (None, LONG_PROMPT)
    answer = post_form(gateway, "short", [
        ("model", (None, "gpt-4o-transcribe")), ("prompt", prompt), ("file", ("a.wav", AUDIO)),
    ])  # fmt: skip
    assert answer.status_code == 429, answer.text
    assert answer.json()["error"]["code"] == "request_over_budget"
    assert billed(simulator) == before
    assert spend(store, "short") == (0, 0)


def test_a_model_field_sent_as_a_file_part_is_not_served_at_another_models_price(
    gateway: ServerThread, simulator: ServerThread, store: redis.Redis
) -> None:
    """Upstream takes a form's first `model` part, a file part too: a team naming
    gpt-4o-transcribe so, then whisper-1 as a text field, must not have a token-priced
    transcription charged at whisper-1's prices (which price no tokens)."""
    before = spend(store, "payer")[0], billed(simulator)
    answer = post_form(gateway, "payer", [
        ("model", ("m.txt", b"gpt-4o-transcribe")), ("model", (None, "whisper-1")),
        ("prompt", (None, LONG_PROMPT[:40_000])), ("file", ("a.wav", AUDIO)),
    ])  # fmt: skip
    charged, bill = spend(store, "payer")[0] - before[0], billed(simulator) - before[1]
    assert charged >= bill, (answer.status_code, charged, bill)


def test_a_form_is_read_by_the_boundary_upstream_reads(
    gateway: ServerThread, simulator: ServerThread, store: redis.Redis
) -> None:
    """A content type naming `xboundary=A` before `boundary=B`: upstream splits the form on B,
    and so does the gateway, holding and charging the gpt-4o-transcribe form upstream serves.
    A whisper-1 form hidden before it, delimited by A (a preamble some parsers read apart), is
    refused before upstream rather than held at whisper-1's prices."""
    decoy = form_part(b"AAA", b"model", b"whisper-1") + b"--AAA--\r\n\r\n"
    served = transcription_form(b"BBB", b"gpt-4o-transcribe")

    def send(body: bytes) -> httpx.Response:
        return post_raw(gateway, body, "multipart/form-data; xboundary=AAA; boundary=BBB")

    before = spend(store, "payer")[0], billed(simulator)
    answer = send(served)
    charged, bill = spend(store, "payer")[0] - before[0], billed(simulator) - before[1]
    assert bill > 0, answer.text  # upstream served the form delimited by B
    assert charged >= bill, (answer.status_code, charged, bill)
    before_decoy = seen(simulator, store)
    assert_refused_unread(send(decoy + served), simulator, store, before_decoy)


def test_a_part_with_two_content_dispositions_is_refused_before_upstream(
    gateway: ServerThread, simulator: ServerThread, store: redis.Redis
) -> None:
    """A part with two Content-Disposition headers is named by the last one upstream: one that
    a reader of the first would take for a field `x` is upstream's `model` (gpt-4o-transcribe,
    taken before the whisper-1 text field after it). Such a form is refused before upstream,
    never charged at whisper-1's prices."""
    body = (
        b'--BBB\r\nContent-Disposition: form-data; name="x"\r\n'
        b'Content-Disposition: form-data; name="model"\r\n\r\ngpt-4o-transcribe\r\n'
    ) + transcription_form(b"BBB", b"whisper-1")
    before = seen(simulator, store)
    answer = post_raw(gateway, body, "multipart/form-data; boundary=BBB")
    assert_refused_unread(answer, simulator, store, before)


def test_a_form_with_two_content_types_is_read_as_upstream_gets_it(
    gateway: ServerThread, simulator: ServerThread, store: redis.Redis
) -> None:
    """Two Content-Type headers naming two boundaries: the form the gateway holds and charges
    (a whisper-1 one) must be the one upstream reads, not a gpt-4o-transcribe form split on
    the other boundary. Read by the first (AAA), the body goes on past its closing delimiter:
    refused before upstream, as a shape parsers read apart."""
    decoy = form_part(b"AAA", b"model", b"whisper-1") + b"--AAA--\r\n"
    served = transcription_form(b"BBB", b"gpt-4o-transcribe")
    before = seen(simulator, store)
    answer = post_raw(
        gateway, decoy + served, "multipart/form-data; boundary=AAA",
        "multipart/form-data; boundary=BBB",
    )  # fmt: skip
    assert_refused_unread(answer, simulator, store, before)
