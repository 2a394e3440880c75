"""The goals the benchmarks hold the gateway to, and the verdict on a run. Pure.

Proxy benchmark, about `gw-1w` (the full pipeline, one worker):

- latency added over the direct upstream at concurrency 1: p50 < 0.6 ms, p99 < 3 ms, in every
  scenario;
- >= 2,500 requests/s non-streaming at 64 connections;
- CPU per proxied request < 0.35 ms (non-streaming, 64 connections);
- peak RSS < 150 MB while holding 512 concurrent streams;
- against LiteLLM (one worker): >= 20x its requests/s at 64 connections and <= 1/10 of its added
  p50 at concurrency 1.

Soak benchmark: memory is flat when it grows < 1 MB per 10,000 requests after the warm-up and the
second round of streams ends within 5 MB of the first.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from bench.measurement import Cell, ratio
from bench.scenarios import SCENARIOS

ADDED_P50_MS = 0.6  # at concurrency 1
ADDED_P99_MS = 3.0  # at concurrency 1
RPS_C64 = 2500.0  # non-streaming, concurrency 64
CPU_MS_PER_REQUEST = 0.35  # non-streaming, concurrency 64
RSS_MB = 150.0  # peak, 512 concurrent streams
LITELLM_RPS_RATIO = 20.0  # our req/s / LiteLLM's (concurrency 64)
LITELLM_ADDED_RATIO = 0.1  # our added p50 / LiteLLM's (concurrency 1)

SOAK_SLOPE_MB_PER_10K = 1.0
SOAK_ROUND_GROWTH_MB = 5.0

HOT = "gw-1w"  # the server the verdict is about
FRESH = "gw-1w-fresh"  # a new one-worker gateway for the 512-stream RSS check
LITELLM = "litellm-1w"

STREAMED = {name: s.stream for name, s in SCENARIOS.items()}


@dataclasses.dataclass(frozen=True, slots=True)
class Verdict:
    met: bool
    text: str


def _by_round(cell: Cell) -> str:
    if not cell.round_added_p50_ms:
        return ""
    return "; by round " + ", ".join(f"{v:+.3f}" for v in cell.round_added_p50_ms)


def proxy_verdicts(cells: Sequence[Cell], streamed: Mapping[str, bool] = STREAMED) -> list[Verdict]:
    """One verdict per goal the cells can speak to; a goal whose cells were not measured (a
    scenario or concurrency left out) gets none."""
    out: list[Verdict] = []
    by = {(c.scenario, c.concurrency, c.server): c for c in cells}

    for scenario in streamed:
        cell = by.get((scenario, 1, HOT))
        if cell and cell.added_p50_ms is not None and cell.added_p99_ms is not None:
            out.append(
                Verdict(
                    cell.added_p50_ms < ADDED_P50_MS,
                    f"added p50 at c=1, {scenario}: {cell.added_p50_ms:.3f} ms "
                    f"(target < {ADDED_P50_MS:g} ms){_by_round(cell)}",
                )
            )
            out.append(
                Verdict(
                    cell.added_p99_ms < ADDED_P99_MS,
                    f"added p99 at c=1, {scenario}: {cell.added_p99_ms:.3f} ms "
                    f"(target < {ADDED_P99_MS:g} ms)",
                )
            )
    cell = by.get(("non-stream", 64, HOT))
    if cell:
        direct = by.get(("non-stream", 64, "direct"))
        ceiling = f"; direct simulator {direct.load.rps:,.0f} req/s" if direct else ""
        out.append(
            Verdict(
                cell.load.rps >= RPS_C64,
                f"non-stream at c=64: {cell.load.rps:,.0f} req/s "
                f"(target >= {RPS_C64:,.0f}{ceiling})",
            )
        )
        if cell.cpu.ms_per_request is not None:
            out.append(
                Verdict(
                    cell.cpu.ms_per_request < CPU_MS_PER_REQUEST,
                    f"CPU per proxied request, non-stream at c=64: "
                    f"{cell.cpu.ms_per_request:.3f} ms (target < {CPU_MS_PER_REQUEST:g} ms)",
                )
            )
    for who, note in ((FRESH, "a fresh process"), (HOT, "after every earlier cell")):
        held = [
            (c.peak_rss_mb, c.scenario)
            for c in cells
            if c.server == who
            and c.concurrency == 512
            and streamed.get(c.scenario, False)
            and c.peak_rss_mb is not None
        ]
        if held:
            peak, scenario = max(held)
            out.append(
                Verdict(
                    peak < RSS_MB,
                    f"peak RSS with 512 concurrent streams ({scenario}, {note}): "
                    f"{peak:.1f} MB (target < {RSS_MB:g} MB)",
                )
            )
    for scenario in streamed:
        ours, theirs = by.get((scenario, 64, HOT)), by.get((scenario, 64, LITELLM))
        if ours and theirs:
            times = ratio(ours.load.rps, theirs.load.rps)
            out.append(
                Verdict(
                    times is not None and times >= LITELLM_RPS_RATIO,
                    f"vs LiteLLM, {scenario} at c=64: "
                    f"{'-' if times is None else f'{times:.1f}'}x its req/s "
                    f"(target >= {LITELLM_RPS_RATIO:g}x)",
                )
            )
        ours, theirs = by.get((scenario, 1, HOT)), by.get((scenario, 1, LITELLM))
        if ours and theirs and ours.added_p50_ms is not None:
            share = ratio(max(ours.added_p50_ms, 0.0), theirs.added_p50_ms)
            out.append(
                Verdict(
                    share is not None and share <= LITELLM_ADDED_RATIO,
                    f"vs LiteLLM, {scenario} at c=1: added p50 {ours.added_p50_ms:.3f} ms vs "
                    f"{theirs.added_p50_ms or 0:.3f} ms = "
                    f"{'-' if share is None else f'{share:.3f}'} "
                    f"(target <= {LITELLM_ADDED_RATIO:g})",
                )
            )
    return out


def soak_flat(slope_mb_per_10k: float, round_growth_mb: float) -> bool:
    return slope_mb_per_10k < SOAK_SLOPE_MB_PER_10K and abs(round_growth_mb) <= SOAK_ROUND_GROWTH_MB
