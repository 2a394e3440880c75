"""What a benchmark prints and records: tables (an A/B run's side by side and round by round
too), verdict lines, error and disturbance notes, a py-spy summary, the JSON record of a run and
the dated name of its results file. Pure: it gets figures and returns text or plain data."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from bench.comparison import (
    ADDED_P50_FLOOR_MS,
    RPS_RATIO_FLOOR,
    AddedLatency,
    Interval,
    ScenarioComparison,
    Throughput,
    median,
    no_regression,
    regressions,
)
from bench.measurement import Cell, SoakRun, ratio
from bench.targets import (
    HOT,
    LITELLM,
    RESPONSES_VS_CHAT,
    SOAK_ROUND_GROWTH_MB,
    SOAK_SLOPE_MB_PER_10K,
    Verdict,
    soak_flat,
)


def ms(value: float | None, digits: int = 3) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def signed(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:+.3f}"


def markdown_table(head: Sequence[str], rows: Sequence[Sequence[str]], left: set[int]) -> str:
    """A markdown table padded to line up in a terminal too; columns in `left` are text (left
    aligned), the others figures (right aligned)."""
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(cols: Sequence[str]) -> str:
        padded = [
            s.ljust(w) if i in left else s.rjust(w)
            for i, (s, w) in enumerate(zip(cols, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    rule = "|".join(
        "-" * (w + 2) if i in left else "-" * (w + 1) + ":" for i, w in enumerate(widths)
    )
    return "\n".join([line(head), f"|{rule}|", *(line(r) for r in rows)])


# -- proxy ----------------------------------------------------------------------------------------


def cell_line(cell: Cell) -> str:
    """The progress line printed as each cell is measured."""
    flag = f"  !! {cell.load.errors} errors" if cell.load.errors else ""
    if not cell.load.requests:
        flag = "  !! no request completed"
    return (
        f"  {cell.scenario:<14} c={cell.concurrency:<3} {cell.server:<16} "
        f"{cell.load.rps:>9,.0f} req/s  p50 {ms(cell.load.p50_ms)} ms  "
        f"p99 {ms(cell.load.p99_ms)} ms  CPU {ms(cell.cpu.ms_per_request)} ms/req{flag}"
    )


CELL_COLUMNS = (
    "scenario",
    "conc",
    "server",
    "req/s",
    "p50 ms",
    "p99 ms",
    "added p50 ms",
    "added p99 ms",
    "CPU ms/req",
    "CPU %",
    "sim CPU %",
    "redis CPU %",
    "wrk CPU %",
    "host busy %",
    "peak RSS MB",
    "errors",
)


def cells_table(cells: Sequence[Cell]) -> str:
    rows = [
        [
            c.scenario,
            str(c.concurrency),
            c.server,
            f"{c.load.rps:,.0f}",
            ms(c.load.p50_ms),
            ms(c.load.p99_ms),
            signed(c.added_p50_ms),
            signed(c.added_p99_ms),
            ms(c.cpu.ms_per_request),
            ms(c.cpu.percent, 0),
            ms(c.cpu.upstream_percent, 0),
            ms(c.cpu.redis_percent, 0),
            ms(c.cpu.loadgen_percent, 0),
            ms(c.cpu.host_busy_percent, 0),
            ms(c.peak_rss_mb, 1),
            str(c.load.errors),
        ]
        for c in cells
    ]
    return markdown_table(CELL_COLUMNS, rows, {0, 2})


def litellm_table(cells: Sequence[Cell]) -> str:
    """Ours (full pipeline, one worker) next to LiteLLM (one worker), with ratios."""
    by = {(c.scenario, c.concurrency, c.server): c for c in cells}
    head = [
        "scenario",
        "conc",
        "req/s ours",
        "req/s LiteLLM",
        "req/s ratio",
        "added p50 ours",
        "added p50 LiteLLM",
        "p50 ratio",
        "added p99 ours",
        "added p99 LiteLLM",
        "p99 ratio",
        "CPU ms/req ours",
        "CPU ms/req LiteLLM",
        "RSS MB ours",
        "RSS MB LiteLLM",
    ]
    rows = []
    for (scenario, conc, server), theirs in by.items():
        ours = by.get((scenario, conc, HOT))
        if server != LITELLM or ours is None:
            continue
        rps = ratio(ours.load.rps, theirs.load.rps)
        rows.append(
            [
                scenario,
                str(conc),
                f"{ours.load.rps:,.0f}",
                f"{theirs.load.rps:,.0f}",
                "-" if rps is None else f"{rps:.1f}x",
                signed(ours.added_p50_ms),
                signed(theirs.added_p50_ms),
                ms(ratio(ours.added_p50_ms, theirs.added_p50_ms)),
                signed(ours.added_p99_ms),
                signed(theirs.added_p99_ms),
                ms(ratio(ours.added_p99_ms, theirs.added_p99_ms)),
                ms(ours.cpu.ms_per_request),
                ms(theirs.cpu.ms_per_request),
                ms(ours.peak_rss_mb, 1),
                ms(theirs.peak_rss_mb, 1),
            ]
        )
    return markdown_table(head, rows, {0})


def responses_table(cells: Sequence[Cell], server: str = HOT) -> str:
    """The Responses API next to the chat path it mirrors, on `server`, at each concurrency
    both were measured at; ratios and differences are responses against chat. Empty when no
    pair was measured."""
    by = {(c.scenario, c.concurrency, c.server): c for c in cells}
    head = [
        "responses vs chat",
        "conc",
        "req/s chat",
        "req/s resp",
        "req/s ratio",
        "added p50 chat",
        "added p50 resp",
        "p50 diff",
        "added p99 chat",
        "added p99 resp",
        "CPU ms/req chat",
        "CPU ms/req resp",
        "CPU ratio",
    ]
    rows = []
    for responses, chat in RESPONSES_VS_CHAT:
        levels = sorted({c.concurrency for c in cells if c.scenario == responses})
        for conc in levels:
            ours, theirs = by.get((responses, conc, server)), by.get((chat, conc, server))
            if ours is None or theirs is None:
                continue
            rps = ratio(ours.load.rps, theirs.load.rps)
            cpu = ratio(ours.cpu.ms_per_request, theirs.cpu.ms_per_request)
            more = (
                None
                if ours.added_p50_ms is None or theirs.added_p50_ms is None
                else ours.added_p50_ms - theirs.added_p50_ms
            )
            rows.append(
                [
                    f"{responses} vs {chat}",
                    str(conc),
                    f"{theirs.load.rps:,.0f}",
                    f"{ours.load.rps:,.0f}",
                    "-" if rps is None else f"{rps:.2f}x",
                    signed(theirs.added_p50_ms),
                    signed(ours.added_p50_ms),
                    signed(more),
                    signed(theirs.added_p99_ms),
                    signed(ours.added_p99_ms),
                    ms(theirs.cpu.ms_per_request),
                    ms(ours.cpu.ms_per_request),
                    "-" if cpu is None else f"{cpu:.2f}x",
                ]
            )
    return markdown_table(head, rows, {0}) if rows else ""


def verdict_lines(verdicts: Sequence[Verdict], about: str = f"{HOT}, full pipeline") -> list[str]:
    return [f"{'PASS' if v.met else 'MISS'}  [{about}] {v.text}" for v in verdicts]


def admission_round_trips(
    requests: int, before: Mapping[str, int], after: Mapping[str, int]
) -> list[str]:
    """Redis commands per request that went through admission, from two INFO commandstats
    readings taken before and after the run."""
    if not requests:
        return []
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    busy = {k: v for k, v in sorted(delta.items()) if v > 0 and k not in ("info", "ping")}
    lines = [f"Redis commands per admitted request ({requests:,} requests with admission on):"]
    lines += [f"  {name}: {count / requests:.3f}" for name, count in busy.items()]
    lines.append(
        "  (evalsha is the admission script: ~1 admit on the request path + ~1 settle after "
        "the response; get: key lookups, cached per key for admission.cache_ttl_s)"
    )
    return lines


def access_log_line(server: str, lines: int, requests: int, log_mb: float) -> str:
    share = f"{lines / requests:.2f}" if requests else "-"
    return (
        f"  {server}: {lines:,} access-log lines for {requests:,} requests "
        f"({share} per request; log file {log_mb:,.0f} MB)"
    )


def error_report(cells: Sequence[Cell]) -> list[str]:
    out = []
    for c in cells:
        if not c.load.requests:
            out.append(f"{c.scenario} c={c.concurrency} {c.server}: no request completed")
        elif c.load.errors:
            socket_errs = ", ".join(f"{k} {v}" for k, v in c.load.socket_errors.items() if v)
            out.append(
                f"{c.scenario} c={c.concurrency} {c.server}: non-2xx {c.load.non_2xx}"
                + (f"; socket errors: {socket_errs}" if socket_errs else "")
                + f" (of {c.load.requests} requests)"
            )
    return out


def disturbance_report(cells: Sequence[Cell]) -> list[str]:
    """Cells where processes other than ours or the hypervisor took CPU: on a small machine
    that moves the figures, so say so."""
    return [
        f"{c.scenario} c={c.concurrency} {c.server}: other processes {c.cpu.other_percent:.0f}% "
        f"of a core, steal {c.cpu.steal_percent:.0f}%"
        for c in cells
        if c.cpu.other_percent > 15 or c.cpu.steal_percent > 5
    ]


def proxy_notes(cpus: int) -> str:
    return (
        "added = server minus the direct simulator, same scenario and concurrency, same run "
        "(at c=64/512\nmostly queueing: read it next to req/s). gw-Nw = the full pipeline with "
        "N workers (auth, admission\non redis-server, routing, patches, metrics, access log). "
        "CPU ms/req, CPU % and peak RSS (VmHWM so\nfar, summed over the serving processes) are "
        "the measured server's: the simulator on direct rows.\nAll CPU % are of one core (host "
        f"busy % of all {cpus} cores, max {100 * cpus}). sim CPU % near 100: the\nupstream, not "
        "the gateway, was the limit. wrk and the servers share the cores: host busy near the\n"
        "max means the machine was the limit."
    )


@dataclasses.dataclass(slots=True)
class ProxyRun:
    """Everything a proxy run found, for its report."""

    header: str
    cells: list[Cell]
    verdicts: list[Verdict]
    cpus: int
    litellm_note: str = ""
    redis_lines: list[str] = dataclasses.field(default_factory=list)
    access_lines: list[str] = dataclasses.field(default_factory=list)
    profile_lines: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True, slots=True)
class Section:
    title: str  # "" for the opening lines
    text: str
    table: bool = False  # a markdown table: left as is in the results file, not fenced


def proxy_sections(run: ProxyRun) -> list[Section]:
    """The report's sections after the run's header (printed when the run starts)."""
    out = [
        Section("Cells", cells_table(run.cells), table=True),
        Section("", proxy_notes(run.cpus)),
    ]
    versus = responses_table(run.cells)
    if versus:
        title = f"Responses API vs chat ({HOT}; ratios and diff are responses against chat)"
        out.append(Section(title, versus, table=True))
    if run.litellm_note:
        title = f"vs LiteLLM ({run.litellm_note}); ratios are ours / LiteLLM's"
        out.append(Section(title, litellm_table(run.cells), table=True))
    if run.redis_lines:
        out.append(Section("", "\n".join(run.redis_lines)))
    if run.access_lines:
        out.append(
            Section(
                "Access log (gateway stderr to a file, default log level info; wrk leaves up to c"
                " requests in flight at the end of each run, which are logged but not counted)",
                "\n".join(run.access_lines),
            )
        )
    out.append(Section("Verdict", "\n".join("  " + v for v in verdict_lines(run.verdicts))))
    if run.profile_lines:
        out.append(Section("Profile", "\n".join(run.profile_lines)))
    return out + health_sections(run.cells)


def health_sections(cells: Sequence[Cell]) -> list[Section]:
    """The report's last sections: the cells other processes disturbed, and the errors (a
    LiteLLM cell's apart: they do not count against the run)."""
    out = []
    disturbed = disturbance_report(cells)
    if disturbed:
        title = (
            "!! CPU taken by something else during some cells (figures there are pessimistic;"
            " re-run on a quiet machine)"
        )
        out.append(Section(title, "\n".join("!!   " + line for line in disturbed)))
    theirs = error_report([c for c in cells if c.kind == "litellm"])
    if theirs:
        title = "LiteLLM cells with errors (reported, not counted against this run)"
        out.append(Section(title, "\n".join("  " + line for line in theirs)))
    ours = error_report([c for c in cells if c.kind != "litellm"])
    if ours:
        title = "!! THIS RUN HAD ERRORS: the figures above are not trustworthy"
        out.append(Section(title, "\n".join("!!   " + line for line in ours)))
    else:
        text = "No errors: every response of ours and the simulator's was 2xx, no socket errors."
        out.append(Section("", text))
    return out


