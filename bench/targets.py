"""The goals the benchmarks hold the gateway to, and the verdict on a run. Pure.

Proxy benchmark, about `gw-1w` (the full pipeline, one worker):

- latency added over the direct upstream at concurrency 1: p50 < 0.6 ms, p99 < 3 ms, in every
  scenario;
- >= 2,500 requests/s non-streaming at 64 connections;
- CPU per proxied request < 0.35 ms (non-streaming, 64 connections);
- peak RSS < 150 MB while holding 512 concurrent streams;
- against LiteLLM (one worker): >= 20x its requests/s at 64 connections and <= 1/10 of its added
  p50 at concurrency 1;
- the Responses API as cheap as chat (`responses` against `non-stream`, `responses-stream`
  against `stream`): added p50 at concurrency 1 within 15% of chat's or within +0.05 ms of it,
  whichever is larger (a ratio of two ~0.4 ms differences moves by more than 15% between runs),
  and CPU per request within 15% of chat's (at most 1.15x) at 1 and at 64 connections.

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
# The Responses API against the chat path it mirrors: (responses scenario, chat scenario).
RESPONSES_VS_CHAT = (("responses", "non-stream"), ("responses-stream", "stream"))
RESPONSES_SHARE = 0.15  # added p50 (c=1) and CPU per request (c=1, c=64) within 15% of chat's
RESPONSES_ADDED_FLOOR_MS = 0.05  # ... or added p50 within this of chat's, whichever is larger
RESPONSES_CPU_AT = (1, 64)  # connections at which CPU per request is compared

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
    return out + responses_verdicts(cells)


def added_allowance_ms(chat_added_ms: float) -> float:
    """How much more added p50 than chat's the Responses API may take: 15% of chat's, or the
    absolute floor when that is larger (chat faster than direct counts as zero)."""
    return max(RESPONSES_SHARE * max(chat_added_ms, 0.0), RESPONSES_ADDED_FLOOR_MS)


def responses_verdicts(cells: Sequence[Cell], server: str = HOT) -> list[Verdict]:
    """The Responses API against chat on `server`: added p50 at c=1, CPU per request at each of
    RESPONSES_CPU_AT; a pair whose cells were not both measured gets none."""
    out: list[Verdict] = []
    by = {(c.scenario, c.concurrency, c.server): c for c in cells}
    for responses, chat in RESPONSES_VS_CHAT:
        about = f"{responses} vs {chat}"
        ours, theirs = by.get((responses, 1, server)), by.get((chat, 1, server))
        if ours and theirs and ours.added_p50_ms is not None and theirs.added_p50_ms is not None:
            more = ours.added_p50_ms - theirs.added_p50_ms
            allowed = added_allowance_ms(theirs.added_p50_ms)
            out.append(
                Verdict(
                    more <= allowed,
                    f"{about}, added p50 at c=1: {ours.added_p50_ms:.3f} ms vs "
                    f"{theirs.added_p50_ms:.3f} ms = {more:+.3f} ms (target <= {allowed:+.3f} "
                    f"ms: {100 * RESPONSES_SHARE:g}% of chat's or "
                    f"{RESPONSES_ADDED_FLOOR_MS:+g} ms, the larger)",
                )
            )
        for connections in RESPONSES_CPU_AT:
            ours, theirs = (
                by.get((responses, connections, server)),
                by.get((chat, connections, server)),
            )
            if not ours or not theirs:
                continue
            times = ratio(ours.cpu.ms_per_request, theirs.cpu.ms_per_request)
            if times is None or ours.cpu.ms_per_request is None:
                continue
            out.append(
                Verdict(
                    times <= 1 + RESPONSES_SHARE,
                    f"{about}, CPU per request at c={connections}: "
                    f"{ours.cpu.ms_per_request:.3f} ms vs {theirs.cpu.ms_per_request:.3f} ms = "
                    f"{times:.2f}x (target <= {1 + RESPONSES_SHARE:.2f}x)",
                )
            )
    return out


def soak_flat(slope_mb_per_10k: float, round_growth_mb: float) -> bool:
    return slope_mb_per_10k < SOAK_SLOPE_MB_PER_10K and abs(round_growth_mb) <= SOAK_ROUND_GROWTH_MB
