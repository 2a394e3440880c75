"""Measuring cells: a run of load against one server with the CPU counters of every process
involved read around it; at concurrency 1 (and in an A/B run at every concurrency) the servers
take turns in short slices instead, and after a run at high concurrency the server is let finish
what the load generator left in flight.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Sequence

from bench.load import run_load
from bench.measurement import (
    Cell,
    CpuSpent,
    LoadResult,
    cpu_figures,
    merge_slices,
    rotation,
    round_added_p50,
    slice_seconds,
)
from bench.processes import TICK_MS, SetupError, busy_percent, cpu_ticks, host_ticks, own_cpu_ms
from bench.processes import peak_rss_mb as read_peak_rss_mb
from bench.report import cell_line
from bench.scenarios import Scenario
from bench.servers import Subject


@dataclasses.dataclass(slots=True)
class CellRunner:
    """Measures cells against `direct` (the simulator every server calls) and keeps them, in
    the order measured, in `cells`."""

    wrk: str | None  # None: the Python load generator
    direct: Subject
    redis_pids: list[int]
    warmup_s: int
    duration_s: int
    rounds: int  # slices per server at concurrency 1
    cells: list[Cell] = dataclasses.field(default_factory=list)

    def measure(
        self, subject: Subject, scenario: Scenario, connections: int, warmup_s: int, seconds: int
    ) -> Cell:
        url = subject.base + scenario.path
        body = subject.body(scenario)
        if body is None:
            raise SetupError(f"{subject.name} has no request for {scenario.name}")
        if warmup_s > 0:
            warm = run_load(self.wrk, url, body, subject.auth, connections, warmup_s)  # discarded
            subject.requests += warm.requests
        upstream = [] if subject is self.direct else self.direct.pids
        redis = self.redis_pids if subject.kind == "gateway" else []
        groups = [subject.pids, upstream, redis]
        ticks = [cpu_ticks(pids) for pids in groups]
        busy, steal = host_ticks()
        own = own_cpu_ms()
        started = time.monotonic()
        load = run_load(self.wrk, url, body, subject.auth, connections, seconds)
        wall_ms = (time.monotonic() - started) * 1000
        loadgen_ms = own_cpu_ms() - own
        busy_after, steal_after = host_ticks()
        used = [(cpu_ticks(pids) - t0) * TICK_MS for pids, t0 in zip(groups, ticks, strict=True)]
        subject.requests += load.requests
        spent = CpuSpent(
            server_ms=used[0],
            upstream_ms=None if subject is self.direct else used[1],
            redis_ms=used[2] if redis else None,
            host_ms=(busy_after - busy) * TICK_MS,
            steal_ms=(steal_after - steal) * TICK_MS,
            loadgen_ms=loadgen_ms,
        )
        return Cell(
            scenario=scenario.name,
            concurrency=connections,
            server=subject.name,
            kind=subject.kind,
            load=load,
            cpu=cpu_figures(spent, wall_ms, load.requests),
            peak_rss_mb=read_peak_rss_mb(subject.pids),
        )

    def measure_together(
        self, subjects: Sequence[Subject], scenario: Scenario, connections: int, seconds: int
    ) -> list[Cell]:
        """One cell per server, all loaded at once (a load generator each, `connections`
        apiece) over the same seconds: what the host's speed does to one, it does to all."""
        loads: dict[str, LoadResult] = {}
        failures: list[BaseException] = []

        def load(subject: Subject) -> None:
            try:
                body = subject.body(scenario) or ""
                url = subject.base + scenario.path
                loads[subject.name] = run_load(
                    self.wrk, url, body, subject.auth, connections, seconds
                )
            except BaseException as exc:  # re-raised in the caller's thread
                failures.append(exc)

        groups = [subject.pids for subject in subjects]
        ticks = [cpu_ticks(pids) for pids in groups]
        busy, steal = host_ticks()
        own = own_cpu_ms()
        started = time.monotonic()
        threads = [threading.Thread(target=load, args=(s,)) for s in subjects]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall_ms = (time.monotonic() - started) * 1000
        if failures:
            raise failures[0]
        loadgen_ms = (own_cpu_ms() - own) / len(subjects)  # theirs together, shared out
        busy_after, steal_after = host_ticks()
        cells = []
        for subject, pids, t0 in zip(subjects, groups, ticks, strict=True):
            result = loads[subject.name]
            subject.requests += result.requests
            spent = CpuSpent(
                server_ms=(cpu_ticks(pids) - t0) * TICK_MS,
                upstream_ms=0.0,  # shared by all: not any one's
                redis_ms=None,
                host_ms=(busy_after - busy) * TICK_MS / len(subjects),
                steal_ms=(steal_after - steal) * TICK_MS / len(subjects),
                loadgen_ms=loadgen_ms,
            )
            cells.append(
                Cell(
                    scenario=scenario.name, concurrency=connections, server=subject.name,
                    kind=subject.kind, load=result, cpu=cpu_figures(spent, wall_ms, result.requests),
                    peak_rss_mb=read_peak_rss_mb(subject.pids),
                )
            )  # fmt: skip
        return cells

    def run_together(
        self, subjects: Sequence[Subject], scenario: Scenario, connections: int, drain_s: float
    ) -> dict[str, list[Cell]]:
        """`rounds` rounds of the servers loaded at once, each followed by a drain (the first
        round warmed up, not kept); returns the rounds by server name. Taking turns, a server's
        slice and the next one's run seconds apart, and on a shared host the speed of the cores
        moves between them (a server's CPU per request from one 3 s slice to the next by half,
        seen on a 2-core VM); loaded at once, they share every moment's speed."""
        piece = slice_seconds(self.duration_s, self.rounds)
        rounds: dict[str, list[Cell]] = {s.name: [] for s in subjects}
        self.measure_together(subjects, scenario, connections, self.warmup_s)  # warm-up
        for subject in subjects:
            drain(subject, drain_s)
        for r in range(self.rounds):
            cells = self.measure_together(subjects, scenario, connections, piece)
            for subject, cell in zip(subjects, cells, strict=True):
                rounds[subject.name].append(cell)
                if not drain(subject, drain_s):
                    print(f"  !! {subject.name} still busy after {drain_s:g}s (round {r + 1})")
        for subject in subjects:
            self._keep(subject, merge_slices(rounds[subject.name]))
        return rounds

    def _keep(self, subject: Subject, cell: Cell) -> None:
        self.cells.append(cell)
        print(cell_line(cell), flush=True)
        if subject.child.proc.poll() is not None:
            raise SetupError(f"{subject.name} died:\n{subject.child.log_tail()}")

    def run(self, subject: Subject, scenario: Scenario, connections: int, drain_s: float) -> bool:
        """Measure one cell; False if the server still works off the load's leftovers."""
        cell = self.measure(subject, scenario, connections, self.warmup_s, self.duration_s)
        self._keep(subject, cell)
        # wrk stops with up to `connections` requests in flight: let the server finish them
        # so they do not load the next cell.
        return connections == 1 or drain(subject, drain_s)

    def run_interleaved(
        self,
        subjects: Sequence[Subject],
        scenario: Scenario,
        connections: int = 1,
        drain_s: float = 0.0,
    ) -> dict[str, list[Cell]]:
        """The servers take turns in short slices, in a rotating order, and each gets one cell
        of its slices added up; returns the slices by server name, in round order. The host's
        speed drifts over minutes: measured minutes apart, the drift would be part of a
        difference between two servers' figures. When the first is the direct simulator, each
        round's added p50 is measured against it. Above one connection each slice is followed
        by a drain, so that its leftovers do not load the next server's slice."""
        piece = slice_seconds(self.duration_s, self.rounds)
        slices: dict[str, list[Cell]] = {s.name: [] for s in subjects}
        for r in range(self.rounds):
            for subject in rotation(subjects, r):
                warmup = self.warmup_s if r == 0 else 0
                cell = self.measure(subject, scenario, connections, warmup, piece)
                slices[subject.name].append(cell)
                if connections > 1 and not drain(subject, drain_s):
                    print(f"  !! {subject.name} still busy after {drain_s:g}s (round {r + 1})")
        base = slices[subjects[0].name] if subjects[0] is self.direct else None
        for subject in subjects:
            cell = merge_slices(slices[subject.name])
            if base is not None and subject is not self.direct:
                cell.round_added_p50_ms = round_added_p50(slices[subject.name], base)
            self._keep(subject, cell)
        return slices


def drain(subject: Subject, limit_s: float) -> bool:
    """Wait until the server is idle (under 10% of a core); False if it is not within limit_s."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if busy_percent(subject.pids, 0.3) < 10:
            return True
    return False
