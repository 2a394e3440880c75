"""Audio answers asked upstream in a form that says what they cost, shown to the client in the
form it asked for.

Raw speech audio, a transcript as plain text and a whisper-1 translation as JSON say nothing of
their length: charged without it, such a call would be charged its whole hold (thirty minutes
of audio for a three-second clip). Upstream bills the same call whatever form it answers in,
so the gateway asks for the one that reports its usage (speech as `stream_format: sse`, a
transcript as `json` or `verbose_json`) and renders it back here: the speech events' audio as
one body, the transcript's text as the text or JSON asked for, and whisper-1's subtitles (srt,
vtt) as cues written from `verbose_json`'s segments, one a segment, as whisper writes them.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, TypeGuard

import orjson

from gateway.wire import sse

# Raw speech by its `response_format`, as upstream labels it.
SPEECH_MEDIA_TYPES = {
    "mp3": "audio/mpeg", "opus": "audio/opus", "aac": "audio/aac", "flac": "audio/flac",
    "wav": "audio/wav", "pcm": "audio/pcm",
}  # fmt: skip
TEXT = "text/plain; charset=utf-8"
JSON = "application/json"
# Subtitle formats, by the media type upstream labels them with and their decimal mark.
SUBTITLES = {"srt": (TEXT, ","), "vtt": ("text/vtt; charset=utf-8", ".")}


def transcript_upstream_format(asked: str, *, by_minute: bool, translation: bool) -> str | None:
    """The `response_format` to ask upstream for a transcript the client asked `asked` of, when
    `asked` would not report its usage; None when it does, or cannot be rendered here. A
    whisper-1 transcription's `json` reports its seconds, a translation's does not (only
    `verbose_json`'s `duration` does); a gpt-4o transcription's `json` reports its tokens."""
    if asked == "text":
        return "verbose_json" if by_minute and translation else "json"
    if by_minute and (asked in SUBTITLES or (asked == "json" and translation)):
        return "verbose_json"
    return None


def transcript_as(asked: str, content: bytes) -> tuple[bytes, str] | None:
    """A JSON transcript (`json` or `verbose_json`) as the client asked it: `text` (the text
    and a line break, as upstream writes it) or `json` (the text alone); None when `content` is
    no transcript."""
    try:
        answer: Any = orjson.loads(content)
    except orjson.JSONDecodeError:
        return None
    text = answer.get("text") if isinstance(answer, dict) else None
    if not isinstance(text, str):
        return None
    if asked in SUBTITLES:
        return subtitles(asked, answer.get("segments"))
    if asked == "text":
        return text.encode() + b"\n", TEXT
    return orjson.dumps({"text": text}), JSON


def subtitles(asked: str, segments: Any) -> tuple[bytes, str] | None:
    """`verbose_json`'s segments as srt or vtt cues: numbered (srt) or under a WEBVTT header,
    each from its start to its end (hours always shown), its text stripped and `-->` in it
    written `->`, as whisper's own writers do; None when the segments are not such."""
    media_type, mark = SUBTITLES[asked]
    if not isinstance(segments, list):
        return None
    cues: list[str] = []
    for number, segment in enumerate(segments, start=1):
        if not isinstance(segment, dict):
            return None
        start, end, text = segment.get("start"), segment.get("end"), segment.get("text")
        if not _seconds(start) or not _seconds(end) or not isinstance(text, str):
            return None
        span = f"{_timestamp(start, mark)} --> {_timestamp(end, mark)}"
        cue = f"{span}\n{text.strip().replace('-->', '->')}\n\n"
        cues.append(f"{number}\n{cue}" if asked == "srt" else cue)
    head = "WEBVTT\n\n" if asked == "vtt" else ""
    return (head + "".join(cues)).encode(), media_type


def _seconds(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def _timestamp(seconds: float, mark: str) -> str:
    ms = round(seconds * 1000)
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    whole, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{whole:02d}{mark}{ms:03d}"


def speech_audio(content: bytes, response_format: str) -> tuple[bytes, str] | None:
    """A speech event stream read whole (`speech.audio.delta` events, then `speech.audio.done`)
    as the raw audio its deltas carry; None when `content` is no such stream, or one that
    failed (an error event: relayed as upstream sent it)."""
    if not content.lstrip().startswith((b"data:", b"event:")):
        return None
    decoder = sse.Decoder()
    chunks: list[bytes] = []
    done = False
    for data in [*decoder.feed(content), *decoder.flush()]:
        try:
            event: Any = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None
        kind = event.get("type") if isinstance(event, dict) else None
        if kind == "speech.audio.delta" and isinstance(event.get("audio"), str):
            try:
                chunks.append(base64.b64decode(event["audio"], validate=True))
            except binascii.Error:
                return None
        elif kind == "speech.audio.done":
            done = True
        else:
            return None
    if not done:
        return None
    return b"".join(chunks), SPEECH_MEDIA_TYPES.get(response_format, "audio/mpeg")
