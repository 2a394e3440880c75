"""The pure parts of the simulator's stateful surface: bill rounding, multipart, list pages,
batch lines, image checks, audio sizes, legacy completions, fine-tuning tokens."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import httpx
import pytest

from gateway.admission.pricing import cost_micros
from gateway.simulator import (
    audio,
    batches,
    bill,
    completions,
    fine_tuning,
    images,
    listing,
    multipart,
)
from gateway.simulator.openai_errors import SimError
from gateway.wire import validation
from gateway.wire.errors import GatewayError
from gateway.wire.tokens import count_text
from gateway.wire.usage import Usage


@pytest.mark.parametrize(
    ("model", "prompt", "cached", "completion"),
    [("gpt-4o", 1234, 0, 77), ("gpt-4o-mini", 3000, 1024, 5), ("o1-preview", 1, 0, 1)],
)
def test_token_lines_round_like_the_gateway(
    model: str, prompt: int, cached: int, completion: int
) -> None:
    price = bill.TOKEN_PRICES[model]
    charge = bill.tokens_charge(
        "/v1/chat/completions", model, prompt, completion, cached_tokens=cached
    )
    usage = Usage(prompt_tokens=prompt, completion_tokens=completion, cached_tokens=cached)
    assert charge.micros == cost_micros(price, usage)


def test_batch_lines_are_half_price_rounded_up_per_line() -> None:
    # 7 gpt-4o-mini input tokens: 1.05 micro-dollars full price, 0.525 in a batch -> 1.
    assert bill.tokens_charge("e", "gpt-4o-mini", 7).micros == 2
    assert bill.tokens_charge("e", "gpt-4o-mini", 7, batch=True).micros == 1


def test_fixed_prices() -> None:
    assert bill.image_charge("dall-e-3", "hd", "1024x1792", 1).micros == 120_000
    assert bill.speech_charge("tts-1-hd", 1000, 0, 0).micros == 30_000
    assert bill.whisper_charge("/v1/audio/transcriptions", 60).micros == 6_000
    assert bill.training_charge("gpt-4o-2024-08-06", "ft:x", 1_000_000).micros == 25_000_000
    assert (
        bill.token_price("ft:gpt-4o-mini-2024-07-18:sim-org::abcdefgh")
        == (bill.FINE_TUNED_PRICES["gpt-4o-mini-2024-07-18"])
    )


def test_bill_sums_lines_per_key_endpoint_and_model() -> None:
    ledger = bill.Bill()
    ledger.add("k", bill.tokens_charge("/v1/embeddings", "text-embedding-3-small", 100))
    ledger.add("k", bill.tokens_charge("/v1/embeddings", "text-embedding-3-small", 100))
    view = ledger.view()
    (row,) = view["by_key"]["k"]["lines"]
    assert row["micros"] == 4 and row["detail"]["requests"] == 2
    assert view["total_micros"] == 4


def test_multipart_round_trip_with_httpx() -> None:
    request = httpx.Request(
        "POST", "http://x/", files={"file": ("a.bin", b"\r\n--x\r\n")}, data={"purpose": "batch"}
    )
    body = request.read()
    boundary = multipart.boundary_of(request.headers["content-type"])
    assert boundary is not None
    parts = multipart.parse(body, boundary)
    assert parts is not None
    fields = multipart.form(parts)
    assert fields["file"].data == b"\r\n--x\r\n" and fields["file"].filename == "a.bin"
    assert fields["purpose"].data == b"batch"
    assert multipart.parse(b"garbage", boundary) is None
    assert multipart.boundary_of("application/json") is None


def test_list_pages() -> None:
    items = [{"id": f"i{n}"} for n in range(5)]
    page = listing.page(items, {"limit": "2", "after": "i3"})
    assert isinstance(page, dict)
    assert [x["id"] for x in page["data"]] == ["i2", "i1"] and page["has_more"] is True
    assert isinstance(listing.page(items, {"limit": "0"}), SimError)
    assert isinstance(listing.page(items, {"order": "up"}), SimError)


def test_batch_lines_are_checked() -> None:
    good = b'{"custom_id":"a","method":"POST","url":"/v1/embeddings","body":{}}\n'
    lines, errors = batches.parse_lines(good + b"not json\n" + good, "/v1/embeddings")
    assert len(lines) == 1
    assert [(e["code"], e["line"]) for e in errors] == [
        ("invalid_json_line", 2),
        ("duplicate_custom_id", 3),
    ]
    _, errors = batches.parse_lines(good, "/v1/chat/completions")
    assert errors[0]["code"] == "mismatched_url"


def test_image_checks_per_model() -> None:
    assert isinstance(images.check({"prompt": "x", "model": "dall-e-3", "n": 2}), SimError)
    assert isinstance(images.check({"prompt": "x", "size": "1536x1024"}), SimError)
    assert isinstance(
        images.check({"prompt": "x", "model": "gpt-image-1", "response_format": "url"}), SimError
    )
    request = images.check({"prompt": "x", "model": "gpt-image-1"})
    assert isinstance(request, images.ImageRequest) and request.b64
    assert images.usage(request)["output_tokens"] == 1056  # auto -> medium, 1024x1024


def test_speech_size_and_tokens() -> None:
    result = audio.speech({"model": "gpt-4o-mini-tts", "input": "a" * 30, "voice": "verse"})
    assert isinstance(result, audio.Speech)
    assert len(result.audio) == 32_000 and result.output_tokens == 40
    assert isinstance(
        audio.speech({"model": "tts-1", "input": "x" * 4097, "voice": "alloy"}), SimError
    )
    assert audio.seconds_of(b"x" * 16_001) == 2 and audio.seconds_of(b"") == 1


# Real files (tests/data/audio) and what ffprobe says they last, rounded up to the second: those
# the reader reads to the second (it bounds vorbis.ogg and mpeg25.mp3 a second or two above:
# it counts a Vorbis packet the most it could play, and every MP3 frame sync it finds).
REAL_AUDIO = [
    ("cbr.mp3", 6), ("flac.flac", 5), ("opus.ogg", 6), ("aac.m4a", 6),
    ("opus.webm", 6), ("silence.ogg", 31), ("silence.webm", 31),
]  # fmt: skip


@pytest.mark.parametrize(("name", "seconds"), REAL_AUDIO)
def test_whisper_reports_and_bills_the_length_an_upload_plays_not_its_size(
    name: str, seconds: int
) -> None:
    # Billed at 16 kB a second whatever the format, a 5 s MP3 of 20 kB was 2 s and 30 s of
    # Ogg silence (11 kB) 1 s: OpenAI bills whisper-1 the audio's real length.
    data = (Path(__file__).parents[2] / "data" / "audio" / name).read_bytes()
    fields = {
        "file": multipart.Part("file", name, None, data),
        "model": multipart.Part("model", None, None, b"whisper-1"),
        "response_format": multipart.Part("response_format", None, None, b"verbose_json"),
    }
    result = audio.transcribe(fields, translate=False)
    assert isinstance(result, audio.Transcript) and result.seconds == seconds
    _, verbose = audio.transcript_body(result, translate=False)
    assert verbose["duration"] == seconds and verbose["segments"][-1]["end"] == seconds
    assert verbose["usage"] == {"type": "duration", "seconds": seconds}
    assert bill.whisper_charge("/v1/audio/transcriptions", result.seconds).micros == seconds * 100


def test_gpt_4o_transcription_reads_audio_tokens_by_the_second_not_by_the_byte() -> None:
    # By the byte (1,000 a token), 5 s of 44.1 kHz stereo WAV read 883 audio tokens, 176 a
    # second: more than the gateway holds at the 1,000 a minute OpenAI estimates.
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(44100)
        w.writeframes(b"\x00" * 44100 * 4 * 5)
    mp3 = (Path(__file__).parents[2] / "data" / "audio" / "cbr.mp3").read_bytes()
    for data, seconds in ((out.getvalue(), 5), (mp3, 6)):
        fields = {
            "file": multipart.Part("file", "a", None, data),
            "model": multipart.Part("model", None, None, b"gpt-4o-transcribe"),
        }
        result = audio.transcribe(fields, translate=False)
        assert isinstance(result, audio.Transcript)
        assert result.audio_tokens == seconds * 16


def test_an_upload_of_no_known_format_lasts_its_bytes_at_16_kb_a_second() -> None:
    assert audio.seconds_of(b"\x00" * 48_000) == 3 and audio.seconds_of(b"\x00" * 48_001) == 4


def test_speech_fields_of_another_type_are_upstreams_400_not_a_crash() -> None:
    # A list `response_format` was looked up in a dict (unhashable) and a number `instructions`
    # counted as text: the simulator dropped the connection, which the gateway answers 502
    # (and charges the hold of a request it had sent), where OpenAI answers 400.
    base = {"model": "gpt-4o-mini-tts", "input": "hi", "voice": "alloy"}
    for field, value in [
        ("instructions", 5), ("instructions", ["x"]), ("response_format", []),
        ("response_format", {"a": 1}), ("stream_format", []), ("voice", {}),
    ]:  # fmt: skip
        error = audio.speech({**base, field: value})
        assert isinstance(error, SimError) and error.status == 400, (field, value)
        assert error.param == field
    assert isinstance(audio.speech({**base, "instructions": "Speak slowly."}), audio.Speech)


def test_best_of_candidates_are_all_counted() -> None:
    body = {"model": "babbage-002", "prompt": ["a", "b"], "n": 2, "best_of": 3, "max_tokens": 5}
    assert completions.check(body) is None
    result = completions.completion_object(body, "cmpl-x", 0)
    assert [c["index"] for c in result["choices"]] == [0, 1, 2, 3]
    assert result["usage"]["completion_tokens"] == 2 * 3 * 5
    # A prompt is billed in cl100k tokens (o200k_base reads this one as 10).
    hindi = {"model": "gpt-3.5-turbo-instruct", "prompt": "नमस्ते दुनिया, यह एक परीक्षण है"}
    assert completions.completion_object(hindi, "cmpl-y", 0)["usage"]["prompt_tokens"] == 31


def test_a_legacy_completion_refuses_the_logit_bias_chat_refuses_as_the_gateway_does() -> None:
    body = {"model": "babbage-002", "prompt": "a", "logit_bias": {"50256": -100, "1": 100}}
    assert completions.check(body) is None
    validation.check_completions(body)
    for bias, param in [
        ({"50256": 101}, "logit_bias.50256"), ({"50256": "5"}, "logit_bias.50256"),
        ({"you": 5}, "logit_bias"), ({str(t): 1 for t in range(1025)}, "logit_bias"),
    ]:  # fmt: skip
        refused = completions.check({**body, "logit_bias": bias})
        assert refused is not None and refused.param == param
        with pytest.raises(GatewayError) as caught:
            validation.check_completions({**body, "logit_bias": bias})
        assert (caught.value.message, caught.value.code) == (refused.message, refused.code)


def test_training_tokens() -> None:
    data = b'{"messages":[{"role":"user","content":"Hello there"}]}\n'
    assert fine_tuning.training_tokens(data) == count_text("Hello there")
    assert isinstance(fine_tuning.training_tokens(b"{}\n"), str)
    assert fine_tuning.fine_tuned_name("gpt-4o-2024-08-06", None, "abc") == (
        "ft:gpt-4o-2024-08-06:sim-org::abc"
    )
