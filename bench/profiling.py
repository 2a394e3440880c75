"""py-spy on a gateway under load: where a proxied request's CPU goes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.load import run_load
from bench.measurement import LoadResult
from bench.report import summarize_profile
from bench.scenarios import SCENARIOS, Scenario
from bench.servers import Subject


def profile_gateway(
    wrk: str | None,
    subject: Subject,
    seconds: int,
    tmp: Path,
    scenario: Scenario = SCENARIOS["non-stream"],
) -> list[str]:
    """py-spy (--native) on the gateway under c=64 load of `scenario` (default non-streaming
    chat); needs py-spy installed."""
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    py_spy = shutil.which("py-spy", path=search)
    if not py_spy:
        return ["Profile skipped: py-spy is not installed (.venv/bin/pip install py-spy)."]
    url = subject.base + scenario.path
    body = subject.body(scenario)
    if body is None:
        return [f"Profile skipped: {subject.name} has no {scenario.name} request."]
    # One worker: the started process serves. More: profile the first worker.
    pid = subject.pids[-1] if len(subject.pids) > 1 else subject.pids[0]
    out = tmp / "profile.raw"
    argv = [py_spy, "record", "--native", "-r", "100", "-f", "raw", "-o", str(out)]
    argv += ["-d", str(seconds), "-p", str(pid)]
    result: list[LoadResult] = []
    loader = threading.Thread(
        target=lambda: result.append(run_load(wrk, url, body, subject.auth, 64, seconds + 3)),
        daemon=True,
    )
    loader.start()
    time.sleep(1.5)  # the load is running before sampling starts
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30)
    except subprocess.TimeoutExpired:
        return ["Profile failed: py-spy did not finish."]
    finally:
        loader.join(timeout=seconds + 40)
    if done.returncode != 0 or not out.exists():
        return [f"Profile failed: py-spy exited {done.returncode}: {done.stderr.strip()[-300:]}"]
    subject.requests += result[0].requests if result else 0
    rps = f"{result[0].rps:,.0f} req/s" if result else "load result missing"
    head = (
        f"Profile: py-spy --native, {seconds}s on {subject.name} (pid {pid}), full pipeline, "
        f"c=64 {scenario.name} ({rps} over the load run; sampling slows it)"
    )
    return [head, *summarize_profile(out.read_text())]
