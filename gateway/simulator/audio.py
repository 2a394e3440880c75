"""Speech, transcription and translation: checks and deterministic answers. Pure.

Made-up but fixed rates, so tests can predict every number:

- Speech lasts `characters / SPEECH_CHARS_PER_SECOND` seconds and is "encoded" at
  `BYTES_PER_SECOND`, so speech is `ceil(characters * 16000 / 15)` bytes (a format's magic
  bytes, then hash-derived filler). gpt-4o-mini-tts reports `AUDIO_TOKENS_PER_SECOND` audio
  tokens a second of speech (about 1,250 a minute, OpenAI's ~$0.015/minute estimate at $12/1M).
- An uploaded audio file lasts what the gateway reads its format to play (`wire.audio_length`:
  WAV, MP3, AAC, FLAC, Ogg, MP4, WebM), in whole seconds rounded up, as OpenAI bills whisper-1
  by the audio's real length; bytes of no format it knows (the tests' zeros) last what they
  would at `BYTES_PER_SECOND`, and at least a second. whisper-1 reports (`usage`, verbose_json's
  `duration`, the cues' end) and bills those seconds. gpt-4o transcription models read
  `TRANSCRIBE_AUDIO_TOKENS_PER_SECOND` audio tokens a second of it plus the prompt's text tokens
  and write the transcript's tokens.
- The transcript is the simulator's answer text seeded by the file's bytes: same file, same text.
- Event streams (gpt-4o models only): speech with `stream_format: sse` sends the audio in
  `speech.audio.delta` events of `SPEECH_DELTA_BYTES` (base64) and ends with
  `speech.audio.done` carrying the usage; a transcription with `stream=true` sends one
  `transcript.text.delta` a word and ends with `transcript.text.done` carrying the usage.
"""

from __future__ import annotations

import base64
import hashlib
import math
from dataclasses import dataclass
from typing import Any

from gateway.simulator import openai_errors as oe
from gateway.simulator.answers import answer_text
from gateway.simulator.multipart import Part
from gateway.simulator.openai_errors import SimError
from gateway.wire.audio_length import longest_seconds
from gateway.wire.tokens import count_text