def as_text(sections: Sequence[Section]) -> str:
    """For the terminal: each section's title on a line of its own, then its text."""
    return "\n\n".join(f"{s.title}:\n{s.text}" if s.title else s.text for s in sections)


def as_markdown(sections: Sequence[Section]) -> str:
    """For the results file: titles as headings, tables as tables, the rest fenced so that its
    alignment survives."""
    parts = []
    for s in sections:
        if s.title:
            parts.append(f"## {s.title}")
        parts.append(s.text if s.table else f"```\n{s.text}\n```")
    return "\n\n".join(parts)


RECORD_DECIMALS = 4  # finer than any figure is measured; drops float noise like 0.8599999999


def _plain(value: Any) -> Any:
    """Figures as JSON takes them: an unmeasured one (NaN) as null, the others rounded."""
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, RECORD_DECIMALS)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def cell_record(cell: Cell) -> dict[str, Any]:
    """A cell as plain JSON data, without wrk's raw output."""
    record = dataclasses.asdict(cell)
    record["load"].pop("raw", None)
    plain: dict[str, Any] = _plain(record)
    return plain


def options_record(options: Mapping[str, Any]) -> dict[str, Any]:
    """Command-line options as JSON data: anything JSON has no type for (a path) as text."""
    plain = (str, int, float, bool, list, dict, type(None))
    return {k: v if isinstance(v, plain) else str(v) for k, v in options.items()}


