"""Cells built by hand for the benchmark package's unit tests (not collected: no test_ prefix)."""

from __future__ import annotations

from bench.measurement import Cell, CpuFigures, LoadResult


def make_cell(
    server: str = "gw-1w",
    scenario: str = "non-stream",
    concurrency: int = 64,
    *,
    rps: float = 3000.0,
    p50_ms: float = 1.0,
    p99_ms: float = 2.0,
    requests: int = 3000,
    seconds: float = 1.0,
    ms_per_request: float | None = 0.3,
    percent: float = 90.0,
    redis_percent: float | None = 10.0,
    other_percent: float = 0.0,
    steal_percent: float = 0.0,
    peak_rss_mb: float | None = 100.0,
    added_p50_ms: float | None = None,
    added_p99_ms: float | None = None,
    non_2xx: int = 0,
    socket_errors: dict[str, int] | None = None,
) -> Cell:
    kind = {"direct": "direct", "litellm-1w": "litellm"}.get(server, "gateway")
    return Cell(
        scenario=scenario,
        concurrency=concurrency,
        server=server,
        kind=kind,
        load=LoadResult(
            requests=requests,
            seconds=seconds,
            rps=rps,
            p50_ms=p50_ms,
            p99_ms=p99_ms,
            non_2xx=non_2xx,
            socket_errors=socket_errors or {},
        ),
        cpu=CpuFigures(
            ms_per_request=ms_per_request,
            percent=percent,
            upstream_percent=50.0,
            redis_percent=redis_percent,
            other_percent=other_percent,
            steal_percent=steal_percent,
        ),
        peak_rss_mb=peak_rss_mb,
        added_p50_ms=added_p50_ms,
        added_p99_ms=added_p99_ms,
    )
