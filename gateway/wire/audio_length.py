"""The longest an uploaded audio file can play, in whole seconds: what a transcription of it
can be billed (whisper-1 by the second, gpt-4o transcription models by the audio tokens of
each second), known before upstream reads it. Pure.

Upstream bills the audio's real length, with no cap but the upload's size (25 MB: at a low
bitrate, hours). The bound is read from the bytes where that is cheap and certain, and a header
is never believed when it says less than the bytes can play (a lying header would undercharge);
what a header claims beyond that is taken too (a reader that trusts it bills it):

- WAV of PCM (integer, float, A-law, mu-law): its data bytes at the rate its format fixes.
- MP3 (and AAC in ADTS frames): every frame header in the file, wherever it is (a decoder
  that loses sync finds the next one, and one file can hold chains of frames that start at
  different offsets), each playing its samples at its rate; and the frame count a Xing, Info
  or VBRI header claims.
- FLAC: every frame header in the file (its CRC-8 checked), each its block of samples; and the
  total STREAMINFO claims.
- Ogg: every page in the file; an Opus packet plays what its TOC byte says (120 ms at most), a
  Vorbis packet half its long block at most; and the largest granule position a page claims.
  The pages of another codec, as an unknown file.
- MP4/M4A: each sound track's sample count, each sample an AAC frame (1,024 samples at the
  rate its AudioSpecificConfig gives) or an Opus packet (120 ms); and what its time-to-sample
  table, `mdhd` or `mvhd` claims. A fragmented file, or another codec, as anything else.
- WebM/Matroska: each block of an Opus track what its TOC says, of a Vorbis track half the
  largest block; and the segment's `Duration` or its last block's time. A block of another
  codec, and whatever a reader skips to the next cluster, as anything else.
- Anything else: the bytes at `floor_bytes_per_second`, the lowest bitrate upstream's formats
  are assumed to go, or its MP3 or ADTS frame headers, if more (junk before them).

Counting every candidate frame over-counts a little (a frame sync that happens to occur inside
audio data counts too): a hold a few per cent above the bill, never below it. The work is one
pass over the bytes, its frame headers found and summed by `re` in windows, its pages, blocks,
tags and chunks read one by one, within a budget (`MOST_FRAMES`): past it, the rest of the
file is held the most its bytes could play (each byte the start of the longest frame its format
has, or `MAX_SECONDS`), no longer read. A file made to cost work (a frame header every few
bytes, tiny pages, blocks or chunks) costs a few hundred milliseconds of CPU at most, and
callers run it off the event loop.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Iterator
from itertools import accumulate
from typing import Any

# A bound past this is a lie no budget covers; capped so that its price stays an exact integer
# in Redis (a double), never below any budget a team could have left.
MAX_SECONDS = 10_000_000
# The work one file may cost, in units of about 0.25 us of CPU: about 250 ms at most. 25 MB of
# real audio costs less, and is read whole, down to about 8 kb/s in MP3 (390,000 frames:
# 900,000 units), 12 kb/s in Ogg Opus and 32 kb/s in WebM (a block every 20 ms: 950,000).
MOST_FRAMES = 1_000_000
# What each piece of work costs: an MP3 or ADTS frame header a scan finds, an 0xFF byte it
# tries (`_SYNCS_COST` of them a unit), an Opus packet whose TOC is read in C (`_TOCS_COST` a
# unit) or one by one, an Ogg page, a Matroska block read inline or another element, and a
# tag, chunk or FLAC frame read in Python.
_MP3_COST = 2
_ADTS_COST = 2
_SYNCS_COST = 8
_TOCS_COST = 2
_PACKET_COST = 2
_PAGE_COST = 15
_BLOCK_COST = 3
_ELEMENT_COST = 5
_READ_COST = 12
# Frame headers are found a window of bytes at a time, the budget checked between windows.
_WINDOW = 1 << 16


def longest_seconds(data: bytes, floor_bytes_per_second: int) -> int:
    """The most seconds `data` can play (0 for no bytes)."""
    if not data:
        return 0
    floor = len(data) / floor_bytes_per_second
    budget = [MOST_FRAMES]  # what is left of it, shared by every reading of the file
    # Decoders skip ID3v2 tags before any format (ffmpeg reads an Ogg file behind one as Ogg).
    start = _after_id3(data, budget)
    if start is None:
        return MAX_SECONDS  # a tag after another past the budget: a file made to cost work
    body = data[start:] if start else data
    seconds: float | None
    if body.startswith((b"RIFF", b"RF64", b"BW64")) and body[8:12] == b"WAVE":
        seconds = _wav(body, budget)
    elif body.startswith(b"fLaC"):
        seconds = _flac(body, 0, budget)
    elif body.startswith(b"OggS"):
        seconds = _ogg(body, floor_bytes_per_second, budget)
    elif _mp3_header(body, 0) is not None or _adts_header(body, 0) is not None:
        seconds = max(_mp3(data, budget), _adts(data, budget))
    elif body[4:8] == b"ftyp":
        seconds = _mp4(body, floor)
    elif body.startswith(b"\x1a\x45\xdf\xa3"):
        seconds = _matroska(body, floor_bytes_per_second, budget)
    else:
        # Decoders find MP3 and ADTS frames behind junk too (ffmpeg probes for them anywhere).
        seconds = max(floor, _mp3(data, budget), _adts(data, budget))
    if seconds is None:
        seconds = floor
    return min(MAX_SECONDS, math.ceil(seconds))


def _after_id3(data: bytes, budget: list[int]) -> int | None:
    """Where the audio begins after the ID3v2 tags before it (0 if none); None past the
    budget."""
    at = 0
    while data.startswith(b"ID3", at) and at + 10 <= len(data):
        budget[0] -= _READ_COST
        if budget[0] < 0:
            return None
        size = 0
        for byte in data[at + 6 : at + 10]:
            size = size << 7 | byte & 0x7F
        at += 10 + size + (10 if data[at + 5] & 0x10 else 0)
    return min(at, len(data))


# -- WAV -------------------------------------------------------------------------------------------

# Formats whose bytes fix their length: PCM, IEEE float, A-law, mu-law.
_PCM_TAGS = (1, 3, 6, 7)


def _wav(data: bytes, budget: list[int]) -> float | None:
    """PCM's data bytes (those declared, or those present if more) at its byte rate, the
    smallest of the ones its header gives (the longest reading); None for another codec;
    `MAX_SECONDS` past the budget (its chunks could declare any rate)."""
    at, fmt = 12, None
    while at + 8 <= len(data):
        budget[0] -= _READ_COST
        if budget[0] < 0:
            return MAX_SECONDS
        kind = data[at : at + 4]
        size: int = struct.unpack_from("<I", data, at + 4)[0]
        body = at + 8
        if kind == b"fmt " and size >= 16 and body + 16 <= len(data):
            tag, channels, rate, byte_rate, align, bits = struct.unpack_from("<HHIIHH", data, body)
            if tag == 0xFFFE and size >= 26 and body + 26 <= len(data):
                tag = struct.unpack_from("<H", data, body + 24)[0]  # the subformat's
            fmt = tag, channels, rate, byte_rate, align, bits
        elif kind == b"data":
            if fmt is None or fmt[0] not in _PCM_TAGS:
                return None
            _, channels, rate, byte_rate, align, bits = fmt
            rates: list[int] = [
                r for r in (byte_rate, rate * align, rate * channels * bits // 8) if r > 0
            ]
            if not rates or not rate:
                return None
            present = len(data) - body
            # 0 or 0xFFFFFFFF: a stream's (or RF64's) unknown length, read to the end. A larger
            # size than the bytes (a cut file) is what a reader of the header says it lasts.
            known = size not in (0, 0xFFFFFFFF)
            return (max(size, present) if known else present) / min(rates)
        at = body + size + (size & 1)
    return None


# -- MP3 -------------------------------------------------------------------------------------------

_MP3_RATES = (44100, 48000, 32000)


def _mp3_header(data: bytes, at: int) -> tuple[int, int] | None:
    """(samples, sample rate) of the frame whose header is at `at`, or None: the checks a decoder
    makes of a header (ffmpeg's `ff_mpa_check_header`), free format (bitrate 0) taken."""
    if at + 4 > len(data):
        return None
    header = int.from_bytes(data[at : at + 4], "big")
    version, layer = header >> 19 & 3, header >> 17 & 3
    bitrate, rate = header >> 12 & 0xF, header >> 10 & 3
    if header & 0xFFE00000 != 0xFFE00000 or version == 1 or not layer or bitrate == 15:
        return None
    if rate == 3:
        return None
    # version 3: MPEG-1; 2: MPEG-2 (half the rate); 0: MPEG-2.5 (a quarter).
    hz = _MP3_RATES[rate] >> (0 if version == 3 else 1 if version == 2 else 2)
    samples = 384 if layer == 3 else 1152 if layer == 2 or version == 3 else 576
    return samples, hz


# The most one byte offset can add: a frame of 1152 samples at 8 kHz (MPEG-2.5) begins there.
_MP3_MOST_A_BYTE = 1152 / 8000


def _byte_class(values: Iterator[int]) -> bytes:
    return b"[" + b"".join(re.escape(bytes([value])) for value in values) + b"]"


def _mp3_seconds() -> dict[bytes, float]:
    """The seconds a frame plays by the two bytes after its header's first (which, with it,
    make every check `_mp3_header` makes), for every header it takes."""
    table = {}
    for second in range(0xE0, 0x100):
        for third in range(0x100):
            frame = _mp3_header(bytes((0xFF, second, third, 0)), 0)
            if frame is not None:
                table[bytes((second, third))] = frame[0] / frame[1]
    return table


_MP3_SECONDS = _mp3_seconds()
# A frame header `_mp3_header` takes (four bytes), its second and third bytes captured.
_MP3_FRAME = re.compile(
    rb"\xff(?=("
    + _byte_class(iter(sorted({key[0] for key in _MP3_SECONDS})))
    + _byte_class(iter(sorted({key[1] for key in _MP3_SECONDS})))
    + rb")[\x00-\xff])"
)


def _frames(
    data: bytes,
    frame: re.Pattern[bytes],
    seconds: dict[Any, float],
    header: int,
    cost: int,
    most_a_byte: float,
    budget: list[int],
) -> tuple[float, int]:
    """The seconds of every frame header `frame` finds (`header` bytes long) in `data`, each
    `seconds[its captured bytes]`, past the budget the rest at `most_a_byte` a byte; and where
    the window of the first frame found begins (-1: none)."""
    total, at, end, first = 0.0, 0, len(data), -1
    while at < end:
        stop = min(end, at + _WINDOW)
        # A header that begins in the window is found whole: it may end past the window.
        syncs = data.count(b"\xff", at, stop)  # where a match is tried
        if budget[0] < syncs // _SYNCS_COST:
            return total + (end - at) * most_a_byte, first
        found = frame.findall(data, at, min(end, stop + header - 1))
        budget[0] -= len(found) * cost + syncs // _SYNCS_COST
        if budget[0] < 0:
            return total + (end - at) * most_a_byte, first
        if found:
            total += sum(map(seconds.__getitem__, found))
            if first < 0:
                first = at
        at = stop
    return total, first


def _mp3(data: bytes, budget: list[int]) -> float:
    seconds, first = _frames(data, _MP3_FRAME, _MP3_SECONDS, 4, _MP3_COST, _MP3_MOST_A_BYTE, budget)
    claim = 0.0
    # The first frame, in the window it was found in.
    match = _MP3_FRAME.search(data, first, first + _WINDOW + 3) if first >= 0 else None
    if match is not None:
        at = match.start()
        samples, hz = _mp3_header(data, at) or (0, 1)
        # A Xing/Info header sits after the side information, VBRI 32 bytes in.
        window = data[at + 4 : at + 48]
        for tag in (b"Xing", b"Info"):
            found = window.find(tag)
            if found >= 0 and at + 4 + found + 12 <= len(data):
                flags, frames = struct.unpack_from(">II", data, at + 4 + found + 4)
                if flags & 1:
                    claim = frames * samples / hz
        if data[at + 36 : at + 40] == b"VBRI" and at + 54 <= len(data):
            claim = max(claim, struct.unpack_from(">I", data, at + 50)[0] * samples / hz)
    return max(seconds, claim)


# -- AAC in ADTS frames ----------------------------------------------------------------------------

# The most one byte offset can add: a frame of four blocks of 1,024 samples at 7,350 Hz.
_ADTS_MOST_A_BYTE = 4 * 1024 / 7350


def _adts_header(data: bytes, at: int) -> float | None:
    """Seconds the ADTS frame whose header is at `at` plays (its raw data blocks of 1,024
    samples at its rate), or None: not a header a decoder takes."""
    if at + 7 > len(data):
        return None
    header = int.from_bytes(data[at : at + 7], "big")  # 56 bits
    if header >> 44 != 0xFFF or header >> 41 & 3:  # the sync word, layer 0
        return None
    index, length = header >> 34 & 0xF, header >> 13 & 0x1FFF
    if index >= len(_AAC_RATES) or length < 7:
        return None
    return ((header & 3) + 1) * 1024 / _AAC_RATES[index]


def _adts_frames() -> tuple[re.Pattern[bytes], dict[tuple[bytes, bytes], float]]:
    """A frame header `_adts_header` takes (seven bytes: the sync word and layer 0, a known
    rate, a frame length of 7 or more), its third and seventh bytes captured; and the seconds
    a frame plays by those two bytes (its rate, its raw data blocks)."""
    rates = [b for b in range(0x100) if b >> 2 & 0xF < len(_AAC_RATES)]
    low = _byte_class(b for b in range(0x100) if not b & 3)  # no high bits of the length
    high = _byte_class(b for b in range(0x100) if b & 3)
    frame = re.compile(
        rb"\xff(?=[\xf0\xf1\xf8\xf9](" + _byte_class(iter(rates)) + rb")"
        + rb"(?:" + high + rb"[\x00-\xff]{2}|" + low + rb"[\x01-\xff][\x00-\xff]|"
        + low + rb"\x00[\xe0-\xff])([\x00-\xff]))"
    )  # fmt: skip
    seconds = {
        (bytes((rate,)), bytes((last,))): ((last & 3) + 1) * 1024 / _AAC_RATES[rate >> 2 & 0xF]
        for rate in rates
        for last in range(0x100)
    }
    return frame, seconds


def _adts(data: bytes, budget: list[int]) -> float:
    """Every ADTS frame header in the file, wherever it is (as MP3's)."""
    return _frames(data, _ADTS_FRAME, _ADTS_SECONDS, 7, _ADTS_COST, _ADTS_MOST_A_BYTE, budget)[0]


# -- FLAC ------------------------------------------------------------------------------------------

_FLAC_SYNC = re.compile(rb"\xff[\xf8\xf9]")
_FLAC_RATES = (0, 88200, 176400, 192000, 8000, 16000, 22050, 24000, 32000, 44100, 48000, 96000)


def _crc8_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc << 1 ^ 0x07 if crc & 0x80 else crc << 1) & 0xFF
        table.append(crc)
    return tuple(table)