SPEECH_MODELS = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")
VOICES = ("alloy", "ash", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer")
# Voices only the gpt-4o TTS model has.
NEW_VOICES = ("ballad", "verse")
MAX_SPEECH_CHARS = 4096
FORMATS: dict[str, tuple[bytes, bytes]] = {
    # response_format -> (content type, leading magic bytes)
    "mp3": (b"audio/mpeg", b"ID3\x04\x00\x00\x00\x00\x00\x00"),
    "opus": (b"audio/opus", b"OggS"),
    "aac": (b"audio/aac", b"\xff\xf1"),
    "flac": (b"audio/flac", b"fLaC"),
    "wav": (b"audio/wav", b"RIFF\x00\x00\x00\x00WAVE"),
    "pcm": (b"audio/pcm", b""),
}
SPEECH_CHARS_PER_SECOND = 15
BYTES_PER_SECOND = 16_000
AUDIO_TOKENS_PER_SECOND = 20
# Under the 1,000 a minute OpenAI estimates (the gateway's shipped `audio_tokens_per_minute`).
TRANSCRIBE_AUDIO_TOKENS_PER_SECOND = 16

SPEECH_DELTA_BYTES = 8_192
STREAM_FORMATS = ("sse", "audio")

WHISPER = "whisper-1"
TRANSCRIBE_MODELS = (WHISPER, "gpt-4o-transcribe", "gpt-4o-mini-transcribe")
WHISPER_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
TOKEN_MODEL_FORMATS = ("json", "text")


@dataclass(frozen=True, slots=True)
class Speech:
    model: str
    content_type: bytes
    audio: bytes
    characters: int
    input_tokens: int
    output_tokens: int
    sse: bool = False


def speech(body: dict[str, Any]) -> Speech | SimError:
    model = body.get("model")
    if model is None:
        return oe.missing_parameter("model")
    if model not in SPEECH_MODELS:
        return oe.model_not_found(str(model))
    text = body.get("input")
    if text is None:
        return oe.missing_parameter("input")
    if not isinstance(text, str):
        return oe.invalid_type("input", "a string", text)
    if len(text) > MAX_SPEECH_CHARS:
        return oe.string_too_long("input", MAX_SPEECH_CHARS, len(text))
    voice = body.get("voice")
    if voice is None:
        return oe.missing_parameter("voice")
    # Each named field of another type is OpenAI's 400, as `input` is, never a crash here.
    for field in ("voice", "instructions", "response_format", "stream_format"):
        value = body.get(field)
        if value is not None and not isinstance(value, str):
            return oe.invalid_type(field, "a string", value)
    voices = VOICES + NEW_VOICES if model == "gpt-4o-mini-tts" else VOICES
    if voice not in voices:
        return oe.invalid_value("voice", voice, voices)
    instructions = body.get("instructions")
    if instructions is not None and model != "gpt-4o-mini-tts":
        return oe.unsupported_parameter("instructions")
    response_format = body.get("response_format", "mp3")
    if response_format not in FORMATS:
        return oe.invalid_value("response_format", response_format, tuple(FORMATS))
    speed = body.get("speed", 1.0)
    if isinstance(speed, bool) or not isinstance(speed, int | float):
        return oe.invalid_type("speed", "a number", speed)
    if speed < 0.25:
        return oe.below_minimum("speed", 0.25, speed, "decimal")
    if speed > 4:
        return oe.above_maximum("speed", 4, speed, "decimal")
    stream_format = body.get("stream_format", "audio")
    if stream_format not in STREAM_FORMATS:
        return oe.invalid_value("stream_format", stream_format, STREAM_FORMATS)
    if stream_format == "sse" and model != "gpt-4o-mini-tts":
        return oe.unsupported_parameter("stream_format")
    content_type, magic = FORMATS[response_format]
    size = math.ceil(len(text) * BYTES_PER_SECOND / SPEECH_CHARS_PER_SECOND)
    filler = hashlib.shake_256(text.encode()).digest(max(0, size - len(magic)))
    input_tokens = count_text(text) + (count_text(instructions) if instructions else 0)
    output_tokens = math.ceil(len(text) * AUDIO_TOKENS_PER_SECOND / SPEECH_CHARS_PER_SECOND)
    audio = (magic + filler)[:size]
    sse = stream_format == "sse"
    return Speech(model, content_type, audio, len(text), input_tokens, output_tokens, sse)


def speech_events(result: Speech) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(delta events, done event) of a speech answered as an event stream."""
    audio = result.audio
    deltas = [
        {
            "type": "speech.audio.delta",
            "audio": base64.b64encode(audio[at : at + SPEECH_DELTA_BYTES]).decode(),
        }
        for at in range(0, len(audio), SPEECH_DELTA_BYTES)
    ]
    usage = {
        "input_tokens": result.input_tokens,
        "output_tokens": result.output_tokens,
        "total_tokens": result.input_tokens + result.output_tokens,
    }
    return deltas, {"type": "speech.audio.done", "usage": usage}


@dataclass(frozen=True, slots=True)
class Transcript:
    model: str
    text: str
    response_format: str
    seconds: int
    # gpt-4o transcription models only.
    text_tokens: int
    audio_tokens: int
    output_tokens: int
    stream: bool = False


def seconds_of(audio: bytes) -> int:
    return max(1, longest_seconds(audio, BYTES_PER_SECOND))


def transcribe(fields: dict[str, Part], *, translate: bool) -> Transcript | SimError:
    upload = fields.get("file")
    if upload is None:
        return oe.missing_parameter("file")
    model_part = fields.get("model")
    if model_part is None:
        return oe.missing_parameter("model")
    model = model_part.data.decode("utf-8", "replace")
    models = (WHISPER,) if translate else TRANSCRIBE_MODELS
    if model not in models:
        return oe.model_not_found(model)
    format_part = fields.get("response_format")
    response_format = format_part.data.decode("utf-8", "replace") if format_part else "json"
    formats = WHISPER_FORMATS if model == WHISPER else TOKEN_MODEL_FORMATS
    if response_format not in formats:
        return oe.invalid_value("response_format", response_format, formats)
    prompt_part = fields.get("prompt")
    prompt = prompt_part.data.decode("utf-8", "replace") if prompt_part else ""
    seed = int.from_bytes(hashlib.blake2b(upload.data, digest_size=8).digest(), "little")
    text = answer_text(seed)
    token_model = model != WHISPER
    stream_part = fields.get("stream")
    stream = stream_part is not None and stream_part.data.lower() == b"true"
    seconds = seconds_of(upload.data)
    return Transcript(
        model,
        text,
        response_format,
        seconds,
        count_text(prompt) if token_model and prompt else 0,
        seconds * TRANSCRIBE_AUDIO_TOKENS_PER_SECOND if token_model else 0,
        count_text(text) if token_model else 0,
        # whisper-1 ignores `stream`.
        stream and token_model and not translate,
    )


def _timestamp(seconds: int, separator: str) -> str:
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}{separator}000"


def transcript_usage(result: Transcript) -> dict[str, Any]:
    if result.model == WHISPER:
        return {"type": "duration", "seconds": result.seconds}
    audio_in = result.text_tokens + result.audio_tokens
    return {
        "type": "tokens",
        "input_tokens": audio_in,
        "input_token_details": {
            "text_tokens": result.text_tokens,
            "audio_tokens": result.audio_tokens,
        },
        "output_tokens": result.output_tokens,
        "total_tokens": audio_in + result.output_tokens,
    }


def transcript_events(result: Transcript) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(delta events, done event) of a transcription answered as an event stream."""
    words = result.text.split(" ")
    deltas = [
        {"type": "transcript.text.delta", "delta": word if not i else " " + word}
        for i, word in enumerate(words)
    ]
    done = {"type": "transcript.text.done", "text": result.text, "usage": transcript_usage(result)}
    return deltas, done


def transcript_body(result: Transcript, *, translate: bool) -> tuple[bytes, Any]:
    """(content type, body): a JSON-able object for the json formats, text otherwise."""
    usage = transcript_usage(result)
    fmt = result.response_format
    if fmt == "json":
        return b"application/json", {"text": result.text} if translate else {
            "text": result.text,
            "usage": usage,
        }
    if fmt == "verbose_json":
        segment = {
            "id": 0,
            "seek": 0,
            "start": 0.0,
            "end": float(result.seconds),
            "text": result.text,
            "tokens": [],
            "temperature": 0.0,
            "avg_logprob": -0.2,
            "compression_ratio": 1.2,
            "no_speech_prob": 0.01,
        }
        verbose: dict[str, Any] = {
            "task": "translate" if translate else "transcribe",
            "language": "english",
            "duration": float(result.seconds),
            "text": result.text,
            "segments": [segment],
        }
        if not translate:
            verbose["usage"] = usage
        return b"application/json", verbose
    if fmt == "text":
        return b"text/plain; charset=utf-8", result.text + "\n"
    end_srt = _timestamp(result.seconds, ",")
    if fmt == "srt":
        return b"text/plain; charset=utf-8", f"1\n00:00:00,000 --> {end_srt}\n{result.text}\n\n"
    end_vtt = _timestamp(result.seconds, ".")
    return b"text/vtt; charset=utf-8", f"WEBVTT\n\n00:00:00.000 --> {end_vtt}\n{result.text}\n\n"
