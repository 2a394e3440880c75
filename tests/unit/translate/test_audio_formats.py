"""Audio answers asked in the form that reports their usage, rendered in the form asked."""

from __future__ import annotations

import base64

import orjson
import pytest

from gateway.translate.audio_formats import (
    speech_audio,
    transcript_as,
    transcript_upstream_format,
)
from gateway.wire import sse


def speech_events(*chunks: bytes, done: bool = True, crlf: bool = False) -> bytes:
    events = [
        sse.encode({"type": "speech.audio.delta", "audio": base64.b64encode(c).decode()})
        for c in chunks
    ]
    if done:
        events.append(sse.encode({"type": "speech.audio.done", "usage": {"input_tokens": 3}}))
    body = b"".join(events)
    return body.replace(b"\n", b"\r\n") if crlf else body


@pytest.mark.parametrize("crlf", [False, True])
def test_speech_events_become_the_audio_they_carry(crlf: bool) -> None:
    body = speech_events(b"ID3\x04", b"\x00\xff" * 300, b"end", crlf=crlf)
    assert speech_audio(body, "wav") == (b"ID3\x04" + b"\x00\xff" * 300 + b"end", "audio/wav")
    assert speech_audio(body, "mp3") == (b"ID3\x04" + b"\x00\xff" * 300 + b"end", "audio/mpeg")


@pytest.mark.parametrize(
    "body",
    [
        b"ID3\x04raw audio",  # upstream ignored stream_format
        speech_events(b"abc", done=False),  # cut before its done event
        speech_events(b"abc", done=False) + sse.encode({"type": "error", "error": {}}),
        b"data: {not json}\n\n",
        sse.encode({"type": "speech.audio.delta", "audio": "***"}),  # not base64
    ],
)
def test_anything_else_is_no_speech(body: bytes) -> None:
    assert speech_audio(body, "mp3") is None


def test_what_upstream_is_asked_for() -> None:
    ask = transcript_upstream_format
    # whisper-1 transcriptions' json reports seconds; translations' only verbose_json does.
    assert ask("text", by_minute=True, translation=False) == "json"
    assert ask("json", by_minute=True, translation=False) is None
    assert ask("text", by_minute=True, translation=True) == "verbose_json"
    assert ask("json", by_minute=True, translation=True) == "verbose_json"
    assert ask("text", by_minute=False, translation=False) == "json"
    for said in ("json", "verbose_json", "srt", "vtt"):  # gpt-4o models: json reports
        assert ask(said, by_minute=False, translation=False) is None
    for translation in (False, True):  # whisper-1's subtitles: from verbose_json's segments
        assert ask("srt", by_minute=True, translation=translation) == "verbose_json"
        assert ask("vtt", by_minute=True, translation=translation) == "verbose_json"
    assert ask("verbose_json", by_minute=True, translation=True) is None


def test_a_json_transcript_as_text_or_json() -> None:
    verbose = orjson.dumps({"task": "translate", "duration": 3.0, "text": "Hi there."})
    assert transcript_as("text", verbose) == (b"Hi there.\n", "text/plain; charset=utf-8")
    assert transcript_as("json", verbose) == (b'{"text":"Hi there."}', "application/json")
    assert transcript_as("text", b"Hi there.\n") is None
    assert transcript_as("text", b'{"text": 3}') is None


SEGMENTS = orjson.dumps({
    "duration": 3725.5, "text": "Hi there. A --> B.",
    "segments": [
        {"id": 0, "start": 0.0, "end": 2.5, "text": " Hi there."},
        {"id": 1, "start": 3599.9994, "end": 3725.5, "text": " A --> B. "},
    ],
})  # fmt: skip


def test_whisper_subtitles_are_cues_of_the_segments() -> None:
    assert transcript_as("srt", SEGMENTS) == (
        b"1\n00:00:00,000 --> 00:00:02,500\nHi there.\n\n"
        b"2\n00:59:59,999 --> 01:02:05,500\nA -> B.\n\n",
        "text/plain; charset=utf-8",
    )
    assert transcript_as("vtt", SEGMENTS) == (
        b"WEBVTT\n\n00:00:00.000 --> 00:00:02.500\nHi there.\n\n"
        b"00:59:59.999 --> 01:02:05.500\nA -> B.\n\n",
        "text/vtt; charset=utf-8",
    )


@pytest.mark.parametrize(
    "segments", [None, [{"start": 0, "end": 1}], [{"start": -1, "end": 1, "text": "a"}], ["a"]]
)
def test_subtitles_need_whole_segments(segments: object) -> None:
    answer = orjson.dumps({"text": "a", "segments": segments})
    assert transcript_as("srt", answer) is None
