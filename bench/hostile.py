"""Hostile clients on raw sockets, with valid ones beside them: connections that trickle a
request head, flood it with header bytes, stall a request body or send nothing, each held until
the server answers or closes it (or the client gives up), while valid clients call chat
completions with the openai SDK and the server's resident memory is sampled.

`attack` is the whole run; `tests/server/server/test_slow_clients.py` and `bench.slow_clients`
both use it."""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass, field

import openai

from bench.processes import rss_mb

CLOSED = 0  # closed by the server without an answer
STILL_OPEN = -1  # the client gave up first: the server still held the connection
KINDS = ("trickle", "flood", "stall", "silent")


@dataclass(frozen=True, slots=True)
class Mix:
    trickle: int = 200  # a head that keeps coming, a header line every `trickle_every_s`
    flood: int = 100  # one header value `flood_bytes` long, sent as fast as it is read
    stall: int = 100  # a chat request's head and the start of its body, then silence
    silent: int = 100  # connects, sends nothing
    flood_bytes: int = 1 << 20
    trickle_every_s: float = 0.2
    valid_callers: int = 4
    give_up_s: float = 60.0


@dataclass(slots=True)
class Outcome:
    # kind -> how many got each status (CLOSED, STILL_OPEN or the HTTP status answered)
    answers: dict[str, collections.Counter[int]] = field(default_factory=dict)
    valid_ok: int = 0
    valid_failed: list[str] = field(default_factory=list)
    rss_before_mb: float = 0.0
    rss_peak_mb: float = 0.0
    rss_after_mb: float = 0.0


async def attack(host: str, port: int, key: str, mix: Mix, pid: int) -> Outcome:
    """Every hostile connection of `mix` at once and the valid callers until the last hostile
    connection ends; `pid` is the server process whose memory is sampled."""
    outcome = Outcome()
    client = openai.AsyncOpenAI(base_url=f"http://{host}:{port}/v1", api_key=key, max_retries=0)
    async with client:
        for _ in range(20):  # warm: what every request allocates once is not the attack's
            await _call(client, outcome)
        outcome.valid_ok = 0
        outcome.rss_before_mb = outcome.rss_peak_mb = rss_mb(pid)
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + mix.give_up_s
        head = b"GET /healthz HTTP/1.1\r\nHost: gw\r\n"
        body_head = (
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {key}\r\n"
            "Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n"
        ).encode() + b'{"model": "gpt-4o", "messages": ['
        plans = {
            "trickle": (head, b"X-Drip: 1\r\n", mix.trickle_every_s, 1 << 30),
            "flood": (head + b"X-Flood: ", b"a" * 65536, 0.0, mix.flood_bytes),
            "stall": (body_head, b"", 0.0, 0),
            "silent": (b"", b"", 0.0, 0),
        }
        tasks = {
            kind: [
                asyncio.ensure_future(_hold(host, port, *plans[kind], give_up_at))
                for _ in range(getattr(mix, kind))
            ]
            for kind in KINDS
        }
        hostile = [task for group in tasks.values() for task in group]
        done = asyncio.ensure_future(asyncio.gather(*hostile))
        sampler = asyncio.ensure_future(_sample(pid, outcome, done))
        callers = [
            asyncio.ensure_future(_call_until(client, outcome, done))
            for _ in range(mix.valid_callers)
        ]
        await asyncio.gather(done, sampler, *callers)
        for kind, group in tasks.items():
            outcome.answers[kind] = collections.Counter(task.result() for task in group)
        outcome.rss_after_mb = rss_mb(pid)
    return outcome


async def _hold(
    host: str,
    port: int,
    opening: bytes,
    drip: bytes,
    every_s: float,
    drip_limit: int,
    give_up_at: float,
) -> int:
    """One connection: `opening`, then `drip` (every `every_s`, up to `drip_limit` bytes) until
    the server answers or closes; the status it answered."""
    loop = asyncio.get_running_loop()
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        return CLOSED
    answer = asyncio.ensure_future(_read_all(reader))
    try:
        writer.write(opening)
        sent = 0
        while drip and sent < drip_limit and not answer.done() and loop.time() < give_up_at:
            writer.write(drip)
            sent += len(drip)
            await asyncio.wait_for(writer.drain(), max(0.0, give_up_at - loop.time()))
            if every_s:
                await asyncio.wait([answer], timeout=every_s)
        raw = await asyncio.wait_for(asyncio.shield(answer), max(0.0, give_up_at - loop.time()))
    except (ConnectionError, TimeoutError):
        if not answer.done():
            answer.cancel()
            return STILL_OPEN if loop.time() >= give_up_at else CLOSED
        raw = answer.result()
    finally:
        writer.close()
    return int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/") else CLOSED


async def _read_all(reader: asyncio.StreamReader) -> bytes:
    chunks = []
    try:
        while chunk := await reader.read(65536):
            chunks.append(chunk)
    except ConnectionError:
        pass  # a reset after the answer: what came before it counts
    return b"".join(chunks)


async def _sample(pid: int, outcome: Outcome, done: asyncio.Future[list[int]]) -> None:
    while not done.done():
        outcome.rss_peak_mb = max(outcome.rss_peak_mb, rss_mb(pid))
        await asyncio.sleep(0.05)


async def _call(client: openai.AsyncOpenAI, outcome: Outcome) -> None:
    try:
        answer = await client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "Still there?"}]
        )
    except openai.APIError as exc:
        outcome.valid_failed.append(repr(exc))
    else:
        outcome.valid_ok += bool(answer.choices[0].message.content)


async def _call_until(
    client: openai.AsyncOpenAI, outcome: Outcome, done: asyncio.Future[list[int]]
) -> None:
    while not done.done():
        await _call(client, outcome)
