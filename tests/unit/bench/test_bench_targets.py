"""bench.targets: which goals a proxy run meets (the Responses API against chat too), and when
soak memory counts as flat."""

from __future__ import annotations

import pytest

from bench.measurement import Cell
from bench.targets import (
    FRESH,
    HOT,
    LITELLM,
    added_allowance_ms,
    proxy_verdicts,
    responses_verdicts,
    soak_flat,
)
from tests.unit.bench.bench_cells import make_cell


def _c1(server: str, scenario: str, added_p50: float, added_p99: float) -> Cell:
    return make_cell(
        server, scenario, 1, added_p50_ms=added_p50, added_p99_ms=added_p99, rps=1500.0
    )


def _a_good_run() -> list[Cell]:
    cells = [_c1(HOT, s, 0.45, 0.70) for s in ("non-stream", "stream", "o1-fake-stream")]
    cells.append(make_cell("direct", "non-stream", 64, rps=9000.0))
    cells.append(make_cell(HOT, "non-stream", 64, rps=3897.0, ms_per_request=0.25))
    cells.append(make_cell(FRESH, "stream", 512, peak_rss_mb=128.0))
    cells.append(make_cell(FRESH, "o1-fake-stream", 512, peak_rss_mb=132.5))
    return cells


def test_a_run_that_meets_every_goal() -> None:
    verdicts = proxy_verdicts(_a_good_run())
    assert all(v.met for v in verdicts)
    texts = [v.text for v in verdicts]
    assert len(texts) == 9  # 3 scenarios x (p50, p99), req/s, CPU, RSS
    assert "added p50 at c=1, stream: 0.450 ms (target < 0.6 ms)" in texts
    assert "non-stream at c=64: 3,897 req/s (target >= 2,500; direct simulator 9,000 req/s)" in (
        texts
    )
    assert "CPU per proxied request, non-stream at c=64: 0.250 ms (target < 0.35 ms)" in texts
    # The larger of the two streamed scenarios is the one judged.
    assert (
        "peak RSS with 512 concurrent streams (o1-fake-stream, a fresh process): 132.5 MB "
        "(target < 150 MB)"
    ) in texts


def test_limits_are_strict_for_latency_cpu_and_memory_and_inclusive_for_throughput() -> None:
    cells = [
        _c1(HOT, "non-stream", 0.6, 3.0),
        make_cell(HOT, "non-stream", 64, rps=2500.0, ms_per_request=0.35),
        make_cell(FRESH, "stream", 512, peak_rss_mb=150.0),
    ]
    met = {v.text.split(":")[0]: v.met for v in proxy_verdicts(cells)}
    assert met == {
        "added p50 at c=1, non-stream": False,
        "added p99 at c=1, non-stream": False,
        "non-stream at c=64": True,
        "CPU per proxied request, non-stream at c=64": False,
        "peak RSS with 512 concurrent streams (stream, a fresh process)": False,
    }


def test_cells_not_measured_give_no_verdict() -> None:
    assert proxy_verdicts([make_cell("direct", "non-stream", 64)]) == []
    # At c=1 without a direct baseline there is no added latency to judge.
    assert proxy_verdicts([make_cell(HOT, "stream", 1)]) == []
    # Non-streamed 512 connections are not about holding streams.
    assert proxy_verdicts([make_cell(FRESH, "non-stream", 512, peak_rss_mb=400.0)]) == []


def test_each_rounds_added_p50_is_shown_on_the_c1_line() -> None:
    cell = _c1(HOT, "non-stream", 0.47, 0.7)
    cell.round_added_p50_ms = (0.45, 0.5, -0.01)
    first = proxy_verdicts([cell])[0]
    assert first.text.endswith("(target < 0.6 ms); by round +0.450, +0.500, -0.010")