_CRC8 = _crc8_table()


def _flac(data: bytes, start: int, budget: list[int]) -> float | None:
    """Every frame's block at the lower of its rate and STREAMINFO's, or STREAMINFO's total if
    more; None without a STREAMINFO rate."""
    at = start + 4
    if at + 4 + 18 > len(data) or data[at] & 0x7F != 0:
        return None
    info = int.from_bytes(data[at + 4 + 10 : at + 4 + 18], "big")
    rate, total = info >> 44, info & (1 << 36) - 1
    if not rate:
        return None
    samples = 0.0
    for match in _FLAC_SYNC.finditer(data, at):
        budget[0] -= _READ_COST
        if budget[0] < 0:  # a frame of 65,536 samples at 1 Hz could begin at each byte
            return MAX_SECONDS
        frame = _flac_frame(data, match.start())
        if frame is not None:
            block, hz = frame
            samples += block * rate / min(hz or rate, rate)
    return max(samples, total) / rate


def _flac_frame(data: bytes, at: int) -> tuple[int, int] | None:
    """(block size, sample rate or 0 for STREAMINFO's) of a frame header at `at` whose
    reserved bits are 0 and whose CRC-8 matches, else None."""
    if at + 6 > len(data):
        return None
    size_code, rate_code = data[at + 2] >> 4, data[at + 2] & 0xF
    if not size_code or rate_code == 15 or data[at + 3] & 1 or data[at + 3] >> 4 > 10:
        return None
    if data[at + 3] >> 1 & 7 == 3:  # a reserved sample size
        return None
    first = data[at + 4]
    # The frame or sample number, UTF-8 coded: its leading ones say how many bytes follow.
    extra = 0 if first < 0x80 else 8 - (~first & 0xFF).bit_length() - 1
    if extra < 0 or extra > 6 or (first >= 0x80 and extra == 0):
        return None
    end = at + 5 + extra
    block = 0
    if size_code == 1:
        block = 192
    elif size_code <= 5:
        block = 576 << (size_code - 2)
    elif size_code == 6:
        block, end = data[end] + 1 if end < len(data) else 0, end + 1
    elif size_code == 7:
        block = int.from_bytes(data[end : end + 2], "big") + 1
        end += 2
    else:
        block = 256 << (size_code - 8)
    hz = _FLAC_RATES[rate_code] if rate_code < 12 else 0
    if rate_code == 12:
        hz, end = (data[end] * 1000 if end < len(data) else 0), end + 1
    elif rate_code in (13, 14):
        hz = int.from_bytes(data[end : end + 2], "big") * (1 if rate_code == 13 else 10)
        end += 2
    if end >= len(data) or (rate_code >= 12 and not hz):
        return None
    crc = 0
    for byte in data[at:end]:
        crc = _CRC8[crc ^ byte]
    return (block, hz) if crc == data[end] else None


