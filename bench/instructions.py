"""Instructions a gateway process executes per request, counted by valgrind's callgrind: a cost
that CPU time on a shared 2-core host blurs (it moves by several per cent from run to run).

The gateways compared run under callgrind side by side, serving a few requests, then more; for
each, the difference of the two totals over the difference of the counts is what a request
costs, startup and shutdown cancelling out. Side by side, because instructions do depend on the
host a little: the gateway's timers (uvicorn's tick, the access log's flush, the job followers)
run per second, some 0.5M instructions a second under callgrind, and a request there takes tens
of milliseconds, more on a busy host; run one after the other, two gateways would pay for the
load of two different moments. Each run ends with SIGINT, so the gateway shuts down as it does
in production (sending the spans it still holds, for one) and callgrind writes its totals.
Needs valgrind (`apt-get install valgrind`).

With `cache_sim`, callgrind also runs each access through a model of the caches (`CACHES`: 32 kB
L1 each for code and data, a 1 MB L2 as the last level, as each core of the development host
has) and each branch through a predictor, and counts their misses. An instruction count says
nothing of how long an instruction waits for memory; what a change adds to a request's working
set can cost far more than its instructions, and `estimated_cycles` puts a price on the misses
(`PENALTIES`: what a Zen 4 core pays for an L1 miss served by its L2, an L2 miss served by
the L3 and a mispredicted branch), a figure as steady as the instruction count.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from bench.load import count_bounded
from bench.processes import HOST, Child, SetupError
from bench.scenarios import Scenario
from bench.servers import Subject, start_gateway

COUNTS = (200, 1200)  # requests of the two runs
# Callgrind's cache and branch simulation: L1 code and data, and the last level (each: size in
# bytes, ways, line size), as one core of the development host (an AMD EPYC, Zen 4) has them.
CACHES = (
    "--cache-sim=yes", "--branch-sim=yes",
    "--I1=32768,8,64", "--D1=32768,8,64", "--LL=1048576,16,64",
)  # fmt: skip
# Cycles an event costs beyond its instruction's: a miss of L1 served by L2, a miss of L2
# served by the L3 (code, data read, data written), a mispredicted branch.
PENALTIES = {
    "I1mr": 14, "D1mr": 14, "D1mw": 14, "ILmr": 50, "DLmr": 50, "DLmw": 50, "Bcm": 13, "Bim": 13,
}  # fmt: skip
# A slow start: the gateway runs some 50 times slower under callgrind.
START_S = 300.0
# After the last answer, the bookkeeping run after responses has run.
SETTLE_S = 5.0
_EVENTS = re.compile(rb"^events: (.+)$", re.M)
_TOTALS = re.compile(rb"^summary: (.+)$", re.M)


def valgrind() -> str:
    found = shutil.which("valgrind")
    if found is None:
        raise SetupError("valgrind is not installed (apt-get install valgrind)")
    return found


def per_request(
    gateways: Mapping[str, dict[str, str]],
    scenario: Scenario,
    upstream: tuple[str, str, Path],
    tmp: Path,
    started: list[Child],
    counts: Sequence[int] = COUNTS,
    connections: int = 1,
    cache_sim: bool = False,
) -> dict[str, dict[str, float]]:
    """Callgrind's events per request of each gateway (`bench.servers.start_gateway`, one
    worker, on `upstream`: the simulator's base URL, a Redis URL and a teams file), by its name
    in `gateways`, whose values are their environments: `Ir`, the instructions, and with
    `cache_sim` the cache misses and mispredicted branches too. All serve `scenario` at the
    same time, each on `connections` at once (at more than one, what a request costs depends
    on timing too: how many the event loop serves in one turn)."""
    binary = valgrind()
    totals: dict[str, list[dict[str, int]]] = {name: [] for name in gateways}
    for count in counts:
        runs: list[tuple[str, Subject, Path]] = []
        for name, extra in gateways.items():
            out = tmp / f"{name}-{count}.callgrind"
            wrapper = [binary, "--tool=callgrind", f"--callgrind-out-file={out}"]
            if cache_sim:
                wrapper += CACHES
            sim_base, redis_url, teams = upstream
            subject = start_gateway(
                f"{name}-{count}", 1, sim_base, redis_url, teams, tmp, started, extra,
                wrapper=wrapper,
            )  # fmt: skip
            runs.append((name, subject, out))
        for _, subject, _ in runs:
            subject.child.wait_http(f"http://{HOST}:{subject.port}/healthz", {}, START_S)
        asyncio.run(_serve_all([subject for _, subject, _ in runs], scenario, count, connections))
        time.sleep(SETTLE_S)
        for _, subject, _ in runs:
            subject.child.proc.send_signal(signal.SIGINT)
        for name, subject, out in runs:
            try:
                subject.child.proc.wait(timeout=START_S)
            except subprocess.TimeoutExpired:
                raise SetupError(f"{name} did not stop:\n{subject.child.log_tail()}") from None
            found = callgrind_totals(out.read_bytes()) if out.exists() else None
            if found is None:
                raise SetupError(f"{name}: callgrind wrote no totals:\n{subject.child.log_tail()}")
            totals[name].append(found)
    spread = counts[-1] - counts[0]
    return {
        name: {event: (runs[-1][event] - runs[0][event]) / spread for event in runs[0]}
        for name, runs in totals.items()
    }


def callgrind_totals(output: bytes) -> dict[str, int] | None:
    """The totals of a callgrind output file, by event (`Ir`, and the simulated misses when
    there were any); None when it has none."""
    events, totals = _EVENTS.search(output), _TOTALS.search(output)
    if events is None or totals is None:
        return None
    names = events.group(1).decode().split()
    values = [int(value) for value in totals.group(1).split()]
    return dict(zip(names, values, strict=True)) if len(names) == len(values) else None


def estimated_cycles(events: Mapping[str, float]) -> float:
    """Instructions plus what the simulated misses cost (`PENALTIES`), in cycles."""
    return events["Ir"] + sum(events.get(name, 0.0) * cost for name, cost in PENALTIES.items())


async def _serve_all(
    subjects: Sequence[Subject], scenario: Scenario, count: int, connections: int
) -> None:
    """`count` requests to each subject, all of them at once; raises SetupError unless every
    answer is a 200."""

    async def serve(subject: Subject) -> None:
        body = subject.body(scenario)
        assert body is not None
        url = subject.base + scenario.path
        statuses = await count_bounded(url, body, subject.auth, count, connections, lambda: None)
        if statuses != {200: count}:
            raise SetupError(f"{subject.name}: answers by status {statuses}, not {count} x 200")

    await asyncio.gather(*(serve(subject) for subject in subjects))