def test_litellm_goals_compare_throughput_and_added_latency() -> None:
    cells = [
        make_cell(HOT, "non-stream", 64, rps=4000.0),
        make_cell(LITELLM, "non-stream", 64, rps=100.0),
        make_cell(HOT, "stream", 64, rps=1000.0),
        make_cell(LITELLM, "stream", 64, rps=80.0),
        _c1(HOT, "non-stream", 0.5, 0.7),
        _c1(LITELLM, "non-stream", 10.0, 20.0),
        _c1(HOT, "stream", -0.02, 0.7),  # faster than direct: counted as zero added
        _c1(LITELLM, "stream", 70.0, 90.0),
    ]
    litellm = {v.text: v.met for v in proxy_verdicts(cells) if "LiteLLM" in v.text}
    assert litellm == {
        "vs LiteLLM, non-stream at c=64: 40.0x its req/s (target >= 20x)": True,
        "vs LiteLLM, non-stream at c=1: added p50 0.500 ms vs 10.000 ms = 0.050 "
        "(target <= 0.1)": True,
        "vs LiteLLM, stream at c=64: 12.5x its req/s (target >= 20x)": False,
        "vs LiteLLM, stream at c=1: added p50 -0.020 ms vs 70.000 ms = 0.000 (target <= 0.1)": True,
    }


def test_soak_is_flat_below_the_slope_and_within_the_round_growth() -> None:
    assert soak_flat(0.5, 3.0)
    assert soak_flat(-0.4, -5.0)
    assert not soak_flat(1.0, 0.0)
    assert not soak_flat(0.2, 5.1)
    assert not soak_flat(0.2, -6.0)


def _pair(scenario: str, added_p50: float, cpu_c1: float, cpu_c64: float) -> list[Cell]:
    return [
        make_cell(
            HOT, scenario, 1, added_p50_ms=added_p50, added_p99_ms=1.0, ms_per_request=cpu_c1
        ),
        make_cell(HOT, scenario, 64, ms_per_request=cpu_c64),
    ]


def test_responses_within_15_percent_of_chat_or_the_latency_floor() -> None:
    cells = [
        *_pair("non-stream", 0.40, 0.80, 0.30),
        *_pair("responses", 0.44, 0.92, 0.33),  # +0.04 ms (floor 0.05), 1.15x, 1.10x
        *_pair("stream", 1.00, 1.00, 0.50),
        *_pair("responses-stream", 1.16, 1.20, 0.60),  # +0.16 ms > 0.15 ms; 1.20x; 1.20x
    ]
    verdicts = {v.text: v.met for v in responses_verdicts(cells)}
    assert verdicts == {
        "responses vs non-stream, added p50 at c=1: 0.440 ms vs 0.400 ms = +0.040 ms "
        "(target <= +0.060 ms: 15% of chat's or +0.05 ms, the larger)": True,
        "responses vs non-stream, CPU per request at c=1: 0.920 ms vs 0.800 ms = 1.15x "
        "(target <= 1.15x)": True,
        "responses vs non-stream, CPU per request at c=64: 0.330 ms vs 0.300 ms = 1.10x "
        "(target <= 1.15x)": True,
        "responses-stream vs stream, added p50 at c=1: 1.160 ms vs 1.000 ms = +0.160 ms "
        "(target <= +0.150 ms: 15% of chat's or +0.05 ms, the larger)": False,
        "responses-stream vs stream, CPU per request at c=1: 1.200 ms vs 1.000 ms = 1.20x "
        "(target <= 1.15x)": False,
        "responses-stream vs stream, CPU per request at c=64: 0.600 ms vs 0.500 ms = 1.20x "
        "(target <= 1.15x)": False,
    }
    # proxy_verdicts carries them after the absolute goals.
    assert [v.text for v in proxy_verdicts(cells)][-6:] == list(verdicts)


def test_responses_added_allowance_is_the_floor_for_small_or_negative_chat_figures() -> None:
    assert added_allowance_ms(0.2) == 0.05
    assert added_allowance_ms(-0.1) == 0.05
    assert added_allowance_ms(1.0) == pytest.approx(0.15)
    # Responses faster than chat always meets the latency goal.
    cells = [*_pair("non-stream", 0.5, 0.5, 0.3), *_pair("responses", -0.1, 0.4, 0.2)]
    assert all(v.met for v in responses_verdicts(cells))


def test_responses_without_both_cells_give_no_verdict() -> None:
    # Only the Responses scenario, or chat, or another server: nothing to compare.
    assert responses_verdicts(_pair("responses", 0.4, 0.8, 0.3)) == []
    assert responses_verdicts(_pair("non-stream", 0.4, 0.8, 0.3)) == []
    cells = [make_cell("gw-2w", s, 64) for s in ("responses", "non-stream")]
    assert responses_verdicts(cells) == []
    # CPU unknown (no request completed): no CPU verdict.
    cells = [
        make_cell(HOT, "non-stream", 64, ms_per_request=None),
        make_cell(HOT, "responses", 64),
    ]
    assert responses_verdicts(cells) == []
