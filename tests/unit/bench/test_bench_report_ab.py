"""bench.report, A/B runs: the side-by-side table, the round-by-round tables, the verdict lines
and the record."""

from __future__ import annotations

import json
import math

from bench.comparison import ScenarioComparison, compare_scenario
from bench.measurement import Cell
from bench.report import (
    ABRun,
    ab_record,
    ab_sections,
    ab_table,
    ab_verdict_lines,
    as_text,
    latency_rounds_table,
    throughput_rounds_table,
)
from tests.unit.bench.bench_cells import make_cell


def _cells(server: str, concurrency: int, values: list[float], **more: float) -> list[Cell]:
    figure = "rps" if concurrency > 1 else "p50_ms"
    return [make_cell(server, "non-stream", concurrency, **{figure: v}, **more) for v in values]


def _comparison(b_rps: list[float], b_p50: list[float]) -> ScenarioComparison:
    at_1 = {
        "direct": _cells("direct", 1, [0.10, 0.12, 0.11]),
        "A": _cells("A", 1, [0.60, 0.63, 0.61], ms_per_request=0.5),
        "B": _cells("B", 1, b_p50, ms_per_request=0.45),
    }
    at_64 = {
        "A": _cells("A", 64, [3000.0, 3100.0, 3050.0], ms_per_request=0.25),
        "B": _cells("B", 64, b_rps, ms_per_request=0.3, other_percent=20.0),
    }
    return compare_scenario("non-stream", at_1, at_64, 64)


def _columns(line: str) -> list[str]:
    return [c.strip() for c in line.strip("|").split("|")]


def test_ab_table_sets_a_next_to_b_with_the_rounds_and_the_bound() -> None:
    rows = ab_table([_comparison([2990.0, 3120.0, 3000.0], [0.61, 0.64, 0.60])]).splitlines()
    assert _columns(rows[0]) == [
        "scenario",
        "measure",
        "A",
        "B",
        "B vs A",
        "interval",
        "regression if",
        "verdict",
    ]
    assert len(rows) == 2 + 4  # head, rule, req/s, added p50, CPU at c=64 and at c=1
    assert _columns(rows[2]) == [
        "non-stream",
        "req/s at c=64",
        "3,050",
        "3,000",
        "x0.997",
        "x0.984 .. x1.006 (75%)",
        "B vs A < x0.970 and interval < x1",
        "OK",
    ]
    assert _columns(rows[3]) == [
        "non-stream",
        "added p50 ms at c=1",
        "+0.500",
        "+0.510",
        "+0.010",
        "-0.010 .. +0.010 (75%)",
        "B vs A > +0.050 and interval > 0",
        "OK",
    ]
    assert _columns(rows[4])[:5] == ["non-stream", "CPU ms/req at c=64", "0.250", "0.300", "x1.200"]
    assert _columns(rows[5])[:5] == ["non-stream", "CPU ms/req at c=1", "0.500", "0.450", "x0.900"]


def test_rounds_tables_show_every_round_and_the_medians() -> None:
    c = _comparison([2990.0, 3120.0, 3000.0], [0.61, 0.64, 0.70])
    latency = latency_rounds_table(c.latency).splitlines()
    assert len(latency) == 2 + 3 + 1
    assert _columns(latency[4]) == [
        "3",
        "0.110",
        "0.610",
        "0.700",
        "+0.500",
        "+0.590",
        "+0.090",
        "0",
    ]
    assert _columns(latency[-1])[:7] == [
        "median",
        "0.110",
        "0.610",
        "0.640",
        "+0.500",
        "+0.520",
        "+0.010",
    ]
    throughput = throughput_rounds_table(c.throughput).splitlines()
    assert _columns(throughput[2]) == ["1", "3,000", "2,990", "x0.997", "0.250", "0.300", "20"]
    assert _columns(throughput[-1]) == ["median", "3,050", "3,000", "x0.997", "0.250", "0.300", ""]


def test_verdict_lines_name_each_measure_then_the_run() -> None:
    fine = _comparison([2990.0, 3120.0, 3000.0], [0.61, 0.64, 0.60])
    lines = ab_verdict_lines([fine])
    assert lines[0] == (
        "OK          non-stream req/s at c=64: median B/A x0.997 over 3 rounds, interval "
        "x0.984 .. x1.006 (75%); floor x0.970: within the floor"
    )
    assert lines[1] == (
        "OK          non-stream added p50 at c=1: median B - A +0.010 ms over 3 rounds, "
        "interval -0.010 .. +0.010 (75%); floor +0.050 ms: within the floor"
    )
    assert lines[-1] == "verdict: no regression beyond noise"
    slower = _comparison([2500.0, 2600.0, 2550.0], [0.61, 0.64, 0.60])
    lines = ab_verdict_lines([slower])
    assert lines[0].startswith("REGRESSION  non-stream req/s at c=64")
    assert lines[0].endswith("worse than the floor, and the whole interval on the worse side")
    assert lines[-1] == "verdict: REGRESSION beyond noise in non-stream req/s at c=64"
    disagree = _comparison([2500.0, 3200.0, 2550.0], [0.61, 0.64, 0.60])
    assert ab_verdict_lines([disagree])[0].endswith(
        "the interval reaches no change: the rounds disagree"
    )
    assert ab_verdict_lines([]) == ["verdict: nothing compared"]


def test_ab_sections_and_record() -> None:
    c = _comparison([2990.0, math.nan, 3000.0], [0.61, 0.64, 0.60])
    run = ABRun("header", "eccd4bc subject", "working tree at 1234567", [c], [make_cell("A")], 2)
    sections = ab_sections(run)
    assert [s.title for s in sections[:4]] == [
        "A/B: A = eccd4bc subject; B = working tree at 1234567",
        "",
        "non-stream at c=1, round by round",
        "non-stream at c=64, round by round",
    ]
    text = as_text(sections)
    assert "verdict: REGRESSION beyond noise in non-stream req/s at c=64" in text
    assert text.endswith("no socket errors.")
    record = ab_record(run, {"baseline": "eccd4bc", "quick": True})
    assert json.loads(json.dumps(record, allow_nan=False)) == record
    assert record["no_regression"] is False
    assert record["regressions"] == ["non-stream req/s at c=64"]
    throughput = record["comparisons"][0]["throughput"]
    assert throughput["b_rps"] == [2990.0, None, 3000.0]
    assert throughput["median_ratio"] is None
    assert throughput["interval"] == {"low": None, "high": None, "confidence": 0.75}
    latency = record["comparisons"][0]["latency"]
    assert latency["differences"] == [0.01, 0.01, -0.01]
    assert latency["met"] is True
