"""Metrics of several workers (`PROMETHEUS_MULTIPROC_DIR`): a worker that died without its
clean exit (killed, out of memory) stops counting in the live gauges, as one that exited does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

WORKER = """
import os, sys, time
from gateway.observability.metrics import Metrics
metrics = Metrics()
metrics.in_flight.inc(int(sys.argv[1]))
metrics.open_streams.inc(int(sys.argv[1]))
metrics.upstream_retries.labels("gpt-4o").inc()
print("ready", flush=True)
if sys.argv[2] == "die":
    os._exit(0)  # as a SIGKILL: no clean exit
time.sleep(60)
"""


def worker(directory: Path, requests: int, fate: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(requests), fate],
        env={"PROMETHEUS_MULTIPROC_DIR": str(directory), "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    return proc


def test_a_worker_that_died_in_the_middle_of_requests_stops_counting_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.observability.metrics import Metrics

    alive = worker(tmp_path, 2, "live")
    try:
        worker(tmp_path, 5, "die").wait(10)
        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
        body, _ = Metrics().render("text/plain", None, ())
        values = {
            line.split(" ")[0]: float(line.split(" ")[1])
            for line in body.decode().splitlines()
            if not line.startswith("#")
        }
        assert values["gateway_in_flight_requests"] == 2
        assert values["gateway_open_streams"] == 2
        # What the dead worker counted stays counted.
        assert values['gateway_upstream_retries_total{model="gpt-4o"}'] == 2
    finally:
        alive.kill()
        alive.wait(10)
