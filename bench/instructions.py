"""Instructions a gateway process executes per request, counted by valgrind's callgrind: a cost
a busy host does not blur (CPU time per request on a shared 2-core host moves by several per
cent from run to run; instructions do not depend on the load, and at c=1 little else does).

The gateway runs under callgrind twice, serving a few requests, then more; the difference of
the two totals over the difference of the counts is what a request costs, startup and shutdown
cancelling out. Each run ends with SIGINT, so the gateway shuts down as it does in production
(sending the spans it still holds, for one) and callgrind writes its totals. Needs valgrind
(`apt-get install valgrind`).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from bench.load import count_bounded
from bench.processes import HOST, Child, SetupError
from bench.scenarios import Scenario
from bench.servers import Subject, start_gateway

COUNTS = (200, 1200)  # requests of the two runs
# A slow start: the gateway runs some 50 times slower under callgrind.
START_S = 300.0
# After the last answer, the bookkeeping run after responses has run.
SETTLE_S = 5.0
_TOTAL = re.compile(rb"^summary: (\d+)", re.M)


def valgrind() -> str:
    found = shutil.which("valgrind")
    if found is None:
        raise SetupError("valgrind is not installed (apt-get install valgrind)")
    return found


def per_request(
    name: str,
    scenario: Scenario,
    upstream: tuple[str, str, Path],
    extra: dict[str, str],
    tmp: Path,
    started: list[Child],
    counts: Sequence[int] = COUNTS,
    connections: int = 1,
) -> float:
    """Instructions per request of a gateway (`bench.servers.start_gateway`, one worker, on
    `upstream`: the simulator's base URL, a Redis URL and a teams file; `extra` its
    environment) serving `scenario` on `connections` at once (at more than one, what a request
    costs depends on timing too: how many the event loop serves in one turn)."""
    binary = valgrind()
    totals = []
    for count in counts:
        out = tmp / f"{name}-{count}.callgrind"
        wrapper = [binary, "--tool=callgrind", f"--callgrind-out-file={out}"]
        sim_base, redis_url, teams = upstream
        subject: Subject = start_gateway(
            f"{name}-{count}", 1, sim_base, redis_url, teams, tmp, started, extra, wrapper=wrapper
        )
        subject.child.wait_http(f"http://{HOST}:{subject.port}/healthz", {}, START_S)
        body = subject.body(scenario)
        assert body is not None
        url = subject.base + scenario.path
        statuses = asyncio.run(
            count_bounded(url, body, subject.auth, count, connections, lambda: None)
        )
        if statuses != {200: count}:
            raise SetupError(f"{name}: answers by status {statuses}, not {count} x 200")
        time.sleep(SETTLE_S)
        subject.child.proc.send_signal(signal.SIGINT)
        try:
            subject.child.proc.wait(timeout=START_S)
        except subprocess.TimeoutExpired:
            raise SetupError(f"{name} did not stop:\n{subject.child.log_tail()}") from None
        found = _TOTAL.search(out.read_bytes()) if out.exists() else None
        if found is None:
            raise SetupError(f"{name}: callgrind wrote no totals:\n{subject.child.log_tail()}")
        totals.append(int(found.group(1)))
    return (totals[-1] - totals[0]) / (counts[-1] - counts[0])