def proxy_record(run: ProxyRun, options: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "header": run.header,
        "options": options_record(options),
        "cells": [cell_record(c) for c in run.cells],
        "verdicts": [{"met": v.met, "text": v.text} for v in run.verdicts],
        "litellm": run.litellm_note or None,
        "errors": error_report([c for c in run.cells if c.kind != "litellm"]),
        "disturbed": disturbance_report(run.cells),
    }


# -- py-spy ---------------------------------------------------------------------------------------

_PROFILE_BUCKETS = {
    "cyclic GC (gc_collect_main)": r"^gc_collect_main ",
    "socket write syscalls": r"^(write|writev|sendmsg|send) \(libc",
    "socket read syscalls": r"^(read|recv|recvmsg|readv) \(libc",
    "event loop wait (epoll)": r"^epoll_\w+ \(libc",
    # The entry frames (gateway/__main__.py, gateway/cli/) are on every stack.
    "gateway/ request code (cumulative)": r"\(gateway/(?!__main__|cli)",
    "prometheus_client (cumulative)": r"\(prometheus_client/",
}


def summarize_profile(raw: str, top: int = 15) -> list[str]:
    """Top self-time frames and a few cumulative buckets from py-spy's raw (collapsed) output:
    one line a stack, frames joined by ";", then a space and the sample count."""
    self_time: dict[str, int] = {}
    bucket_time = dict.fromkeys(_PROFILE_BUCKETS, 0)
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        self_time[frames[-1]] = self_time.get(frames[-1], 0) + n
        for name, pattern in _PROFILE_BUCKETS.items():
            if any(re.search(pattern, f) for f in frames):
                bucket_time[name] += n
    if not total:
        return ["(py-spy recorded no samples)"]
    out = [f"  top self time ({total} samples):"]
    for frame, n in sorted(self_time.items(), key=lambda kv: -kv[1])[:top]:
        out.append(f"    {100 * n / total:5.1f}%  {frame[:110]}")
    out.append("  buckets (a sample counts once per bucket):")
    out += [f"    {100 * n / total:5.1f}%  {name}" for name, n in bucket_time.items()]
    return out


