"""The longest an upload can play, read from real files (tests/data/audio: five seconds of a tone,
thirty of silence in silence.ogg, silence.webm and silence.aac, made by ffmpeg; `ffprobe` gives the durations below) and from files whose headers lie: never
less than the audio plays, and close to it where the container says."""

from __future__ import annotations

import io
import math
import struct
import time
import wave
from pathlib import Path

import pytest

from gateway.wire import audio_length
from gateway.wire.audio_length import MAX_SECONDS, longest_seconds

AUDIO = Path(__file__).parents[2] / "data" / "audio"
FLOOR = 750  # bytes a second: 6 kb/s, the shipped admission.audio_min_bitrate
# What ffprobe says each file lasts.
DURATIONS = {
    "cbr.mp3": 5.076, "vbr.mp3": 5.076, "mpeg25.mp3": 5.184, "opus.ogg": 5.0065,
    "vorbis.ogg": 5.0, "flac.flac": 5.0, "aac.m4a": 5.0, "opus.webm": 5.008,
    "silence.ogg": 30.0065,
}  # fmt: skip


def read(name: str) -> bytes:
    return (AUDIO / name).read_bytes()


def wav(seconds: float, rate: int = 8000, channels: int = 1, width: int = 2) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(b"\x01" * int(seconds * rate) * channels * width)
    return out.getvalue()


@pytest.mark.parametrize("name", ["cbr.mp3", "vbr.mp3", "mpeg25.mp3", "opus.ogg", "vorbis.ogg"])
def test_a_real_file_is_held_its_length_and_a_little_more(name: str) -> None:
    # Every frame sync in the file counts: one that happens to occur inside audio data too.
    assert DURATIONS[name] <= longest_seconds(read(name), FLOOR) <= DURATIONS[name] * 1.25 + 1


def test_a_flac_or_wav_file_is_held_its_length() -> None:
    assert longest_seconds(read("flac.flac"), FLOOR) == 5
    assert longest_seconds(wav(124.9), FLOOR) == 125
    assert longest_seconds(wav(3, rate=44100, channels=2), FLOOR) == 3


def test_a_webm_file_is_held_its_opus_packets() -> None:
    assert longest_seconds(read("opus.webm"), FLOOR) == 6
    assert longest_seconds(read("silence.webm"), FLOOR) == 31


def test_a_webm_duration_claiming_less_than_its_packets_is_not_believed() -> None:
    """30 s of Opus silence (DTX: 18.7 kB, 25 s at the bitrate floor) whose `Duration` says a
    millisecond; a byte a reader skips to the next cluster; blocks past those read."""
    data = bytearray(read("silence.webm"))
    at = data.find(b"\x44\x89\x88")
    struct.pack_into(">d", data, at + 3, 1.0)
    assert longest_seconds(bytes(data), FLOOR) == 31
    second = data.find(b"\x1f\x43\xb6\x75", data.find(b"\x1f\x43\xb6\x75") + 4)
    broken = bytes(data[:second]) + b"\x00" + bytes(data[second:])
    assert longest_seconds(broken, FLOOR) >= 31


def test_a_webm_of_more_blocks_than_are_read_holds_the_rest_at_its_smallest_blocks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(audio_length, "MOST_FRAMES", 100)
    data = read("silence.webm")
    # Past the first 100 elements, each 7 bytes may be a block of 120 ms.
    assert longest_seconds(data, FLOOR) >= (len(data) - 2000) / 7 * 0.12


