"""Audio answers asked upstream in a form that says what they cost, shown to the client in the
form it asked for.

Raw speech audio, a transcript as plain text and a whisper-1 translation as JSON say nothing of
their length: charged without it, such a call would be charged its whole hold (thirty minutes
of audio for a three-second clip). Upstream bills the same call whatever form it answers in,
so the gateway asks for the one that reports its usage (speech as `stream_format: sse`, a
transcript as `json` or `verbose_json`) and renders it back here: the speech events' audio as
one body, the transcript's text as the text or JSON asked for. Subtitle formats (srt, vtt) are
left as asked: their cues are upstream's to write.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from gateway.wire import sse

# Raw speech by its `response_format`, as upstream labels it.
SPEECH_MEDIA_TYPES = {
    "mp3": "audio/mpeg", "opus": "audio/opus", "aac": "audio/aac", "flac": "audio/flac",
    "wav": "audio/wav", "pcm": "audio/pcm",
}  # fmt: skip
TEXT = "text/plain; charset=utf-8"
JSON = "application/json"


def transcript_upstream_format(asked: str, *, by_minute: bool, translation: bool) -> str | None:
    """The `response_format` to ask upstream for a transcript the client asked `asked` of, when
    `asked` would not report its usage; None when it does, or cannot be rendered here. A
    whisper-1 transcription's `json` reports its seconds, a translation's does not (only
    `verbose_json`'s `duration` does); a gpt-4o transcription's `json` reports its tokens."""
    if asked == "text":
        return "verbose_json" if by_minute and translation else "json"
    if asked == "json" and by_minute and translation:
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
    if asked == "text":
        return text.encode() + b"\n", TEXT
    return orjson.dumps({"text": text}), JSON


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
