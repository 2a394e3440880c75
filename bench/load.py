"""Load generators: wrk with `chat.lua` (installed with apt-get when missing and allowed), a
bounded aiohttp generator when wrk is not there, and the soak benchmark's phases (a fixed count
of requests; rounds of long streams held open at once)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp

from bench.measurement import LoadResult, load_from_latencies, parse_wrk
from bench.processes import SetupError

LUA_SCRIPT = Path(__file__).resolve().parent / "chat.lua"
PYTHON_LOADGEN = "python aiohttp load generator (less precise: shares the CPUs with the servers)"


def ensure_wrk(allow_install: bool) -> str | None:
    found = shutil.which("wrk")
    if found or not allow_install:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        print("wrk is missing and cannot be installed here: using the Python load generator")
        return None
    print("wrk is missing: apt-get install wrk ...", flush=True)
    apt_env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "wrk"]):
        try:
            subprocess.run(argv, env=apt_env, check=True, timeout=300, capture_output=True)
        except (subprocess.SubprocessError, OSError) as exc:
            print(f"apt-get failed ({exc}): using the Python load generator")
            return None
    return shutil.which("wrk")


def add_loadgen_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--loadgen",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="auto: wrk (apt-get install when missing), else the Python generator",
    )


def chosen_loadgen(choice: str) -> str | None:
    """wrk's path for --loadgen auto or wrk, None for the Python generator; SetupError when
    wrk was asked for and cannot be had."""
    if choice == "python":
        return None
    wrk = ensure_wrk(allow_install=True)
    if wrk is None and choice == "wrk":
        raise SetupError("wrk is not available")
    return wrk


def describe(wrk: str | None) -> str:
    if not wrk:
        return PYTHON_LOADGEN
    out = subprocess.run([wrk, "--version"], capture_output=True, text=True, timeout=10)
    return (out.stdout or out.stderr).splitlines()[0].split(" Copyright")[0]


def run_wrk(wrk: str, url: str, body: str, auth: str, connections: int, seconds: int) -> LoadResult:
    argv = [
        wrk,
        f"-t{min(2, connections)}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(LUA_SCRIPT),
        url,
    ]
    # chat.lua reads the body and the key from here, so this module stays the one place that
    # says what is sent.
    env = {**os.environ, "BENCH_BODY": body, "BENCH_AUTH": auth}
    try:
        done = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=seconds + 30, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise SetupError(f"wrk did not finish: {' '.join(argv)}") from exc
    if done.returncode != 0:
        raise SetupError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    try:
        return parse_wrk(done.stdout)
    except ValueError as exc:
        raise SetupError(str(exc)) from None


async def _timed_load(
    url: str, body: str, auth: str, connections: int, seconds: float, max_requests: int
) -> LoadResult:
    latencies: list[float] = []
    non_2xx = 0
    errors = {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    deadline = time.perf_counter() + seconds
    data = body.encode()
    headers = {"Content-Type": "application/json", "Authorization": auth}
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    timeout = aiohttp.ClientTimeout(total=10)

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            nonlocal non_2xx
            while time.perf_counter() < deadline and len(latencies) < max_requests:
                t0 = time.perf_counter()
                try:
                    async with session.post(url, data=data, headers=headers) as resp:
                        await resp.read()
                        if not 200 <= resp.status < 400:
                            non_2xx += 1
                except TimeoutError:
                    errors["timeout"] += 1
                    continue
                except aiohttp.ClientConnectorError:
                    errors["connect"] += 1
                    continue
                except (aiohttp.ClientError, OSError):
                    errors["read"] += 1
                    continue
                latencies.append(time.perf_counter() - t0)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - started

    if not latencies:
        raise SetupError(f"python load generator: no request to {url} completed")
    return load_from_latencies(latencies, elapsed, non_2xx, errors)


def run_python_load(url: str, body: str, auth: str, connections: int, seconds: int) -> LoadResult:
    import uvloop

    return uvloop.run(_timed_load(url, body, auth, connections, seconds, max_requests=500_000))


def run_load(
    wrk: str | None, url: str, body: str, auth: str, connections: int, seconds: int
) -> LoadResult:
    if wrk:
        return run_wrk(wrk, url, body, auth, connections, seconds)
    return run_python_load(url, body, auth, connections, seconds)


# -- soak -----------------------------------------------------------------------------------------


async def count_bounded(
    url: str, body: str, auth: str, total: int, concurrency: int, done: Callable[[], None]
) -> dict[int, int]:
    """`total` requests, `concurrency` at a time; answers by status (0: no answer). `done` is
    called after each one (the memory sampler counts them)."""
    statuses: dict[int, int] = {}
    issued = 0
    headers = {"authorization": auth, "content-type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal issued
            while issued < total:
                issued += 1
                try:
                    async with session.post(url, data=body, headers=headers) as answer:
                        await answer.read()
                        status = answer.status
                except aiohttp.ClientError:
                    status = 0
                statuses[status] = statuses.get(status, 0) + 1
                done()

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return statuses


async def streams_round(
    url: str,
    metrics: tuple[str, str],
    body: str,
    auth: str,
    streams: int,
    seconds: float,
    words: int,
) -> tuple[int, int, int]:
    """`streams` streaming chats at once, each `words` chunks paced by the simulator over about
    `seconds`; returns (complete, failed, most open at once by the gateway's own gauge, read
    from `metrics`: its URL and the Authorization header it needs)."""
    metrics_url, metrics_auth = metrics
    headers = {
        "authorization": auth,
        "content-type": "application/json",
        "x-sim-chunk-interval-ms": f"{seconds * 1000 / words:.0f}",
        "x-sim-answer": " ".join(["word"] * words),
    }
    streamed = json.dumps({**json.loads(body), "stream": True})
    complete = failed = 0
    peak_open = 0
    timeout = aiohttp.ClientTimeout(total=seconds * 4 + 60)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one() -> None:
            nonlocal complete, failed
            try:
                async with session.post(url, data=streamed, headers=headers) as answer:
                    text = (await answer.read()).decode()
                ok = answer.status == 200 and text.rstrip().endswith("data: [DONE]")
            except (TimeoutError, aiohttp.ClientError):
                ok = False
            complete += ok
            failed += not ok

        async def watch(tasks: list[asyncio.Task[None]]) -> None:
            nonlocal peak_open
            while not all(t.done() for t in tasks):
                try:
                    async with session.get(
                        metrics_url, headers={"authorization": metrics_auth}
                    ) as answer:
                        for line in (await answer.text()).splitlines():
                            if line.startswith("gateway_open_streams "):
                                peak_open = max(peak_open, int(float(line.split()[1])))
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(1)

        tasks = [asyncio.create_task(one()) for _ in range(streams)]
        await asyncio.gather(watch(tasks), *tasks)
    return complete, failed, peak_open