def test_a_webm_track_of_another_codec_is_held_its_bytes_at_the_lowest_bitrate() -> None:
    data = bytearray(read("silence.webm").replace(b"A_OPUS", b"A_OPUZ"))
    assert longest_seconds(bytes(data), FLOOR) == 31  # its `Duration`, more than its bytes
    struct.pack_into(">d", data, data.find(b"\x44\x89\x88") + 3, 1.0)
    assert longest_seconds(bytes(data), FLOOR) == -(-len(data) // FLOOR)


def test_an_m4a_file_is_held_its_aac_frames() -> None:
    # 5 s of 16 kHz AAC: 80,000 samples, 80 frames of 1,024 (and the encoder's priming frame).
    assert longest_seconds(read("aac.m4a"), FLOOR) == 6


def test_mp4_headers_claiming_less_than_its_frames_are_not_believed() -> None:
    data = bytearray(read("aac.m4a"))
    for box in (b"mvhd", b"mdhd"):
        at = data.find(box) + 4
        struct.pack_into(">I", data, at + 16, 1)  # a duration of one tick
    stts = data.find(b"stts") + 4
    for entry in range(struct.unpack_from(">I", data, stts + 4)[0]):
        struct.pack_into(">I", data, stts + 8 + entry * 8 + 4, 1)  # each sample one tick
    assert longest_seconds(bytes(data), FLOOR) >= DURATIONS["aac.m4a"]
    # The AudioSpecificConfig's rate, not the sample entry's, is the one a decoder plays at.
    entry = data.find(b"mp4a")
    struct.pack_into(">I", data, entry + 28, 64000 << 16)
    assert longest_seconds(bytes(data), FLOOR) >= DURATIONS["aac.m4a"]


def test_a_fragmented_mp4_is_held_its_bytes_at_the_lowest_bitrate() -> None:
    data = read("aac.m4a") + struct.pack(">I4s", 8, b"moof")
    assert longest_seconds(data, FLOOR) == -(-len(data) // FLOOR)


def test_anything_else_is_held_its_bytes_at_the_lowest_bitrate() -> None:
    assert longest_seconds(b"\x00" * 48_000, FLOOR) == 64
    assert longest_seconds(b"", FLOOR) == 0
    # No MP3 or ADTS frame (its frame length 0), nor a tag before something else.
    assert longest_seconds(b"\xff\xf1\x50\x80" + b"\x00" * 7496, FLOOR) == 10
    tagged = b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\x00" * 7490
    assert longest_seconds(tagged, FLOOR) == 10


def test_a_wav_header_saying_less_than_its_bytes_is_not_believed() -> None:
    data = bytearray(wav(60))
    at = data.find(b"data")
    for size in (16_000, 0, 0xFFFFFFFF):  # a second; a stream's unknown length
        struct.pack_into("<I", data, at + 4, size)
        assert longest_seconds(bytes(data), FLOOR) == 60
    # A byte rate twice the format's (a 2-second-a-second file by the header): the format's.
    fmt = data.find(b"fmt ")
    struct.pack_into("<I", data, fmt + 16, 32_000)
    assert longest_seconds(bytes(data), FLOOR) == 60
    # A size saying more than the bytes (a cut file): what a reader of the header says.
    struct.pack_into("<I", data, at + 4, 16_000 * 90)
    assert longest_seconds(bytes(data), FLOOR) == 90


def test_a_wav_of_another_codec_is_held_its_bytes_at_the_lowest_bitrate() -> None:
    data = bytearray(wav(10))
    struct.pack_into("<H", data, data.find(b"fmt ") + 8, 0x55)  # MP3 in WAV
    assert longest_seconds(bytes(data), FLOOR) == -(-len(data) // FLOOR)


def test_an_mp3_header_claiming_fewer_frames_is_not_believed_and_more_is() -> None:
    data = bytearray(read("vbr.mp3"))
    at = data.find(b"Xing")
    assert struct.unpack_from(">I", data, at + 4)[0] & 1
    struct.pack_into(">I", data, at + 8, 1)  # one frame
    assert longest_seconds(bytes(data), FLOOR) >= DURATIONS["vbr.mp3"]
    struct.pack_into(">I", data, at + 8, 100_000)  # 100,000 frames of 576 samples at 16 kHz
    assert longest_seconds(bytes(data), FLOOR) == 3600


def test_mp3_frames_behind_junk_or_after_another_chain_count() -> None:
    """A decoder that loses sync finds the next frame header, wherever it begins."""
    data = read("cbr.mp3")
    first = data.find(b"\xff\xf3")  # after the ID3 tag: MPEG-2 layer III frames
    junk = data[:first] + data[first : first + 4] + b"\x00" * 5000 + data[first:]
    assert longest_seconds(junk, FLOOR) >= DURATIONS["cbr.mp3"]


def test_aac_in_adts_frames_is_held_its_frames() -> None:
    """30 s of AAC silence at 8 kHz in 2.6 kB (3 s at the bitrate floor): 236 frames of 1,024
    samples (ffmpeg decodes 483,328 bytes of 16-bit samples: 30.2 s)."""
    data = read("silence.aac")
    assert longest_seconds(data, FLOOR) == 31
    # Behind junk, or a frame and junk: a decoder finds the frames (ffmpeg probes for them).
    assert longest_seconds(b"\x00" * 100 + data, FLOOR) == 31
    assert longest_seconds(data[:7] + b"\x00" * 100 + data, FLOOR) == 31
    # And an MP3's frames behind junk.
    mp3 = read("cbr.mp3")
    assert longest_seconds(b"\x00" * 100 + mp3, FLOOR) >= DURATIONS["cbr.mp3"]


def test_a_flac_streaminfo_claiming_fewer_samples_is_not_believed_and_more_is() -> None:
    data = bytearray(read("flac.flac"))
    info = data.find(b"fLaC") + 8 + 10
    packed = int.from_bytes(data[info : info + 8], "big")
    for total, seconds in ((0, 5), (16_000, 5), (16_000 * 3600, 3600)):
        changed = packed & ~((1 << 36) - 1) | total
        data[info : info + 8] = changed.to_bytes(8, "big")
        assert longest_seconds(bytes(data), FLOOR) == seconds


def pages(data: bytes) -> list[int]:
    found, at = [], data.find(b"OggS")
    while at >= 0:
        found.append(at)
        at = data.find(b"OggS", at + 4)
    return found


@pytest.mark.parametrize("name", ["opus.ogg", "vorbis.ogg"])
def test_ogg_granule_positions_claiming_less_are_not_believed_and_more_are(name: str) -> None:
    data = bytearray(read(name))
    for at in pages(bytes(data)):
        struct.pack_into("<q", data, at + 6, 0)
    assert longest_seconds(bytes(data), FLOOR) >= DURATIONS[name]
    rate = 48_000 if name == "opus.ogg" else 16_000
    struct.pack_into("<q", data, pages(bytes(data))[-1] + 6, rate * 3600)
    assert longest_seconds(bytes(data), FLOOR) == 3600


def test_a_file_behind_an_id3_tag_is_read_as_its_own_format() -> None:
    """ffmpeg reads an Ogg file behind an ID3v2 tag as Ogg: 30 s of Opus silence (its DTX
    packets well under the bitrate floor, 11 kB: 16 s at 6 kb/s) holds its 30 s."""
    data = read("silence.ogg")
    assert longest_seconds(data, FLOOR) == 31
    tags = b"ID3\x04\x00\x00\x00\x00\x00\x0a" + bytes(10)
    assert longest_seconds(tags + tags + data, FLOOR) == 31
    assert longest_seconds(tags + read("flac.flac"), FLOOR) == 5


def test_an_ogg_file_cut_inside_a_page_is_held_what_its_page_says() -> None:
    """A page whose lacing says more bytes than the file has left (an upload cut short): its
    packets counted at their longest, never an error (a 500)."""
    data = read("opus.ogg")
    last = pages(data)[-1]
    cut = data[: last + 27 + data[last + 26]]  # the last page's header, none of its packets
    assert DURATIONS["opus.ogg"] <= longest_seconds(cut, FLOOR) <= 40
    assert longest_seconds(cut + b"\x01", FLOOR) >= DURATIONS["opus.ogg"]


def test_an_ogg_stream_of_another_codec_is_held_its_bytes_at_the_lowest_bitrate() -> None:
    data = bytearray(read("opus.ogg"))
    data[data.find(b"OpusHead") : data.find(b"OpusHead") + 8] = b"Speex   "
    assert longest_seconds(bytes(data), FLOOR) == -(-len(data) // FLOOR)


def test_mp4_and_matroska_claims_beyond_their_bytes_are_believed() -> None:
    m4a = bytearray(read("aac.m4a"))
    mvhd = m4a.find(b"mvhd")
    scale = struct.unpack_from(">I", m4a, mvhd + 16)[0]
    struct.pack_into(">I", m4a, mvhd + 20, scale * 3600)
    assert longest_seconds(bytes(m4a), FLOOR) == 3600
    webm = bytearray(read("opus.webm"))
    duration = webm.find(b"\x44\x89\x88")  # Duration, an 8-byte float, in milliseconds
    struct.pack_into(">d", webm, duration + 3, 3_600_000.0)
    assert longest_seconds(bytes(webm), FLOOR) == 3600


def test_a_file_of_frame_headers_is_bounded_without_reading_them_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(audio_length, "MOST_FRAMES", 1000)
    # Past the first 1,000 headers (4,000 bytes), each byte offset may begin a frame of 1152
    # samples at 8 kHz: 0.144 s a byte.
    headers = b"\xff\xfb\x90\x00" * 10_000
    assert longest_seconds(headers, FLOOR) >= 36_000 * 0.144
    flac = read("flac.flac")
    assert longest_seconds(flac[:42] + b"\xff\xf8" * 10_000, FLOOR) == MAX_SECONDS


def test_25_mb_of_mp3_frame_headers_is_read_in_seconds_at_most() -> None:
    started = time.process_time()
    assert longest_seconds(b"\xff\xfb\x90\x00" * 6_250_000, FLOOR) >= 25_000_000 * 0.144 / 2
    assert time.process_time() - started < 10


def ogg_page(lacing: bytes, body: bytes, flags: int = 0) -> bytes:
    header = b"OggS" + bytes([0, flags]) + struct.pack("<qIII", 0, 1, 0, 0)
    return header + bytes([len(lacing)]) + lacing + body


OPUS_HEAD = b"OpusHead" + bytes([1, 1]) + struct.pack("<HIhB", 312, 48000, 0, 0)
WEBM_OPUS = (
    b"\x1a\x45\xdf\xa3\x80"  # EBML header
    + b"\x18\x53\x80\x67\x01\xff\xff\xff\xff\xff\xff\xff"  # a segment of unknown size
    + b"\x16\x54\xae\x6b\x95\xae\x93"  # tracks: one entry
    + b"\xd7\x81\x01\x86\x86A_OPUS\xe1\x85\xb5\x84"  # track 1, Opus, at...
    + struct.pack(">f", 48000.0)
    + b"\x1f\x43\xb6\x75\x01\xff\xff\xff\xff\xff\xff\xff"  # a cluster of unknown size
)
FLAC_HEADER = b"\xff\xf8\x69\x08\x00"


def crc8(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc = audio_length._CRC8[crc ^ byte]
    return crc


# Files made of what costs the reader work: a head, then a unit repeated. Past the budget such
# a file is held the most its bytes could play: each byte the start of the longest frame of
# either format a scan finds frames of (MP3's and ADTS's: four blocks of 1,024 samples at
# 7,350 Hz), or the longest hold there is where a later page, block, chunk or tag could
# declare any rate.
def most_a_byte(size: int) -> int:
    return min(MAX_SECONDS, math.ceil(size * 4 * 1024 / 7350))


def longest(size: int) -> int:
    return MAX_SECONDS


MADE_TO_COST = {
    "mp3 frame headers": (b"", b"\xff\xfb\x90\x00", most_a_byte),
    "adts frame headers": (b"", bytes.fromhex("fff15080017ffc"), most_a_byte),
    "junk, then mp3 frame headers": (b"\x00" * 7, b"\xff\xe3\x18\x00", most_a_byte),
    "ogg pages of a packet each": (
        ogg_page(bytes([len(OPUS_HEAD)]), OPUS_HEAD, flags=2),
        ogg_page(b"\x01", b"\xfc"),
        longest,
    ),
    "webm blocks": (WEBM_OPUS, b"\xa3\x85\x81\x00\x00\x80\xfc", longest),
    "flac frame headers": (
        read("flac.flac")[:42],
        FLAC_HEADER + bytes([crc8(FLAC_HEADER)]),
        longest,
    ),
    "wav chunks": (b"RIFF\xff\xff\xff\xffWAVE", b"junk\x00\x00\x00\x00", longest),
    "id3 tags": (b"", b"ID3\x04\x00\x00\x00\x00\x00\x00", longest),
}


@pytest.mark.parametrize("made", sorted(MADE_TO_COST))
def test_a_file_made_to_cost_work_is_held_the_most_its_bytes_could_play_past_the_budget(
    monkeypatch: pytest.MonkeyPatch, made: str
) -> None:
    head, unit, held = MADE_TO_COST[made]
    data = head + unit * (40_000 // len(unit))
    monkeypatch.setattr(audio_length, "MOST_FRAMES", 1_000)
    assert longest_seconds(data, FLOOR) == held(len(data))


@pytest.mark.parametrize("made", sorted(MADE_TO_COST))
def test_25_mb_made_to_cost_work_is_held_the_most_it_could_play(made: str) -> None:
    head, unit, held = MADE_TO_COST[made]
    data = head + unit * (25_000_000 // len(unit))
    assert longest_seconds(data, FLOOR) == held(len(data))


def test_25_mb_of_a_real_mp3_is_read_whole_within_the_budget() -> None:
    """1,250 copies of the 32 kb/s file's frames (MPEG-2 layer III: 220,000 of them), each
    copy 5.076 s: held its length and a little more, as one copy is."""
    data = read("cbr.mp3")
    frames = data[data.find(b"\xff\xf3") :] * 1_250
    played = DURATIONS["cbr.mp3"] * 1_250
    assert played <= longest_seconds(frames, FLOOR) <= played * 1.16
