"""Transcriptions held at the longest their audio can play, on a real redis-server: upstream
bills the audio's real length, whatever the gateway's config says, so a team whose budget is
less than that is refused before anything reaches upstream, never charged past its budget.

The files are real: WAV files of 8 kHz, 16-bit mono (16 kB a second), and the MP3 and Ogg
files of tests/data/audio, which the simulated upstream bills the length they play."""

from __future__ import annotations

import dataclasses
import io
import threading
import time
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest
import redis

from gateway.config import Config
from gateway.endpoints import governed
from tests.conftest import SIM_KEY, GatewayFactory, ServerThread, base_config
from tests.redis.admission.test_end_to_end import spend
from tests.redis.endpoints.teams import billed, sdk, serve_teams


def wav(seconds: float) -> bytes:
    """A silent WAV file of `seconds`, 8 kHz 16-bit mono: 16,000 bytes a second."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x00" * int(seconds * 8000))
    return out.getvalue()


def config_of(simulator: ServerThread, max_audio_minutes: int) -> Config:
    config = base_config(OPENAI_BASE_URL=f"{simulator.url}/v1", OPENAI_API_KEY=SIM_KEY)
    models = {
        name: dataclasses.replace(model, max_audio_minutes=max_audio_minutes)
        if name in ("whisper-1", "gpt-4o-mini-transcribe")
        else model
        for name, model in config.models.items()
    }
    return dataclasses.replace(config, models=models)


# (model, budget, seconds): a file upstream bills more for than the budget, whose first
# `max_audio_minutes` (1 here) the budget covers. whisper-1 bills 124.9 s (12,490 µ$ at
# $0.006 a minute); gpt-4o-mini-transcribe 313 s of 16 audio tokens at $3/1M (15,024 µ$), its
# hold 1,000 audio tokens and 2,000 transcript tokens at $5/1M (13,000 µ$).
CASES = [("whisper-1", "0.010", 124.9), ("gpt-4o-mini-transcribe", "0.014", 312.4)]


def test_a_translation_longer_than_max_audio_minutes_never_takes_a_team_past_its_budget(
    start_gateway: GatewayFactory,
    simulator: ServerThread,
    redis_server: str,
    store: redis.Redis,
    tmp_path: Path,
) -> None:
    teams = {"short": {"tier": "tier-5", "budget_usd": "0.010"}}
    gateway = serve_teams(
        start_gateway, redis_server, tmp_path, teams, config=config_of(simulator, 1)
    )
    with pytest.raises(openai.RateLimitError) as refused:
        sdk(gateway, "short").audio.translations.create(
            model="whisper-1", file=("long.wav", wav(124.9))
        )
    assert refused.value.code == "request_over_budget"
    assert spend(store, "short") == (0, 0)


@pytest.mark.parametrize(("model", "budget", "seconds"), CASES)
def test_a_file_longer_than_max_audio_minutes_never_takes_a_team_past_its_budget(
    start_gateway: GatewayFactory,
    simulator: ServerThread,
    redis_server: str,
    store: redis.Redis,
    tmp_path: Path,
    model: str,
    budget: str,
    seconds: float,
) -> None:
    teams = {"short": {"tier": "tier-5", "budget_usd": budget}}
    gateway = serve_teams(
        start_gateway, redis_server, tmp_path, teams, config=config_of(simulator, 1)
    )
    limit = int(float(budget) * 1_000_000)
    refused = None
    try:
        sdk(gateway, "short").audio.transcriptions.create(
            model=model, file=("long.wav", wav(seconds))
        )
    except openai.RateLimitError as exc:
        refused = exc.code
    assert spend(store, "short")[0] <= limit
    assert refused == "request_over_budget"  # the file's length held, before upstream
    assert spend(store, "short") == (0, 0)


@pytest.mark.parametrize(("model", "budget", "seconds"), CASES)
def test_a_long_file_is_charged_what_upstream_bills(
    start_gateway: GatewayFactory,
    simulator: ServerThread,
    redis_server: str,
    store: redis.Redis,
    tmp_path: Path,
    model: str,
    budget: str,
    seconds: float,
) -> None:
    teams = {"payer": {"tier": "tier-5"}}
    gateway = serve_teams(start_gateway, redis_server, tmp_path, teams)
    before = billed(simulator)
    sdk(gateway, "payer").audio.transcriptions.create(model=model, file=("long.wav", wav(seconds)))
    assert spend(store, "payer")[0] == billed(simulator) - before > int(float(budget) * 1e6)


@pytest.mark.parametrize("response_format", ["json", "srt"])
def test_a_compressed_file_is_charged_the_length_it_plays_not_its_size(
    start_gateway: GatewayFactory,
    simulator: ServerThread,
    redis_server: str,
    store: redis.Redis,
    tmp_path: Path,
    response_format: str,
) -> None:
    """5.08 s of MP3 in 20.5 kB: upstream bills 6 s (600 µ$ at $0.006 a minute), reported in
    `usage` (json) or as verbose_json's `duration` (srt is asked upstream as verbose_json)."""
    audio = (Path(__file__).parents[2] / "data" / "audio" / "cbr.mp3").read_bytes()
    gateway = serve_teams(start_gateway, redis_server, tmp_path, {"payer": {"tier": "tier-5"}})
    before = billed(simulator)
    sdk(gateway, "payer").audio.transcriptions.create(
        model="whisper-1", file=("a.mp3", audio), response_format=response_format
    )
    assert spend(store, "payer")[0] == billed(simulator) - before == 600


def test_an_upload_cut_short_is_served_and_charged_never_a_500(
    start_gateway: GatewayFactory,
    simulator: ServerThread,
    redis_server: str,
    store: redis.Redis,
    tmp_path: Path,
) -> None:
    """An Ogg file cut inside a page (its lacing says more bytes than are left) is read for its
    length like any other: served, and charged what upstream bills."""
    audio = (Path(__file__).parents[2] / "data" / "audio" / "opus.ogg").read_bytes()
    last = audio.rfind(b"OggS")
    cut = audio[: last + 27 + audio[last + 26]]
    gateway = serve_teams(start_gateway, redis_server, tmp_path, {"payer": {"tier": "tier-5"}})
    before = billed(simulator)
    answer = sdk(gateway, "payer").audio.transcriptions.create(
        model="whisper-1", file=("cut.ogg", cut)
    )
    assert answer.text
    assert spend(store, "payer")[0] == billed(simulator) - before > 0


def test_uploads_are_read_for_their_length_one_at_a_time(
    start_gateway: GatewayFactory,
    redis_server: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The length reader is Python holding the GIL, for seconds on a hostile file: uploads
    arriving together are read one after the other, so the event loop (every other team's
    requests) shares the CPU with one reader at most, never with a thread pool of them."""
    reading, most = 0, 0
    lock = threading.Lock()
    read = governed.longest_audio

    def watched(files: list[bytes], min_bitrate: int) -> int:
        nonlocal reading, most
        with lock:
            reading += 1
            most = max(most, reading)
        time.sleep(0.2)
        with lock:
            reading -= 1
        return read(files, min_bitrate)

    monkeypatch.setattr(governed, "longest_audio", watched)
    gateway = serve_teams(start_gateway, redis_server, tmp_path, {"payer": {"tier": "tier-5"}})

    def transcribe(_: int) -> str:
        client = sdk(gateway, "payer")
        return client.audio.transcriptions.create(model="whisper-1", file=("a.wav", wav(2))).text

    with ThreadPoolExecutor(4) as pool:
        texts = list(pool.map(transcribe, range(4)))
    assert all(texts) and most == 1
