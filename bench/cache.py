"""`python -m bench.cache`: what a response-cache hit costs against a miss, on the gateway's full
pipeline (auth, admission on a real redis-server, metrics, access log) in front of the
simulated upstream, each in its own process.

Cells, each `--requests` sequential chat requests over one keep-alive connection (latency is the
client's, wall clock; CPU is the gateway process's, from /proc, per request):

- off: the cache not on (no header): the baseline;
- miss: `x-gateway-cache: on`, a new prompt each time (lookup and lock, upstream, the answer
  kept);
- hit: `x-gateway-cache: on`, the same prompt (lookup, admission, the answer replayed);
each whole and streamed. The simulator answers at once, so a miss's figures are the gateway's
own work plus the loopback round trip to the simulator: against a real o1 call (seconds), a
hit saves the whole call.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.processes import TICK_MS, cpu_ticks
from bench.servers import (
    GATEWAY_KEY,
    Child,
    start_gateway,
    start_redis,
    start_simulator,
    write_teams_file,
)


def cell(client: httpx.Client, base: str, count: int, *, cache: bool, same: bool, stream: bool,
         pid: int) -> tuple[float, float, float]:  # fmt: skip
    """(p50 ms, mean ms, gateway CPU ms) per request."""
    fixed = f"Tell me about caching ({secrets.token_hex(4)})."
    headers = {"authorization": f"Bearer {GATEWAY_KEY}"}
    if cache:
        headers["x-gateway-cache"] = "on"
    body: dict[str, object] = {"model": "gpt-4o", "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}

    def send(prompt: str) -> None:
        answer = client.post(
            f"{base}/chat/completions",
            json={**body, "messages": [{"role": "user", "content": prompt}]},
            headers=headers,
        )
        answer.raise_for_status()

    send(fixed)  # warm: the hits' entry, the connection
    prompts = [fixed if same else f"Tell me about caching ({secrets.token_hex(8)})."
               for _ in range(count)]  # fmt: skip
    times: list[float] = []
    before = cpu_ticks([pid])
    for prompt in prompts:
        began = time.perf_counter()
        send(prompt)
        times.append((time.perf_counter() - began) * 1000)
    cpu = (cpu_ticks([pid]) - before) * TICK_MS / count
    return statistics.median(times), statistics.fmean(times), cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="per cell (default 1000)")
    args = parser.parse_args(argv)
    started: list[Child] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        try:
            redis_url, _ = start_redis(tmp, started)
            sim = start_simulator(tmp, started)
            gateway = start_gateway(
                "gateway", 1, sim.base, redis_url, write_teams_file(tmp), tmp, started
            )
            gateway.child.wait_http(
                gateway.base + "/models", {"Authorization": f"Bearer {GATEWAY_KEY}"}
            )
            rows = []
            with httpx.Client(timeout=30) as client:
                for stream in (False, True):
                    for name, cache, same in (
                        ("off", False, False), ("miss", True, False), ("hit", True, True),
                    ):  # fmt: skip
                        figures = cell(
                            client, gateway.base, args.requests, cache=cache, same=same,
                            stream=stream, pid=gateway.child.pid,
                        )  # fmt: skip
                        rows.append(("stream" if stream else "whole", name, *figures))
        finally:
            for child in reversed(started):
                child.stop()
    print(f"{args.requests} sequential requests per cell, gateway gpt-4o chat, simulator at 0 ms")
    print(f"{'answer':<7} {'cache':<5} {'p50 ms':>8} {'mean ms':>8} {'CPU ms/req':>11}")
    for kind, name, p50, mean, cpu in rows:
        print(f"{kind:<7} {name:<5} {p50:>8.3f} {mean:>8.3f} {cpu:>11.3f}")
    for kind in ("whole", "stream"):
        by = {name: (p50, cpu) for k, name, p50, _, cpu in rows if k == kind}
        print(
            f"{kind}: a hit adds {by['hit'][0] - by['off'][0]:+.3f} ms p50 and "
            f"{by['hit'][1] - by['off'][1]:+.3f} ms CPU against the cache off, "
            f"{by['hit'][0] - by['miss'][0]:+.3f} ms and {by['hit'][1] - by['miss'][1]:+.3f} ms "
            "CPU against a miss; a miss adds "
            f"{by['miss'][0] - by['off'][0]:+.3f} ms and {by['miss'][1] - by['off'][1]:+.3f} ms CPU"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