# -- results files --------------------------------------------------------------------------------


def result_stem(day: str, benchmark: str, taken: Collection[str]) -> str:
    """The name (without extension) of a run's results files: the ISO day and the benchmark,
    `2026-12-05-proxy`; a later run of the same day gets `-2`, `-3`, ... rather than overwrite
    one. `taken` holds the stems already in the results folder."""
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", day):
        raise ValueError(f"not an ISO day: {day!r}")
    if not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", benchmark):
        raise ValueError(f"not a benchmark name: {benchmark!r}")
    stem = f"{day}-{benchmark}"
    n = 1
    while (stem if n == 1 else f"{stem}-{n}") in taken:
        n += 1
    return stem if n == 1 else f"{stem}-{n}"


# -- soak -----------------------------------------------------------------------------------------


def soak_table(run: SoakRun) -> str:
    requests = sum(run.statuses.values())
    rate = requests / run.requests_s if run.requests_s > 0 else 0.0
    statuses = dict(sorted(run.statuses.items()))
    rows = [
        ["gateway RSS at start (idle)", f"{run.idle_mb:.1f} MB"],
        [
            "requests",
            f"{requests:,} in {run.requests_s:.0f} s ({rate:,.0f}/s), statuses {statuses}",
        ],
        [f"RSS after warm-up ({run.warmup:,} requests)", f"{run.warmup_mb:.1f} MB"],
        *([f"RSS at {mark} of requests", f"{mb:.1f} MB"] for mark, mb in run.marks_mb.items()),
        [
            f"slope after warm-up (least squares, {run.slope_samples} samples)",
            f"{run.slope_mb_per_10k:+.3f} MB / 10k",
        ],
        *(
            [
                f"stream round {i}: {run.streams:,} streams ({r.complete:,} complete, "
                f"{r.failed} failed, {r.most_open:,} open at once, {r.seconds:.0f} s)",
                f"before {r.before_mb:.1f} MB, peak {r.peak_mb:.1f} MB, after {r.after_mb:.1f} MB",
            ]
            for i, r in enumerate(run.rounds, 1)
        ),
        ["after the last round minus after the first", f"{run.round_growth_mb:+.1f} MB"],
        ["total run time", f"{run.total_s:.0f} s"],
    ]
    return markdown_table(["measure", "value"], rows, {0, 1})


