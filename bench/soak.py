"""Soak benchmark: the gateway's memory stays flat over 100,000+ requests and over rounds of
1,000 concurrent streams.

Run from the repository root:

    python -m bench.soak            # full run
    python -m bench.soak --quick    # about a minute, smaller numbers

It starts a real redis-server, `python -m gateway simulate` (the upstream) and `python -m gateway
serve` (one worker, full pipeline: auth with a gateway key of a team whose limits and budget are
lifted, admission on the redis-server, metrics, the JSON access log to a file), samples the
gateway's resident memory (VmRSS of the process and its children) every second, and:

1. sends N non-streamed chat requests (an aiohttp generator, bounded by count), then prints RSS
   after the warm-up (the first 10%, at most 10,000 requests) and at 25/50/75/100% of N, and the
   least-squares slope of RSS against requests after the warm-up, in MB per 10,000 requests;
2. holds S streams open at once (each ~`--stream-seconds` long, paced by
   `x-sim-chunk-interval-ms`), twice, and prints RSS before, at the peak and after each round.

The verdict (bench/targets.py) is FLAT or NOT FLAT; the report goes to bench/results/ too.
Exit status: 0 flat, 1 not flat or errors, 2 setup failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.load import count_bounded, streams_round
from bench.measurement import SoakRun, StreamRound, peak_since, rss_at, slope_per_10k
from bench.processes import (
    HOST,
    RssSampler,
    SetupError,
    raise_fd_limit,
    rss_mb,
    stopped_at_exit,
)
from bench.report import soak_record, soak_table, soak_verdict
from bench.results import add_results_option, write_results
from bench.servers import (
    METRICS_KEY,
    start_gateway,
    start_redis,
    start_simulator,
    write_teams_file,
)
from bench.targets import soak_flat

BODY = json.dumps(
    {"model": "gpt-4o", "messages": [{"role": "user", "content": "Write a two-line poem."}]}
)
STREAM_WORDS = 60  # the streamed answer: one chunk per word (and a few more)
ROUNDS = 2


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--quick", action="store_true", help="~1 minute: fewer requests/streams")
    parser.add_argument("--requests", type=int, help="non-streamed requests (default 100000)")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--streams", type=int, help="concurrent streams per round (default 1000)")
    parser.add_argument("--stream-seconds", type=float, help="length of each stream (default 12)")
    add_results_option(parser)
    args = parser.parse_args(argv)
    args.requests = args.requests or (20_000 if args.quick else 100_000)
    args.streams = args.streams or (300 if args.quick else 1000)
    args.stream_seconds = args.stream_seconds or (5.0 if args.quick else 12.0)
    return args


def soak(args: argparse.Namespace) -> SoakRun:
    """Start the servers, run both phases, stop them; raises SetupError."""
    began = time.monotonic()
    total, streams, seconds = args.requests, args.streams, args.stream_seconds
    warmup = min(10_000, total // 10)
    with (
        tempfile.TemporaryDirectory(prefix="o1gw-soak-") as tmp_name,
        stopped_at_exit([]) as children,
    ):
        tmp = Path(tmp_name)
        redis_url, _redis = start_redis(tmp, children)
        direct = start_simulator(tmp, children)
        # x-sim- headers pace the simulator's chunks: the gateway must pass them on.
        forward = {"O1GW__UPSTREAM__FORWARD_HEADER_PREFIXES": "x-sim-"}
        gateway = start_gateway(
            "gateway", 1, direct.base, redis_url, write_teams_file(tmp), tmp, children, forward
        )
        base = f"http://{HOST}:{gateway.port}"
        gateway.child.wait_http(f"{base}/readyz", {})
        url = f"{base}/v1/chat/completions"
        sampler = RssSampler(gateway.child.pid)
        sampler.start()
        idle = rss_mb(gateway.child.pid)

        print(f"phase 1: {total:,} non-streamed requests at concurrency {args.concurrency}")
        t0 = time.monotonic()

        def counted() -> None:
            sampler.count += 1

        statuses = asyncio.run(
            count_bounded(url, BODY, gateway.auth, total, args.concurrency, counted)
        )
        requests_s = time.monotonic() - t0
        time.sleep(1.5)  # a sample or two after the last request
        samples = list(sampler.samples)
        after = [(c, mb) for t, c, mb in samples if c >= warmup and t <= t0 + requests_s]

        print(f"phase 2: {streams:,} concurrent streams of ~{seconds:g} s, {ROUNDS} rounds")
        rounds = []
        for _ in range(ROUNDS):
            before = rss_mb(gateway.child.pid)
            r0 = time.monotonic()
            complete, failed, most_open = asyncio.run(
                streams_round(
                    url,
                    (f"{base}/metrics", f"Bearer {METRICS_KEY}"),
                    BODY,
                    gateway.auth,
                    streams,
                    seconds,
                    STREAM_WORDS,
                )
            )
            time.sleep(2)  # connections closed, settles landed
            rounds.append(
                StreamRound(
                    before_mb=before,
                    peak_mb=peak_since(sampler.samples, r0),
                    after_mb=rss_mb(gateway.child.pid),
                    complete=complete,
                    failed=failed,
                    most_open=most_open,
                    seconds=time.monotonic() - r0,
                )
            )
        sampler.stopped.set()
        gateway.child.stop()
        traceback = "Traceback" in gateway.child.log_path.read_text(errors="replace")
    return SoakRun(
        idle_mb=idle,
        statuses=statuses,
        requests_s=requests_s,
        warmup=warmup,
        warmup_mb=rss_at(samples, warmup),
        marks_mb={f"{p}%": rss_at(samples, total * p // 100) for p in (25, 50, 75, 100)},
        slope_mb_per_10k=slope_per_10k(after),
        slope_samples=len(after),
        streams=streams,
        rounds=tuple(rounds),
        total_s=time.monotonic() - began,
        traceback=traceback,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    raise_fd_limit()
    try:
        run = soak(args)
    except SetupError as exc:
        print(f"\nSETUP FAILED: {exc}", file=sys.stderr)
        return 2
    table, verdict = soak_table(run), soak_verdict(run)
    print(f"\n{table}\n\n{verdict}")
    record = soak_record(run, vars(args), verdict)
    name = "soak-quick" if args.quick else "soak"
    path = write_results(name, record, f"{table}\n\n```\n{verdict}\n```", args.results_dir)
    print(f"\nresults: {path} and {path.with_suffix('.md').name}")
    flat = soak_flat(run.slope_mb_per_10k, run.round_growth_mb)
    return 0 if flat and run.errors == 0 and not run.traceback else 1


if __name__ == "__main__":
    sys.exit(main())
