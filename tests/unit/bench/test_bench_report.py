"""bench.report: tables, verdict lines, records and the dated names of results files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bench.measurement import SoakRun, StreamRound
from bench.report import (
    ProxyRun,
    Section,
    admission_round_trips,
    as_markdown,
    as_text,
    cell_line,
    cell_record,
    cells_table,
    disturbance_report,
    error_report,
    litellm_table,
    markdown_table,
    options_record,
    proxy_sections,
    result_stem,
    soak_table,
    soak_verdict,
    summarize_profile,
    verdict_lines,
)
from bench.targets import Verdict
from tests.unit.bench.bench_cells import make_cell


def test_markdown_table_pads_text_left_and_figures_right() -> None:
    table = markdown_table(["name", "req/s"], [["gw-1w", "3,897"], ["direct", "12"]], {0})
    assert table.splitlines() == [
        "| name   | req/s |",
        "|--------|------:|",
        "| gw-1w  | 3,897 |",
        "| direct |    12 |",
    ]


def test_cells_table_row_shows_figures_and_dashes_for_the_unmeasured() -> None:
    cell = make_cell(
        "gw-1w", "stream", 1, rps=634.4, p50_ms=0.69, p99_ms=1.2, ms_per_request=1.13,
        percent=71.6, redis_percent=None, peak_rss_mb=None, added_p50_ms=0.54,
    )  # fmt: skip
    row = cells_table([cell]).splitlines()[2]
    columns = [c.strip() for c in row.strip("|").split("|")]
    assert columns == [
        "stream", "1", "gw-1w", "634", "0.690", "1.200", "+0.540", "-", "1.130", "72", "50",
        "-", "0", "0", "-", "0",
    ]  # fmt: skip


def test_cell_line_flags_errors_and_empty_cells() -> None:
    fine = cell_line(make_cell(rps=3897.0, p50_ms=15.8, ms_per_request=0.25))
    assert "3,897 req/s  p50 15.800 ms" in fine and "CPU 0.250 ms/req" in fine
    assert "!!" not in fine
    assert cell_line(make_cell(non_2xx=4)).endswith("!! 4 errors")
    empty = make_cell(requests=0, p50_ms=math.nan, p99_ms=math.nan, ms_per_request=None)
    line = cell_line(empty)
    assert line.endswith("!! no request completed") and "p50 - ms" in line


def test_litellm_table_sets_ours_next_to_theirs() -> None:
    cells = [
        make_cell("gw-1w", rps=4000.0, added_p50_ms=1.0),
        make_cell("litellm-1w", rps=100.0, added_p50_ms=50.0),
        make_cell("gw-2w", rps=6000.0),
    ]
    rows = litellm_table(cells).splitlines()
    assert len(rows) == 3  # head, rule, one row
    columns = [c.strip() for c in rows[2].strip("|").split("|")]
    assert columns[:8] == [
        "non-stream",
        "64",
        "4,000",
        "100",
        "40.0x",
        "+1.000",
        "+50.000",
        "0.020",
    ]


def test_verdict_lines_say_pass_or_miss_and_about_whom() -> None:
    lines = verdict_lines([Verdict(True, "a"), Verdict(False, "b")])
    assert lines == ["PASS  [gw-1w, full pipeline] a", "MISS  [gw-1w, full pipeline] b"]


def test_admission_round_trips_per_request_leave_out_housekeeping() -> None:
    lines = admission_round_trips(
        1000,
        before={"evalsha": 10, "get": 5, "info": 1},
        after={"evalsha": 2010, "get": 55, "info": 9, "ping": 3, "script": 1},
    )
    assert lines[0] == "Redis commands per admitted request (1,000 requests with admission on):"
    assert lines[1:4] == ["  evalsha: 2.000", "  get: 0.050", "  script: 0.001"]
    assert admission_round_trips(0, {}, {"evalsha": 5}) == []


def test_error_and_disturbance_reports_name_the_cells() -> None:
    cells = [
        make_cell("gw-1w", non_2xx=2, socket_errors={"read": 1, "timeout": 0}, requests=900),
        make_cell("direct", requests=0),
        make_cell("gw-2w", other_percent=40.0),
        make_cell("gw-1w", "stream", steal_percent=6.0),
        make_cell("gw-1w", "stream", other_percent=15.0, steal_percent=5.0),
    ]
    assert error_report(cells) == [
        "non-stream c=64 gw-1w: non-2xx 2; socket errors: read 1 (of 900 requests)",
        "non-stream c=64 direct: no request completed",
    ]
    assert disturbance_report(cells) == [
        "non-stream c=64 gw-2w: other processes 40% of a core, steal 0%",
        "stream c=64 gw-1w: other processes 0% of a core, steal 6%",
    ]


def test_cell_record_is_strict_json_without_wrk_output() -> None:
    cell = make_cell(p50_ms=math.nan, p99_ms=0.8599999999999999, added_p50_ms=0.5)
    cell.load.raw = "Running 3s test ..."
    cell.round_added_p50_ms = (0.4, math.nan)
    record = cell_record(cell)
    assert "raw" not in record["load"]
    assert record["load"]["p50_ms"] is None
    assert record["load"]["p99_ms"] == 0.86
    assert record["round_added_p50_ms"] == [0.4, None]
    assert record["cpu"]["ms_per_request"] == 0.3
    assert json.loads(json.dumps(record, allow_nan=False)) == record


def test_options_record_writes_paths_as_text() -> None:
    options = {
        "quick": True,
        "results_dir": Path("/tmp/r"),
        "concurrency": [1, 64],
        "profile": None,
    }
    assert options_record(options) == {
        "quick": True,
        "results_dir": "/tmp/r",
        "concurrency": [1, 64],
        "profile": None,
    }


def test_proxy_sections_in_text_and_markdown() -> None:
    run = ProxyRun(
        header="o1-gateway benchmark (full pipeline): 2 CPUs",
        cells=[make_cell()],
        verdicts=[Verdict(True, "non-stream at c=64: 3,000 req/s")],
        cpus=2,
    )
    sections = proxy_sections(run)
    titles = [s.title for s in sections]
    assert titles == ["Cells", "", "Verdict", ""]
    assert sections[-1].text.startswith("No errors")
    text = as_text(sections)
    assert "Verdict:\n  PASS  [gw-1w, full pipeline] non-stream at c=64: 3,000 req/s" in text
    markdown = as_markdown([Section("", run.header), *sections])
    assert markdown.startswith("```\no1-gateway benchmark (full pipeline): 2 CPUs\n```")
    assert "## Cells\n\n| scenario" in markdown  # a table stays a table
    assert "## Verdict\n\n```\n  PASS" in markdown


def test_a_run_with_errors_says_so_last() -> None:
    run = ProxyRun(header="h", cells=[make_cell(non_2xx=1)], verdicts=[], cpus=2)
    last = proxy_sections(run)[-1]
    assert last.title.startswith("!! THIS RUN HAD ERRORS")
    assert as_text([Section("", "x"), last]).startswith("x\n\n!! THIS RUN HAD ERRORS")


def test_summarize_profile_counts_self_time_and_buckets() -> None:
    raw = "\n".join(
        [
            "main (gateway/__main__.py:3);handle (gateway/endpoints/chat.py:40);dumps (orjson:1) 6",
            "main (gateway/__main__.py:3);run (asyncio/base_events.py:9);epoll_wait (libc.so.6) 3",
            "main (gateway/__main__.py:3);gc_collect_main (python3.11) 1",
            "not a sample line",
        ]
    )
    lines = summarize_profile(raw)
    assert lines[0] == "  top self time (10 samples):"
    assert lines[1] == "     60.0%  dumps (orjson)"
    assert "     60.0%  gateway/ request code (cumulative)" in lines
    assert "     30.0%  event loop wait (epoll)" in lines
    assert "     10.0%  cyclic GC (gc_collect_main)" in lines
    assert summarize_profile("") == ["(py-spy recorded no samples)"]


def test_result_stem_is_dated_and_never_reuses_a_name() -> None:
    assert result_stem("2026-12-05", "proxy", set()) == "2026-12-05-proxy"
    taken = {"2026-12-05-proxy", "2026-12-05-proxy-2", "2026-12-04-soak"}
    assert result_stem("2026-12-05", "proxy", taken) == "2026-12-05-proxy-3"
    assert result_stem("2026-12-05", "proxy-quick", taken) == "2026-12-05-proxy-quick"
    assert result_stem("2026-12-05", "soak", taken) == "2026-12-05-soak"
    with pytest.raises(ValueError):
        result_stem("5 Dec 2026", "proxy", set())
    with pytest.raises(ValueError):
        result_stem("2026-12-05", "../proxy", set())


def _soak_run(slope: float, after_second_mb: float, traceback: bool = False) -> SoakRun:
    return SoakRun(
        idle_mb=93.2,
        statuses={200: 20_000},
        requests_s=8.0,
        warmup=2000,
        warmup_mb=101.0,
        marks_mb={"25%": 101.5, "100%": 102.0},
        slope_mb_per_10k=slope,
        slope_samples=7,
        streams=300,
        rounds=(
            StreamRound(102.0, 140.0, 104.0, 300, 0, 300, 7.2),
            StreamRound(104.0, 141.0, after_second_mb, 300, 0, 300, 7.1),
        ),
        total_s=31.0,
        traceback=traceback,
    )


def test_soak_table_and_verdict() -> None:
    run = _soak_run(0.12, 105.0)
    table = soak_table(run)
    assert "| requests" in table and "20,000 in 8 s (2,500/s), statuses {200: 20000}" in table
    assert "| RSS at 25% of requests" in table
    assert "before 104.0 MB, peak 141.0 MB, after 105.0 MB" in table
    assert "| +1.0 MB" in table
    assert soak_verdict(run) == (
        "verdict: FLAT (slope +0.120 MB per 10k requests, limit 1; stream rounds +1.0 MB apart,"
        " limit 5); errors: 0"
    )
    grown = soak_verdict(_soak_run(0.12, 112.0, traceback=True))
    assert grown.startswith("verdict: NOT FLAT")
    assert grown.endswith("; the gateway log has a Traceback")
