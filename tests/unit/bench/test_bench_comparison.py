"""bench.comparison: A and B paired round by round, the interval of the pairs' median, and the
no-regression rule."""

from __future__ import annotations

import math

import pytest

from bench.comparison import (
    ADDED_P50_FLOOR_MS,
    RPS_RATIO_FLOOR,
    AddedLatency,
    Interval,
    Throughput,
    compare_added_latency,
    compare_scenario,
    compare_throughput,
    interval_confidence,
    interval_rank,
    median,
    no_regression,
    regressions,
)
from bench.measurement import Cell
from tests.unit.bench.bench_cells import make_cell


def _rounds(server: str, concurrency: int, **figures: list[float]) -> list[Cell]:
    """One cell a round; each keyword is a make_cell figure, one value a round."""
    count = len(next(iter(figures.values())))
    return [
        make_cell(server, "non-stream", concurrency, **{k: v[i] for k, v in figures.items()})
        for i in range(count)
    ]


def _throughput(a_rps: list[float], b_rps: list[float]) -> Throughput:
    a = _rounds("A", 64, rps=a_rps)
    b = _rounds("B", 64, rps=b_rps)
    return compare_throughput("non-stream", 64, a, b)


def _latency(direct: list[float], a: list[float], b: list[float]) -> AddedLatency:
    return compare_added_latency(
        "non-stream",
        _rounds("direct", 1, p50_ms=direct),
        _rounds("A", 1, p50_ms=a),
        _rounds("B", 1, p50_ms=b),
    )


def test_median_is_nan_when_a_round_was_not_measured() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert math.isnan(median([1.0, math.nan]))
    assert math.isnan(median([]))


def test_interval_rank_leaves_at_most_five_percent_out_each_side() -> None:
    # Sign test: fewer than k of n pairs below the true median has chance sum C(n, i) / 2^n.
    assert [interval_rank(n) for n in (2, 4, 6, 7, 8, 10, 11)] == [1, 1, 1, 1, 2, 2, 3]
    assert interval_confidence(4) == pytest.approx(1 - 2 / 16)
    assert interval_confidence(8) == pytest.approx(1 - 2 * 9 / 256)
    assert interval_confidence(10) == pytest.approx(1 - 2 * 11 / 1024)


def test_interval_drops_the_outermost_pairs_once_there_are_enough() -> None:
    eight = Interval.of([0.9, 1.3, 0.7, 1.0, 1.1, 0.95, 1.05, 1.2])
    assert (eight.low, eight.high) == (0.9, 1.2)
    four = Interval.of([1.0, 0.8, 1.2, 0.9])
    assert (four.low, four.high) == (0.8, 1.2)
    assert math.isnan(Interval.of([1.0, math.nan]).low)


def test_throughput_pairs_rounds_and_takes_the_median_ratio() -> None:
    t = _throughput([1000.0, 1010.0, 990.0, 1000.0], [980.0, 1030.0, 960.0, 1000.0])
    assert t.ratios == pytest.approx((0.98, 1030 / 1010, 960 / 990, 1.0))
    assert t.median_ratio == pytest.approx((0.98 + 1.0) / 2)
    assert t.met


def test_slower_in_every_round_beyond_the_floor_is_a_regression() -> None:
    t = _throughput([1000.0, 1005.0, 995.0, 1000.0], [950.0, 955.0, 940.0, 960.0])
    assert t.median_ratio < RPS_RATIO_FLOOR and t.interval.high < 1
    assert not t.met


def test_a_slower_median_the_rounds_disagree_on_is_noise() -> None:
    # Median B/A 0.9, but one round (of four: the interval is all of them) has B faster.
    t = _throughput([1000.0, 1000.0, 1000.0, 1000.0], [850.0, 880.0, 920.0, 1050.0])
    assert t.median_ratio == pytest.approx(0.9)
    assert t.interval.high == pytest.approx(1.05)
    assert t.met


def test_slower_in_every_round_but_within_the_floor_is_not_a_regression() -> None:
    t = _throughput([1000.0] * 4, [990.0, 985.0, 980.0, 990.0])
    assert t.interval.high < 1 and t.median_ratio >= RPS_RATIO_FLOOR
    assert t.met


