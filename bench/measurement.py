"""Figures from raw readings: wrk's report parsed, latency percentiles, CPU per request and CPU
shares, interleaved slices merged into one cell, latency added over the direct upstream, the
slope of memory against requests. Pure: every reading comes in as an argument."""

from __future__ import annotations

import dataclasses
import math
import re
import statistics
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")

# -- load -----------------------------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class LoadResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int = 0
    socket_errors: dict[str, int] = dataclasses.field(default_factory=dict)
    raw: str = ""

    @property
    def errors(self) -> int:
        return self.non_2xx + sum(self.socket_errors.values())


_UNITS_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _duration_s(number: str, unit: str) -> float:
    return float(number) * _UNITS_S[unit]


def parse_wrk(text: str) -> LoadResult:
    """Parse `wrk --latency` output (latency units us/ms/s/m/h); ValueError if it is not one."""
    pct: dict[str, float] = {}
    for m in re.finditer(r"^\s*(50|75|90|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", text, re.M):
        pct[m.group(1)] = _duration_s(m.group(2), m.group(3)) * 1000
    done = re.search(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)", text, re.M)
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    if not (done and rps and "50" in pct and "99" in pct):
        raise ValueError(f"cannot parse wrk output:\n{text}")
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    socket_errors = {}
    if sock:
        socket_errors = {
            name: int(sock.group(i + 1))
            for i, name in enumerate(("connect", "read", "write", "timeout"))
        }
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    requests = int(done.group(1))
    return LoadResult(
        requests=requests,
        seconds=_duration_s(done.group(2), done.group(3)),
        rps=float(rps.group(1)),
        # No request completed within the run: wrk's percentiles are then meaningless zeros.
        p50_ms=pct["50"] if requests else math.nan,
        p99_ms=pct["99"] if requests else math.nan,
        non_2xx=int(non2xx.group(1)) if non2xx else 0,
        socket_errors=socket_errors,
        raw=text,
    )


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """The value below which `fraction` of the sorted samples lie (nearest rank, no
    interpolation: every figure reported is one that was measured)."""
    if not ordered:
        raise ValueError("no samples")
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def load_from_latencies(
    latencies_s: Sequence[float], elapsed_s: float, non_2xx: int, socket_errors: dict[str, int]
) -> LoadResult:
    """What a load generator that timed each request itself reports, wrk's way."""
    ordered = sorted(latencies_s)
    return LoadResult(
        requests=len(ordered),
        seconds=elapsed_s,
        rps=len(ordered) / elapsed_s if elapsed_s > 0 else 0.0,
        p50_ms=percentile(ordered, 0.50) * 1000 if ordered else math.nan,
        p99_ms=percentile(ordered, 0.99) * 1000 if ordered else math.nan,
        non_2xx=non_2xx,
        socket_errors=dict(socket_errors),
    )


# -- CPU ------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class CpuSpent:
    """CPU milliseconds used during one measured run, by whom."""

    server_ms: float  # every process holding the measured server's listening socket
    upstream_ms: float | None  # the simulator behind it; None: the server is the simulator
    redis_ms: float | None  # None: the server does not use Redis
    host_ms: float  # the whole machine, busy (user, nice, system, irq, softirq)
    steal_ms: float  # taken by the hypervisor
    loadgen_ms: float  # the load generator (this process and its reaped children)


@dataclasses.dataclass(frozen=True, slots=True)
class CpuFigures:
    """CPU of one cell; every percentage is of one core (2 cores busy = 200)."""

    ms_per_request: float | None
    percent: float
    upstream_percent: float
    redis_percent: float | None
    host_busy_percent: float = 0.0
    loadgen_percent: float = 0.0
    other_percent: float = 0.0  # what processes not ours used: busy minus everything above
    steal_percent: float = 0.0


def cpu_figures(spent: CpuSpent, wall_ms: float, requests: int) -> CpuFigures:
    def pct(ms: float) -> float:
        return 100 * ms / wall_ms if wall_ms > 0 else 0.0

    ours = spent.server_ms + (spent.upstream_ms or 0.0) + (spent.redis_ms or 0.0)
    upstream = spent.server_ms if spent.upstream_ms is None else spent.upstream_ms
    return CpuFigures(
        ms_per_request=spent.server_ms / requests if requests else None,
        percent=pct(spent.server_ms),
        upstream_percent=pct(upstream),
        redis_percent=None if spent.redis_ms is None else pct(spent.redis_ms),
        host_busy_percent=pct(spent.host_ms),
        loadgen_percent=pct(spent.loadgen_ms),
        other_percent=max(0.0, pct(spent.host_ms - ours - spent.loadgen_ms)),
        steal_percent=pct(spent.steal_ms),
    )


# -- cells ----------------------------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class Cell:
    """One server measured on one scenario at one concurrency."""

    scenario: str
    concurrency: int
    server: str  # "direct", "gw-1w", "gw-2w", "litellm-1w", ...
    kind: str  # "direct", "gateway" or "litellm"
    load: LoadResult
    cpu: CpuFigures
    peak_rss_mb: float | None
    added_p50_ms: float | None = None
    added_p99_ms: float | None = None
    # Concurrency 1: each round's p50 minus the direct upstream's in the same round, to show
    # how much of the figure is the host's drift between slices.
    round_added_p50_ms: tuple[float, ...] = ()


def rotation(items: Sequence[T], round_: int) -> list[T]:
    """The order in which `items` take their turn in round `round_`: each round starts one
    further along, so no server is always measured right after the same other one."""
    if not items:
        return []
    start = round_ % len(items)
    return [*items[start:], *items[:start]]