def soak_record(run: SoakRun, options: Mapping[str, Any], verdict: str) -> dict[str, Any]:
    run_data: dict[str, Any] = _plain(dataclasses.asdict(run))
    return {"options": options_record(options), "run": run_data, "verdict": verdict}


def soak_verdict(run: SoakRun) -> str:
    flat = soak_flat(run.slope_mb_per_10k, run.round_growth_mb)
    return (
        f"verdict: {'FLAT' if flat else 'NOT FLAT'} (slope {run.slope_mb_per_10k:+.3f} MB per "
        f"10k requests, limit {SOAK_SLOPE_MB_PER_10K:g}; stream rounds "
        f"{run.round_growth_mb:+.1f} MB apart, limit {SOAK_ROUND_GROWTH_MB:g}); "
        f"errors: {run.errors}" + ("; the gateway log has a Traceback" if run.traceback else "")
    )


# -- A/B ------------------------------------------------------------------------------------------


def times(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"x{value:.3f}"


def _interval(interval: Interval, show: Callable[[float], str]) -> str:
    if math.isnan(interval.low):
        return "-"
    return f"{show(interval.low)} .. {show(interval.high)} ({100 * interval.confidence:.0f}%)"


def _cpu_ratio(c: ScenarioComparison, which: str) -> float | None:
    if which == "throughput":
        return ratio(c.throughput.b_cpu_ms_all, c.throughput.a_cpu_ms_all)
    return ratio(c.latency.b_cpu_ms_all, c.latency.a_cpu_ms_all)


def _judged(met: bool) -> str:
    return "OK" if met else "REGRESSION"


def ab_table(comparisons: Sequence[ScenarioComparison]) -> str:
    """Per scenario and measure: A's and B's figure, B against A (the median of the rounds'
    pairs), the interval of that median, what would make it a regression, and the verdict."""
    head = ["scenario", "measure", "A", "B", "B vs A", "interval", "regression if", "verdict"]
    rows = []
    for c in comparisons:
        t, lat = c.throughput, c.latency
        rows += [
            [
                c.scenario,
                f"req/s at c={t.connections}",
                f"{median(t.a_rps):,.0f}",
                f"{median(t.b_rps):,.0f}",
                times(t.median_ratio),
                _interval(t.interval, times),
                f"B vs A < {times(RPS_RATIO_FLOOR)} and interval < x1",
                _judged(t.met),
            ],
            [
                c.scenario,
                "added p50 ms at c=1",
                signed(median(lat.a_added)),
                signed(median(lat.b_added)),
                signed(lat.median_difference),
                _interval(lat.interval, signed),
                f"B vs A > {signed(ADDED_P50_FLOOR_MS)} and interval > 0",
                _judged(lat.met),
            ],
            [
                c.scenario,
                f"CPU ms/req at c={t.connections}",
                ms(t.a_cpu_ms_all),
                ms(t.b_cpu_ms_all),
                times(_cpu_ratio(c, "throughput")),
                "",
                "not judged",
                "",
            ],
            [
                c.scenario,
                "CPU ms/req at c=1",
                ms(lat.a_cpu_ms_all),
                ms(lat.b_cpu_ms_all),
                times(_cpu_ratio(c, "latency")),
                "",
                "not judged",
                "",
            ],
        ]
    return markdown_table(head, rows, {0, 1, 6, 7})


def latency_rounds_table(lat: AddedLatency) -> str:
    head = [
        "round",
        "direct p50 ms",
        "A p50 ms",
        "B p50 ms",
        "A added ms",
        "B added ms",
        "B - A ms",
        "other CPU %",
    ]
    columns = [lat.direct_p50, lat.a_p50, lat.b_p50, lat.a_added, lat.b_added, lat.differences]
    rows = [
        [
            str(i + 1),
            ms(lat.direct_p50[i]),
            ms(lat.a_p50[i]),
            ms(lat.b_p50[i]),
            signed(lat.a_added[i]),
            signed(lat.b_added[i]),
            signed(lat.differences[i]),
            ms(lat.other_percent[i], 0),
        ]
        for i in range(len(lat.a_p50))
    ]
    mid = [median(col) for col in columns]
    rows.append(
        ["median", *(ms(v) for v in mid[:3]), *(signed(v) for v in mid[3:]), ""],
    )
    return markdown_table(head, rows, {0})


def throughput_rounds_table(t: Throughput) -> str:
    head = ["round", "A req/s", "B req/s", "B/A", "A CPU ms/req", "B CPU ms/req", "other CPU %"]
    rows = [
        [
            str(i + 1),
            f"{t.a_rps[i]:,.0f}",
            f"{t.b_rps[i]:,.0f}",
            times(t.ratios[i]),
            ms(t.a_cpu_ms[i]),
            ms(t.b_cpu_ms[i]),
            ms(t.other_percent[i], 0),
        ]
        for i in range(len(t.a_rps))
    ]
    rows.append(
        [
            "median",
            f"{median(t.a_rps):,.0f}",
            f"{median(t.b_rps):,.0f}",
            times(t.median_ratio),
            ms(t.a_cpu_ms_all),
            ms(t.b_cpu_ms_all),
            "",
        ]
    )
    return markdown_table(head, rows, {0})


def _reason(worse_median: bool, interval_clear: bool, measured: bool) -> str:
    if not measured:
        return "a round was not measured"
    if worse_median and interval_clear:
        return "worse than the floor, and the whole interval on the worse side"
    if worse_median:
        return "worse than the floor, but the interval reaches no change: the rounds disagree"
    return "within the floor"


def ab_verdict_lines(comparisons: Sequence[ScenarioComparison]) -> list[str]:
    """One line a judged measure, then the run's verdict."""
    out = []
    for c in comparisons:
        t, lat = c.throughput, c.latency
        measured = not math.isnan(t.median_ratio) and not math.isnan(t.interval.high)
        why = _reason(t.median_ratio < RPS_RATIO_FLOOR, t.interval.high < 1, measured)
        out.append(
            f"{_judged(t.met):<10}  {c.scenario} req/s at c={t.connections}: median B/A "
            f"{times(t.median_ratio)} over {len(t.ratios)} rounds, interval "
            f"{_interval(t.interval, times)}; floor {times(RPS_RATIO_FLOOR)}: {why}"
        )
        measured = not math.isnan(lat.median_difference) and not math.isnan(lat.interval.low)
        worse = lat.median_difference > ADDED_P50_FLOOR_MS
        why = _reason(worse, lat.interval.low > 0, measured)
        out.append(
            f"{_judged(lat.met):<10}  {c.scenario} added p50 at c=1: median B - A "
            f"{signed(lat.median_difference)} ms over {len(lat.differences)} rounds, interval "
            f"{_interval(lat.interval, signed)}; floor {signed(ADDED_P50_FLOOR_MS)} ms: {why}"
        )
    found = regressions(comparisons)
    if not comparisons:
        out.append("verdict: nothing compared")
    elif found:
        out.append("verdict: REGRESSION beyond noise in " + "; ".join(found))
    else:
        out.append("verdict: no regression beyond noise")
    return out


def ab_notes(cpus: int) -> str:
    return (
        "A and B take turns in every round (c=1 with the direct simulator), in a rotating order;\n"
        "each round's B is paired with the same round's A. A, B: the median of their rounds\n"
        "(CPU: over all rounds). B vs A: the median of the pairs, B/A for req/s and CPU, B - A\n"
        "for added p50 (each version's p50 minus the direct simulator's in the same round).\n"
        "interval: from the k-th lowest to the k-th highest pair, which holds the pairs' true\n"
        "median that often (sign test; k = 1 up to 7 rounds, 2 for 8 to 10). A regression beyond\n"
        "noise: the median worse than the floor and the whole interval on the worse side of no\n"
        "change. other CPU %: the most that processes not ours took during one of the round's\n"
        f"turns, in % of one core ({cpus} cores)."
    )


@dataclasses.dataclass(slots=True)
class ABRun:
    """Everything an A/B run found, for its report."""

    header: str
    baseline: str  # what A ran: a revision and its subject, or a directory
    candidate: str  # what B ran
    comparisons: list[ScenarioComparison]
    cells: list[Cell]  # each server's slices added up, per scenario and concurrency
    cpus: int


def ab_sections(run: ABRun) -> list[Section]:
    """The report's sections after the run's header (printed when the run starts)."""
    out = [
        Section(f"A/B: A = {run.baseline}; B = {run.candidate}", ab_table(run.comparisons), True),
        Section("", ab_notes(run.cpus)),
    ]
    for c in run.comparisons:
        title = f"{c.scenario} at c=1, round by round"
        out.append(Section(title, latency_rounds_table(c.latency), table=True))
        title = f"{c.scenario} at c={c.throughput.connections}, round by round"
        out.append(Section(title, throughput_rounds_table(c.throughput), table=True))
    out.append(Section("Cells (each server's slices added up)", cells_table(run.cells), True))
    lines = ab_verdict_lines(run.comparisons)
    out.append(Section("Verdict", "\n".join("  " + line for line in lines)))
    return out + health_sections(run.cells)


def _comparison_record(c: ScenarioComparison) -> dict[str, Any]:
    t, lat = c.throughput, c.latency
    record = {
        "scenario": c.scenario,
        "throughput": {
            **dataclasses.asdict(t),
            "ratios": t.ratios,
            "median_ratio": t.median_ratio,
            "interval": dataclasses.asdict(t.interval),
            "met": t.met,
        },
        "latency": {
            **dataclasses.asdict(lat),
            "a_added": lat.a_added,
            "b_added": lat.b_added,
            "differences": lat.differences,
            "median_difference": lat.median_difference,
            "interval": dataclasses.asdict(lat.interval),
            "met": lat.met,
        },
    }
    plain: dict[str, Any] = _plain(record)
    return plain


def ab_record(run: ABRun, options: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "header": run.header,
        "baseline": run.baseline,
        "candidate": run.candidate,
        "options": options_record(options),
        "no_regression": no_regression(run.comparisons),
        "regressions": regressions(run.comparisons),
        "verdicts": ab_verdict_lines(run.comparisons),
        "comparisons": [_comparison_record(c) for c in run.comparisons],
        "cells": [cell_record(c) for c in run.cells],
        "errors": error_report(run.cells),
        "disturbed": disturbance_report(run.cells),
    }
