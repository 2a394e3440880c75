"""Soak benchmark (issue 7): the gateway's memory stays flat over 100,000+ requests and over
rounds of 1,000 concurrent streams.

Run from the repository root (not a pytest test, never collected):

    .venv/bin/python tests/benchmarks/bench_soak.py            # full run (see README.md)
    .venv/bin/python tests/benchmarks/bench_soak.py --quick    # ~1 minute, smaller numbers

It starts a real redis-server, `python -m gateway simulate` (the upstream) and `python -m gateway
serve` (one worker, full pipeline: auth with a gateway key of team `soak` whose limits and budget
are lifted, admission on the redis-server, metrics, the JSON access log to a file), samples the
gateway's resident memory (VmRSS of the process and its children, /proc) every second, and:

1. sends N non-streamed chat requests (an aiohttp generator, bounded by count), then prints RSS
   after the warm-up (the first 10%, at most 10,000 requests) and at 25/50/75/100% of N, and the
   least-squares slope of RSS against requests after the warm-up, in MB per 10,000 requests;
2. holds S streams open at once (each ~`--stream-seconds` long, paced by
   `x-sim-chunk-interval-ms`), twice, and prints RSS before, at the peak and after each round.

Verdict: flat when the slope is < 1 MB per 10k requests and the RSS after the second stream
round is within 5 MB of the RSS after the first. Exit status: 0 flat, 1 not flat or errors,
2 setup failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_proxy import write_teams_file

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
SIM_KEY = "sk-simulated-upstream"
# Not a secret: it only opens this benchmark's own gateway on loopback.
GATEWAY_KEY = "sk-gw-soak-0123456789abcdefghijklmnopqrstuvwx"
BODY = json.dumps(
    {"model": "gpt-4o", "messages": [{"role": "user", "content": "Write a two-line poem."}]}
)
STREAM_WORDS = 60  # the streamed answer: one chunk per word (and a few more)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 1 << 16
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))  # children inherit it


def env_for(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("O1GW", "OPENAI_")) and k != "REDIS_URL"
    }
    env |= {"PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **extra}
    return env


def write_teams(tmp: Path) -> Path:
    return write_teams_file(tmp, name="soak", key=GATEWAY_KEY)


class Child:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], logdir: Path) -> None:
        self.name = name
        self.log = logdir / f"{name}.log"
        self.proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=self.log.open("wb"),
            start_new_session=True,
        )  # fmt: skip

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def wait_http(url: str, child: Child, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if child.proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"setup: {child.name} did not start (see {child.log})")
        time.sleep(0.1)


def wait_port(port: int, child: Child) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection((HOST, port), timeout=0.2).close()
            return
        except OSError:
            if child.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"setup: {child.name} did not start") from None
            time.sleep(0.05)


# -- memory ------------------------------------------------------------------------------------------


def tree(pid: int) -> list[int]:
    pids = [pid]
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            children = Path(f"/proc/{pid}/task/{tid}/children").read_text().split()
        except OSError:
            continue
        for child in children:
            pids += tree(int(child))
    return pids


def rss_mb(pid: int) -> float:
    total = 0
    for p in tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


class Sampler(threading.Thread):
    """RSS of the gateway every `period` seconds, with the request count at that moment."""

    def __init__(self, pid: int, period: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.pid, self.period = pid, period
        self.count = 0  # updated by the load generator
        self.samples: list[tuple[float, int, float]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            self.samples.append((time.monotonic(), self.count, rss_mb(self.pid)))
            self.stopped.wait(self.period)

    def peak_since(self, since: float) -> float:
        return max((r for t, _, r in self.samples if t >= since), default=0.0)


# -- load --------------------------------------------------------------------------------------------


async def requests_phase(
    url: str, total: int, concurrency: int, sampler: Sampler
) -> dict[int, int]:
    statuses: dict[int, int] = {}
    issued = 0
    headers = {"authorization": f"Bearer {GATEWAY_KEY}", "content-type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal issued
            while issued < total:
                issued += 1
                try:
                    async with session.post(url, data=BODY, headers=headers) as answer:
                        await answer.read()
                        status = answer.status
                except aiohttp.ClientError:
                    status = 0
                statuses[status] = statuses.get(status, 0) + 1
                sampler.count += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return statuses


async def streams_round(
    url: str, metrics_url: str, streams: int, seconds: float
) -> tuple[int, int, int]:
    """`streams` streaming chats at once; returns (complete, failed, most open at once)."""
    interval = seconds * 1000 / STREAM_WORDS
    answer_text = " ".join(["word"] * STREAM_WORDS)
    headers = {
        "authorization": f"Bearer {GATEWAY_KEY}", "content-type": "application/json",
        "x-sim-chunk-interval-ms": f"{interval:.0f}", "x-sim-answer": answer_text,
    }  # fmt: skip
    body = json.dumps({**json.loads(BODY), "stream": True})
    complete = failed = 0
    peak_open = 0
    timeout = aiohttp.ClientTimeout(total=seconds * 4 + 60)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one() -> None:
            nonlocal complete, failed
            try:
                async with session.post(url, data=body, headers=headers) as answer:
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
                    async with session.get(metrics_url) as answer:
                        for line in (await answer.text()).splitlines():
                            if line.startswith("gateway_open_streams "):
                                peak_open = max(peak_open, int(float(line.split()[1])))
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(1)

        tasks = [asyncio.create_task(one()) for _ in range(streams)]
        await asyncio.gather(watch(tasks), *tasks)
    return complete, failed, peak_open


def slope_per_10k(points: list[tuple[int, float]]) -> float:
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    sxy = sum((x - mx) * (y - my) for x, y in points)
    return sxy / sxx * 10_000 if sxx else 0.0


def rss_at(samples: list[tuple[float, int, float]], count: int) -> float:
    """RSS of the first sample taken once `count` requests had completed."""
    for _, done, rss in samples:
        if done >= count:
            return rss
    return samples[-1][2]


# -- main --------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="~1 minute: fewer requests/streams")
    parser.add_argument("--requests", type=int, help="non-streamed requests (default 100000)")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--streams", type=int, help="concurrent streams per round (default 1000)")
    parser.add_argument("--stream-seconds", type=float, help="length of each stream (default 12)")
    args = parser.parse_args()
    total = args.requests or (20_000 if args.quick else 100_000)
    streams = args.streams or (300 if args.quick else 1000)
    seconds = args.stream_seconds or (5.0 if args.quick else 12.0)
    warmup = min(10_000, total // 10)
    redis_binary = shutil.which("redis-server")
    if redis_binary is None:
        print("setup: redis-server is not installed (apt-get install redis-server)")
        return 2
    raise_nofile()
    began = time.monotonic()
    children: list[Child] = []
    with tempfile.TemporaryDirectory(prefix="o1gw-soak-") as tmp_name:
        tmp = Path(tmp_name)
        try:
            redis_port, sim_port, gw_port = free_port(), free_port(), free_port()
            redis = Child("redis", [
                redis_binary, "--port", str(redis_port), "--bind", HOST, "--save", "",
                "--appendonly", "no", "--dir", str(tmp),
            ], env_for(), tmp)  # fmt: skip
            children.append(redis)
            wait_port(redis_port, redis)
            sim_argv = [sys.executable, "-m", "gateway", "simulate", "--host", HOST]
            sim = Child(
                "simulator", [*sim_argv, "--port", str(sim_port), "--log-level", "warning"],
                env_for(), tmp,
            )  # fmt: skip
            children.append(sim)
            wait_port(sim_port, sim)
            gw_argv = [sys.executable, "-m", "gateway", "serve", "--host", HOST]
            gateway = Child(
                "gateway", [*gw_argv, "--port", str(gw_port), "--workers", "1"],
                env_for(
                    OPENAI_BASE_URL=f"http://{HOST}:{sim_port}/v1", OPENAI_API_KEY=SIM_KEY,
                    REDIS_URL=f"redis://{HOST}:{redis_port}/0",
                    O1GW__ADMISSION__TEAMS_FILE=str(write_teams(tmp)),
                    O1GW__UPSTREAM__FORWARD_HEADER_PREFIXES="x-sim-",
                ),
                tmp,
            )  # fmt: skip
            children.append(gateway)
            base = f"http://{HOST}:{gw_port}"
            wait_http(f"{base}/readyz", gateway)
            url = f"{base}/v1/chat/completions"
            sampler = Sampler(gateway.proc.pid)
            sampler.start()
            started_rss = rss_mb(gateway.proc.pid)

            print(f"phase 1: {total:,} non-streamed requests at concurrency {args.concurrency}")
            t0 = time.monotonic()
            statuses = asyncio.run(requests_phase(url, total, args.concurrency, sampler))
            phase1_s = time.monotonic() - t0
            time.sleep(1.5)
            samples = list(sampler.samples)
            after = [(c, r) for t, c, r in samples if c >= warmup and t <= t0 + phase1_s]
            slope = slope_per_10k(after)
            marks = {f"{p}%": rss_at(samples, total * p // 100) for p in (25, 50, 75, 100)}

            print(f"phase 2: {streams:,} concurrent streams of ~{seconds:g} s, two rounds")
            rounds = []
            for _ in range(2):
                before = rss_mb(gateway.proc.pid)
                r0 = time.monotonic()
                complete, failed, peak_open = asyncio.run(
                    streams_round(url, f"{base}/metrics", streams, seconds)
                )
                time.sleep(2)  # connections closed, settles landed
                rounds.append(
                    (before, sampler.peak_since(r0), rss_mb(gateway.proc.pid), complete, failed,
                     peak_open, time.monotonic() - r0)
                )  # fmt: skip
            sampler.stopped.set()
        finally:
            for child in reversed(children):
                child.stop()
        traceback = "Traceback" in (tmp / "gateway.log").read_text(errors="replace")

    errors = sum(n for s, n in statuses.items() if s != 200) + sum(r[4] for r in rounds)
    growth = rounds[1][2] - rounds[0][2]
    flat = slope < 1.0 and abs(growth) <= 5.0
    print()
    print("| measure | value |")
    print("| --- | --- |")
    print(f"| gateway RSS at start (idle) | {started_rss:.1f} MB |")
    print(
        f"| requests | {sum(statuses.values()):,} in {phase1_s:.0f} s "
        f"({sum(statuses.values()) / phase1_s:,.0f}/s), statuses {dict(sorted(statuses.items()))} |"
    )
    print(f"| RSS after warm-up ({warmup:,} requests) | {rss_at(samples, warmup):.1f} MB |")
    for mark, rss in marks.items():
        print(f"| RSS at {mark} of requests | {rss:.1f} MB |")
    print(f"| slope after warm-up (least squares, {len(after)} samples) | {slope:+.3f} MB / 10k |")
    for i, (before, peak, after_rss, complete, failed, peak_open, took) in enumerate(rounds, 1):
        print(
            f"| stream round {i}: {streams:,} streams ({complete:,} complete, {failed} failed, "
            f"{peak_open:,} open at once, {took:.0f} s) | before {before:.1f} MB, peak "
            f"{peak:.1f} MB, after {after_rss:.1f} MB |"
        )
    print(f"| after round 2 minus after round 1 | {growth:+.1f} MB |")
    print(f"| total run time | {time.monotonic() - began:.0f} s |")
    print()
    verdict = "FLAT" if flat else "NOT FLAT"
    print(
        f"verdict: {verdict} (slope {slope:+.3f} MB per 10k requests, limit 1; stream rounds "
        f"{growth:+.1f} MB apart, limit 5); errors: {errors}"
        + ("; the gateway log has a Traceback" if traceback else "")
    )
    return 0 if flat and errors == 0 and not traceback else 1


if __name__ == "__main__":
    sys.exit(main())