# -- Ogg -------------------------------------------------------------------------------------------

# An Opus frame's length in 48 kHz samples by its TOC configuration: SILK 10-60 ms, hybrid
# 10-20 ms, CELT 2.5-20 ms.
_OPUS_FRAME = (480, 960, 1920, 2880) * 3 + (480, 960) * 2 + (120, 240, 480, 960) * 4
_OPUS_MOST = 5760  # 120 ms: no packet plays more


def _opus_packet(data: bytes, at: int, length: int) -> int:
    """48 kHz samples an Opus packet of `length` bytes (in this page) at `at` plays."""
    if length < 1 or at >= len(data):  # empty, or cut off with the file
        return _OPUS_MOST
    toc = data[at]
    code = toc & 3
    if code == 3 and (length < 2 or at + 1 >= len(data)):
        return _OPUS_MOST
    frames = 1 if code == 0 else 2 if code < 3 else data[at + 1] & 0x3F
    return min(_OPUS_MOST, frames * _OPUS_FRAME[toc >> 3]) if frames else _OPUS_MOST


# An Opus packet's length in 120-sample units by its TOC byte, for codes 0 to 2 (one frame, or
# two); 0 for code 3, whose frame count is its second byte.
_OPUS_UNITS = bytes(
    0
    if toc & 3 == 3
    else min(_OPUS_MOST, (1 if toc & 3 == 0 else 2) * _OPUS_FRAME[toc >> 3]) // 120
    for toc in range(0x100)
)
_OPUS_ONE_OR_TWO = bytes(toc for toc in range(0x100) if toc & 3 != 3)