def test_pairing_cancels_drift_that_moves_both_versions() -> None:
    # The host slows by half over the run; B is 5% slower than A in every round.
    a = [2000.0, 1500.0, 1000.0, 1200.0]
    t = _throughput(a, [v * 0.95 for v in a])
    assert t.median_ratio == pytest.approx(0.95)
    assert not t.met


def test_faster_b_is_never_a_regression() -> None:
    assert _throughput([1000.0, 1000.0], [1500.0, 1600.0]).met
    assert _latency([0.1, 0.1], [0.6, 0.6], [0.3, 0.3]).met


def test_an_unmeasured_round_is_not_ok() -> None:
    assert not _throughput([1000.0, 1000.0], [math.nan, 1000.0]).met
    assert not _throughput([0.0, 1000.0], [1000.0, 1000.0]).met
    assert not _latency([0.1, 0.1], [0.6, math.nan], [0.6, 0.6]).met


def test_added_latency_is_each_version_minus_the_same_rounds_direct() -> None:
    lat = _latency([0.10, 0.20, 0.15], [0.60, 0.72, 0.64], [0.62, 0.73, 0.70])
    assert lat.a_added == pytest.approx((0.50, 0.52, 0.49))
    assert lat.b_added == pytest.approx((0.52, 0.53, 0.55))
    assert lat.differences == pytest.approx((0.02, 0.01, 0.06))
    assert lat.median_difference == pytest.approx(0.02)
    # Higher in every round, but the median is under the floor.
    assert lat.interval.low > 0 and lat.median_difference <= ADDED_P50_FLOOR_MS
    assert lat.met


def test_added_latency_beyond_the_floor_in_every_round_is_a_regression() -> None:
    lat = _latency([0.1, 0.1, 0.1], [0.60, 0.61, 0.60], [0.70, 0.72, 0.69])
    assert lat.median_difference == pytest.approx(0.1)
    assert not lat.met
    # The same median with one round where B was faster: the rounds disagree.
    mixed = _latency([0.1, 0.1, 0.1], [0.60, 0.75, 0.60], [0.70, 0.70, 0.70])
    assert mixed.median_difference == pytest.approx(0.1)
    assert mixed.interval.low < 0
    assert mixed.met


def test_cpu_per_request_is_per_round_and_over_all_rounds() -> None:
    a = _rounds("A", 64, ms_per_request=[0.2, 0.3], requests=[1000, 3000], other_percent=[5, 40])
    b = _rounds("B", 64, ms_per_request=[0.25, 0.25], requests=[2000, 2000], other_percent=[50, 0])
    t = compare_throughput("non-stream", 64, a, b)
    assert t.a_cpu_ms == (0.2, 0.3)
    assert t.a_cpu_ms_all == pytest.approx((0.2 * 1000 + 0.3 * 3000) / 4000)
    assert t.b_cpu_ms_all == pytest.approx(0.25)
    # Each round, the most that other processes took during A's or B's turn.
    assert t.other_percent == (50, 40)
    assert t.cpu_ratios == pytest.approx((1.25, 0.25 / 0.3))


def test_a_round_without_a_cpu_figure_has_no_cpu_ratio() -> None:
    a = _rounds("A", 64, ms_per_request=[0.2, 0.3])
    b = [*_rounds("B", 64, ms_per_request=[0.2]), make_cell("B", ms_per_request=None)]
    ratios = compare_throughput("non-stream", 64, a, b).cpu_ratios
    assert ratios[0] == 1.0 and math.isnan(ratios[1])


def test_compare_scenario_and_the_runs_verdict() -> None:
    at_1 = {
        "direct": _rounds("direct", 1, p50_ms=[0.1, 0.1]),
        "A": _rounds("A", 1, p50_ms=[0.6, 0.6]),
        "B": _rounds("B", 1, p50_ms=[0.6, 0.62]),
    }
    at_64 = {
        "A": _rounds("A", 64, rps=[1000.0, 1000.0]),
        "B": _rounds("B", 64, rps=[999.0, 1001.0]),
    }
    same = compare_scenario("non-stream", at_1, at_64, 64)
    assert same.met and no_regression([same]) and regressions([same]) == []
    slower = {"A": at_64["A"], "B": _rounds("B", 64, rps=[800.0, 820.0])}
    worse = compare_scenario("stream", at_1, slower, 64)
    assert not no_regression([same, worse])
    assert regressions([same, worse]) == ["stream req/s at c=64"]
    assert not no_regression([])