def slice_seconds(duration_s: int, rounds: int) -> int:
    """Seconds of each interleaved slice, so that the slices add up to about one cell."""
    return max(1, round(duration_s / rounds))


def round_added_p50(mine: Sequence[Cell], base: Sequence[Cell]) -> tuple[float, ...]:
    """Each round's p50 minus the baseline's p50 in the same round."""
    return tuple(m.load.p50_ms - b.load.p50_ms for m, b in zip(mine, base, strict=True))


def _time_weighted(values: Sequence[float | None], seconds: Sequence[float]) -> float | None:
    total = sum(seconds)
    if not total or any(v is None for v in values):
        return None
    return sum((v or 0.0) * s for v, s in zip(values, seconds, strict=True)) / total


def merge_slices(slices: Sequence[Cell]) -> Cell:
    """One cell from a server's interleaved slices: counts and CPU summed, shares averaged over
    time, latency percentiles the median of the slices'."""
    first = slices[0]
    requests = sum(c.load.requests for c in slices)
    seconds = [c.load.seconds for c in slices]
    errors: dict[str, int] = {}
    for c in slices:
        for kind, n in c.load.socket_errors.items():
            errors[kind] = errors.get(kind, 0) + n
    load = LoadResult(
        requests=requests,
        seconds=sum(seconds),
        rps=requests / sum(seconds) if sum(seconds) else 0.0,
        p50_ms=statistics.median(c.load.p50_ms for c in slices),
        p99_ms=statistics.median(c.load.p99_ms for c in slices),
        non_2xx=sum(c.load.non_2xx for c in slices),
        socket_errors=errors,
        raw="\n".join(c.load.raw for c in slices),
    )
    per_request = [c.cpu.ms_per_request for c in slices]
    ms_per_request = None
    if requests and all(v is not None for v in per_request):
        used = sum((v or 0.0) * c.load.requests for v, c in zip(per_request, slices, strict=True))
        ms_per_request = used / requests

    def share(name: str) -> float | None:
        return _time_weighted([getattr(c.cpu, name) for c in slices], seconds)

    cpu = CpuFigures(
        ms_per_request=ms_per_request,
        percent=share("percent") or 0.0,
        upstream_percent=share("upstream_percent") or 0.0,
        redis_percent=share("redis_percent"),
        host_busy_percent=share("host_busy_percent") or 0.0,
        loadgen_percent=share("loadgen_percent") or 0.0,
        other_percent=share("other_percent") or 0.0,
        steal_percent=share("steal_percent") or 0.0,
    )
    rss = [c.peak_rss_mb for c in slices if c.peak_rss_mb is not None]
    return dataclasses.replace(first, load=load, cpu=cpu, peak_rss_mb=max(rss) if rss else None)


def fill_added(cells: Sequence[Cell]) -> None:
    """Set each cell's added p50 / p99: its latency minus the direct simulator's on the same
    scenario and concurrency."""
    direct = {(c.scenario, c.concurrency): c for c in cells if c.server == "direct"}
    for cell in cells:
        base = direct.get((cell.scenario, cell.concurrency))
        if cell.server != "direct" and base:
            cell.added_p50_ms = cell.load.p50_ms - base.load.p50_ms
            cell.added_p99_ms = cell.load.p99_ms - base.load.p99_ms


def ratio(ours: float | None, theirs: float | None) -> float | None:
    """ours / theirs, or None when either is unknown or theirs is not positive."""
    if ours is None or theirs is None or math.isnan(ours) or not theirs > 0:
        return None
    return ours / theirs


# -- memory over a long run -----------------------------------------------------------------------


def slope_per_10k(points: Sequence[tuple[int, float]]) -> float:
    """Least-squares slope of (requests, MB) points, in MB per 10,000 requests."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    sxy = sum((x - mx) * (y - my) for x, y in points)
    return sxy / sxx * 10_000 if sxx else 0.0


def rss_at(samples: Sequence[tuple[float, int, float]], count: int) -> float:
    """MB of the first (time, requests done, MB) sample taken once `count` requests were done;
    the last sample's when none was."""
    for _, done, mb in samples:
        if done >= count:
            return mb
    return samples[-1][2]


def peak_since(samples: Sequence[tuple[float, int, float]], since: float) -> float:
    return max((mb for t, _, mb in samples if t >= since), default=0.0)


@dataclasses.dataclass(frozen=True, slots=True)
class StreamRound:
    """One round of streams held open at once, with the gateway's RSS around it."""

    before_mb: float
    peak_mb: float
    after_mb: float
    complete: int
    failed: int
    most_open: int  # the gateway's own gauge of open streams, at its highest
    seconds: float


@dataclasses.dataclass(frozen=True, slots=True)
class SoakRun:
    idle_mb: float  # RSS before the first request
    statuses: dict[int, int]  # answers by HTTP status (0: no answer)
    requests_s: float  # how long the requests phase took
    warmup: int  # requests before the slope is taken
    warmup_mb: float
    marks_mb: dict[str, float]  # RSS at 25/50/75/100% of the requests
    slope_mb_per_10k: float
    slope_samples: int
    streams: int
    rounds: tuple[StreamRound, ...]
    total_s: float
    traceback: bool  # the gateway's log has one

    @property
    def errors(self) -> int:
        failed = sum(n for status, n in self.statuses.items() if status != 200)
        return failed + sum(r.failed for r in self.rounds)

    @property
    def round_growth_mb(self) -> float:
        """RSS after the last round of streams minus after the first."""
        return self.rounds[-1].after_mb - self.rounds[0].after_mb if self.rounds else 0.0