def _opus_page(data: bytes, body: int, lacing: bytes, starts: bool, budget: list[int]) -> int:
    """48 kHz samples the Opus packets that begin in a page (its packets at `body`) play."""
    whole = lacing and body + sum(lacing) <= len(data)
    if starts and whole and 0 not in lacing and 255 not in lacing:
        # Each segment a whole packet (the usual page): their TOC bytes summed in C.
        tocs = bytes(map(data.__getitem__, accumulate(lacing[:-1], initial=body)))
        if not tocs.translate(None, _OPUS_ONE_OR_TWO):  # no packet of code 3
            budget[0] -= len(tocs) // _TOCS_COST
            return sum(tocs.translate(_OPUS_UNITS)) * 120
    budget[0] -= _PACKET_COST * len(lacing)
    samples = 0
    for length in lacing:
        if starts:
            samples += _opus_packet(data, body, length)
        starts = length < 255
        body += length
    return samples


def _ogg(data: bytes, floor_bytes_per_second: int, budget: list[int]) -> float:
    """Its streams' packets, or the granule positions claimed if more; `MAX_SECONDS` past the
    budget (a page beyond could begin a stream of any rate)."""
    # Per logical stream (serial): its codec's (rate, most samples a packet) from its first
    # page, the samples its packets play, the largest granule position claimed.
    codecs: dict[int, tuple[int, int] | None] = {}
    played: dict[int, float] = {}
    granule: dict[int, int] = {}
    unknown = 0  # bytes of pages of another codec
    at = data.find(b"OggS")
    while at >= 0 and at + 27 <= len(data):
        budget[0] -= _PAGE_COST
        if budget[0] < 0:
            return MAX_SECONDS
        page, segments = at, data[at + 26]
        if data[at + 4] == 0 and at + 27 + segments <= len(data):
            flags = data[at + 5]
            position, serial = struct.unpack_from("<qI", data, at + 6)
            lacing = data[at + 27 : at + 27 + segments]
            body = at + 27 + segments
            if flags & 2 or serial not in codecs:
                codecs[serial] = _ogg_codec(data, body, lacing)
            codec = codecs[serial]
            if codec is None:
                unknown += 27 + segments + sum(lacing)
            else:
                rate, most = codec
                starts = not flags & 1  # a page's first bytes may end the last page's packet
                if most:
                    # Each packet begins at the page's start or after a segment below 255.
                    begun = max(0, segments - lacing[:-1].count(255) - (0 if starts else 1))
                    samples = begun * most
                else:
                    samples = _opus_page(data, body, lacing, starts, budget)
                played[serial] = played.get(serial, 0) + samples / rate
                if position > granule.get(serial, -1):
                    granule[serial] = position
        at = data.find(b"OggS", page + 4)
    claims = [
        granule[serial] / codec[0]
        for serial, codec in codecs.items()
        if codec is not None and serial in granule
    ]
    return max(max(claims, default=0), sum(played.values()) + unknown / floor_bytes_per_second)


def _ogg_codec(data: bytes, body: int, lacing: bytes) -> tuple[int, int] | None:
    """(sample rate, most samples a packet plays, 0: read each Opus packet's TOC) of the stream
    whose first packet begins at `body`; None for a codec not read here."""
    first = data[body : body + (lacing[0] if lacing else 0)]
    if first.startswith(b"OpusHead"):
        return 48000, 0
    if first.startswith(b"\x01vorbis") and len(first) >= 29:
        rate = struct.unpack_from("<I", first, 12)[0]
        # A packet plays at most half the long block (blocksize_1, the high 4 bits).
        return (rate, (1 << (first[28] >> 4)) // 2) if rate else None
    return None


# -- MP4 ------------------------------------------------------------------------------------------

_MP4_TRACK_BOXES = (b"mdia", b"minf", b"stbl")
_MAX_BOXES = 4096
# MPEG-4 audio sample rates by their index in an AudioSpecificConfig.
_AAC_RATES = (
    96000,
    88200,
    64000,
    48000,
    44100,
    32000,
    24000,
    22050,
    16000,
    12000,
    11025,
    8000,
    7350,
)
# (ADTS headers' too: found once the rates are known.)
_ADTS_FRAME, _ADTS_SECONDS = _adts_frames()


def _mp4(data: bytes, floor: float) -> float:
    """Each sound track's samples (the sample size table's count), each the most an AAC frame
    (1,024 samples at its AudioSpecificConfig's rate) or an Opus packet (120 ms) plays, or
    what its time-to-sample table, `mdhd` or `mvhd` claims, if more. A fragmented file (its
    samples in `moof` boxes) or a sound track of another codec: the bytes at the floor."""
    budget = [_MAX_BOXES]
    claim, played, known = 0.0, 0.0, True
    for kind, body, end in _mp4_boxes(data, 0, len(data), budget):
        if kind == b"moof":
            known = False
        elif kind == b"moov":
            for inner, at, stop in _mp4_boxes(data, body, end, budget):
                if inner == b"mvhd":
                    claim = max(claim, _mp4_duration(data, at)[0])
                elif inner == b"trak":
                    sound, seconds = _mp4_track(data, at, stop, budget)
                    if sound and seconds is None:
                        known = False
                    played += seconds or 0.0
    if not budget[0]:
        known = False
    return max(claim, played if known else max(played, floor))


def _mp4_boxes(
    data: bytes, at: int, end: int, budget: list[int]
) -> Iterator[tuple[bytes, int, int]]:
    """(type, body, end) of each box in `data[at:end]`, while `budget` (boxes) lasts."""
    while at + 8 <= end and budget[0] > 0:
        budget[0] -= 1
        size, kind = struct.unpack_from(">I4s", data, at)
        header = 8
        if size == 1:
            if at + 16 > end:
                return
            size, header = struct.unpack_from(">Q", data, at + 8)[0], 16
        elif size == 0:
            size = end - at
        if size < header:
            return
        yield kind, at + header, min(end, at + size)
        at += size


def _mp4_duration(data: bytes, body: int) -> tuple[float, int]:
    """(seconds, timescale) an `mvhd` or `mdhd` box at `body` says."""
    if body + 32 > len(data):
        return 0.0, 0
    if data[body] == 1:
        scale, duration = struct.unpack_from(">IQ", data, body + 20)
        unknown = (1 << 64) - 1
    else:
        scale, duration = struct.unpack_from(">II", data, body + 12)
        unknown = (1 << 32) - 1
    if not scale or duration == unknown:
        return 0.0, scale
    return duration / scale, scale


def _mp4_track(data: bytes, body: int, end: int, budget: list[int]) -> tuple[bool, float | None]:
    """(whether it is a sound track, the most it plays or None for a codec not read here)."""
    boxes: dict[bytes, tuple[int, int]] = {}
    stack = [(body, end)]
    while stack:
        at, stop = stack.pop()
        for kind, inner, inner_end in _mp4_boxes(data, at, stop, budget):
            if kind in _MP4_TRACK_BOXES:
                stack.append((inner, inner_end))
            else:
                boxes.setdefault(kind, (inner, inner_end))
    handler = boxes.get(b"hdlr")
    if handler is None or data[handler[0] + 8 : handler[0] + 12] != b"soun":
        return False, None
    claim, scale = _mp4_duration(data, boxes[b"mdhd"][0]) if b"mdhd" in boxes else (0.0, 0)
    frame = _mp4_frame_seconds(data, boxes.get(b"stsd"))
    sizes, times = boxes.get(b"stsz"), boxes.get(b"stts")
    if frame is None or sizes is None or sizes[0] + 12 > sizes[1]:
        return True, None
    samples = struct.unpack_from(">I", data, sizes[0] + 8)[0]
    ticks = 0
    if times is not None and scale:
        entries = min(struct.unpack_from(">I", data, times[0] + 4)[0], MOST_FRAMES)
        entries = min(entries, (times[1] - times[0] - 8) // 8)
        pairs = struct.iter_unpack(">II", data[times[0] + 8 : times[0] + 8 + entries * 8])
        ticks = sum(count * delta for count, delta in pairs)
    return True, max(claim, ticks / scale if scale else 0.0, samples * frame)


def _mp4_frame_seconds(data: bytes, stsd: tuple[int, int] | None) -> float | None:
    """The most one sample of the track's first sample entry plays: an AAC frame (1,024
    samples, fewer in the low-delay forms, at the core rate its AudioSpecificConfig gives,
    which a decoder uses, whatever the entry says) or an Opus packet; None for another codec."""
    if stsd is None or stsd[0] + 16 > stsd[1]:
        return None
    entry = stsd[0] + 8
    size, kind = struct.unpack_from(">I4s", data, entry)
    if kind == b"Opus":
        return _OPUS_MOST / 48000
    found = data.find(b"esds", entry, min(stsd[1], entry + size))
    if kind != b"mp4a" or found < 0:
        return None
    descriptor = _mp4_descriptor(data, found + 8, stsd[1], 3)  # ES_Descriptor
    if descriptor is None or descriptor[0] + 3 > descriptor[1]:
        return None
    at, stop = descriptor
    flags = data[at + 2]
    at += 3 + (2 if flags & 0x80 else 0) + (2 if flags & 0x20 else 0)
    if flags & 0x40 and at < stop:
        at += 1 + data[at]  # a URL
    config = _mp4_descriptor(data, at, stop, 4)  # DecoderConfigDescriptor
    if config is None or config[0] + 13 > config[1] or data[config[0]] != 0x40:
        return None  # not MPEG-4 audio
    specific = _mp4_descriptor(data, config[0] + 13, config[1], 5)
    if specific is None or specific[0] + 5 > specific[1]:
        return None
    bits = int.from_bytes(data[specific[0] : specific[0] + 5], "big")  # 40 bits
    kind_bits, rest = bits >> 35, 35
    if kind_bits == 31:
        kind_bits, rest = 32 + (bits >> 29 & 0x3F), 29
    index = bits >> (rest - 4) & 0xF
    rate = (
        (bits >> (rest - 28) & 0xFFFFFF) if index == 15 else _AAC_RATES[index] if index < 13 else 0
    )
    if kind_bits == 42 or not rate:  # USAC's frames are longer
        return None
    return 1024 / rate


def _mp4_descriptor(data: bytes, at: int, end: int, tag: int) -> tuple[int, int] | None:
    """(body, end) of the MPEG-4 descriptor at `at` if it has `tag`."""
    if at >= end or data[at] != tag:
        return None
    size, at = 0, at + 1
    for _ in range(4):
        if at >= end:
            return None
        byte, at = data[at], at + 1
        size = size << 7 | byte & 0x7F
        if not byte & 0x80:
            break
    return at, min(end, at + size)


# -- Matroska and WebM ----------------------------------------------------------------------------

# Elements read into: the segment, its info and tracks, each track's entry and audio settings,
# and the clusters with their block groups.
_MASTERS = {0x18538067, 0x1549A966, 0x1654AE6B, 0xAE, 0xE1, 0x1F43B675, 0xA0}
_TRACK_ENTRY, _TRACK_NUMBER, _CODEC_ID, _FREQUENCY = 0xAE, 0xD7, 0x86, 0xB5
_SIMPLE_BLOCK, _BLOCK = 0xA3, 0xA1
_CLUSTER_ID = b"\x1f\x43\xb6\x75"
_TIMECODE_SCALE, _DURATION, _CLUSTER_TIME = 0x2AD7B1, 0x4489, 0xE7
# The most a Vorbis packet plays: half the largest block a stream may use (8,192 samples).
_VORBIS_MOST = 4096


def _vint(data: bytes, at: int, *, keep_marker: bool) -> tuple[int, int] | None:
    """An EBML variable-length integer at `at`: (value, its length); None if malformed. An ID
    keeps its length marker; a size of all ones (unknown) is returned as -1."""
    if at >= len(data) or not data[at]:
        return None
    length = 9 - data[at].bit_length()
    if at + length > len(data):
        return None
    value = int.from_bytes(data[at : at + length], "big")
    if keep_marker:
        return value, length
    value &= (1 << 7 * length) - 1
    return (-1 if value == (1 << 7 * length) - 1 else value), length


def _matroska(data: bytes, floor_bytes_per_second: int, budget: list[int]) -> float:
    """Each block of an Opus track what its packet's TOC says (a laced block 120 ms a frame),
    of a Vorbis track half the largest block; or the segment's `Duration`, or its last block's
    time, if more. A block of another codec's audio track (or of none declared), and whatever
    follows an element that cannot be read, count as their bytes at the floor; `MAX_SECONDS`
    past the budget."""
    tracks: dict[int, tuple[str, float]] = {}  # number -> (codec, sample rate)
    entry: dict[int, object] = {}
    played, unread = 0.0, 0
    opus = 0  # 48 kHz samples of the unlaced Opus blocks read inline
    scale, duration, cluster, last = 1_000_000, 0.0, 0, 0
    at = 0
    length = len(data)
    spent, most = 0, budget[0]
    while at < length:
        if spent > most:
            # Past the budget: what follows could declare a track of any rate (or be blocks
            # of 120 ms in 7 bytes), no longer read.
            return MAX_SECONDS
        first = data[at]
        # The usual element: a SimpleBlock of one unlaced Opus packet under 127 bytes, of one
        # of the first 127 tracks, read inline (as `_matroska_block` would).
        if first == _SIMPLE_BLOCK and not entry and at + 6 < length:
            size_byte, number = data[at + 1], data[at + 2]
            end = at + 2 + (size_byte & 0x7F)
            if size_byte & 0x80 and size_byte != 0xFF and number & 0x80 and at + 6 < end <= length:
                known = tracks.get(number & 0x7F)
                if known is not None and known[0] == "A_OPUS" and not data[at + 5] & 6:
                    time = data[at + 3] << 8 | data[at + 4]
                    time = cluster + time - ((time & 0x8000) << 1)  # signed
                    if time > last:
                        last = time
                    units = _OPUS_UNITS[data[at + 6]]
                    opus += units * 120 if units else _opus_packet(data, at + 6, end - at - 6)
                    spent += _BLOCK_COST
                    at = end
                    continue
        spent += _ELEMENT_COST
        # A one-byte ID and a one-byte size (every block of a small frame) read inline.
        element: tuple[int, int] | None
        size: tuple[int, int] | None
        if first & 0x80 and at + 1 < length and data[at + 1] & 0x80 and data[at + 1] != 0xFF:
            element, size = (first, 1), (data[at + 1] & 0x7F, 1)
        else:
            element = _vint(data, at, keep_marker=True)
            size = element and _vint(data, at + element[1], keep_marker=False)
        if not element or not size:
            # A reader resyncs at the next cluster: what lies before it, at the floor.
            found = data.find(_CLUSTER_ID, at + 1)
            unread += (found if found >= 0 else length) - at
            if found < 0:
                break
            at = found
            continue
        kind, body = element[0], at + element[1] + size[1]
        if entry and kind in (_TRACK_ENTRY, _SIMPLE_BLOCK, _BLOCK):
            _matroska_track(entry, tracks)
            entry = {}
        if kind in _MASTERS:
            at = body
            continue
        if size[0] < 0 or body + size[0] > length:
            found = data.find(_CLUSTER_ID, at + 1)
            unread += (found if found >= 0 else length) - at
            if found < 0:
                break
            at = found
            continue
        end = body + size[0]
        if kind in (_TRACK_NUMBER, _CODEC_ID, _FREQUENCY):
            entry[kind] = data[body:end]
        elif kind == _TIMECODE_SCALE and size[0] <= 8:
            scale = int.from_bytes(data[body:end], "big")
        elif kind == _DURATION and size[0] in (4, 8):
            duration = struct.unpack_from(">f" if size[0] == 4 else ">d", data, body)[0]
        elif kind == _CLUSTER_TIME and size[0] <= 8:
            cluster = int.from_bytes(data[body:end], "big")
        elif kind in (_SIMPLE_BLOCK, _BLOCK):
            track = _vint(data, body, keep_marker=False)
            known = tracks.get(track[0]) if track else None
            header = body + (track[1] if track else 0) + 3
            if known is None or header >= end:
                unread += end - at
            else:
                last = max(last, cluster + struct.unpack_from(">h", data, header - 3)[0])
                played += _matroska_block(data, header, end, *known)
        at = end
    budget[0] -= spent
    played += opus / 48000
    _matroska_track(entry, tracks)
    claims = [duration * scale / 1e9, last * scale / 1e9]
    claim = max((c for c in claims if math.isfinite(c)), default=0.0)
    return max(claim, played + unread / floor_bytes_per_second)


def _matroska_track(entry: dict[int, object], tracks: dict[int, tuple[str, float]]) -> None:
    """Record a track entry read so far, if it declares Opus or Vorbis audio."""
    number, codec = entry.get(_TRACK_NUMBER), entry.get(_CODEC_ID)
    if not isinstance(number, bytes) or not isinstance(codec, bytes):
        return
    frequency = entry.get(_FREQUENCY)
    rate = 8000.0
    if isinstance(frequency, bytes) and len(frequency) in (4, 8):
        rate = struct.unpack(">f" if len(frequency) == 4 else ">d", frequency)[0]
    name = codec.rstrip(b"\x00").decode("latin-1")
    if name in ("A_OPUS", "A_VORBIS") and math.isfinite(rate) and rate >= 1:
        tracks[int.from_bytes(number, "big")] = name, rate


def _matroska_most(codec: str, rate: float) -> float:
    """The most one frame of a track plays, in seconds."""
    return _VORBIS_MOST / min(rate, 48000.0) if codec == "A_VORBIS" else _OPUS_MOST / 48000


def _matroska_block(data: bytes, at: int, end: int, codec: str, rate: float) -> float:
    """Seconds a block's frames (from `at`, after its flags) play at most."""
    lacing = data[at - 1] >> 1 & 3
    if codec == "A_VORBIS" or lacing:
        return (data[at] + 1 if lacing else 1) * _matroska_most(codec, rate)
    return _opus_packet(data, at, end - at) / 48000
