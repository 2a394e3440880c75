"""bench.measurement: wrk's report, percentiles, CPU shares, interleaved slices, memory slope."""

from __future__ import annotations

import math

import pytest

from bench.measurement import (
    CpuSpent,
    SoakRun,
    StreamRound,
    cpu_figures,
    fill_added,
    load_from_latencies,
    merge_slices,
    parse_wrk,
    peak_since,
    percentile,
    ratio,
    rotation,
    round_added_p50,
    rss_at,
    slice_seconds,
    slope_per_10k,
)
from tests.unit.bench.bench_cells import make_cell

WRK_OUTPUT = """\
Running 3s test @ http://127.0.0.1:41234/v1/chat/completions
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    16.41ms    3.20ms  48.15ms   89.12%
    Req/Sec     1.96k   150.22     2.20k    78.33%
  Latency Distribution
     50%   15.80ms
     75%   17.10ms
     90%   19.02ms
     99%   28.67ms
  11712 requests in 3.00s, 6.89MB read
  Socket errors: connect 0, read 0, write 0, timeout 2
  Non-2xx or 3xx responses: 3
Requests/sec:   3901.45
Transfer/sec:      2.30MB
"""


def test_parse_wrk_reads_counts_percentiles_and_errors() -> None:
    load = parse_wrk(WRK_OUTPUT)
    assert load.requests == 11712
    assert load.seconds == pytest.approx(3.0)
    assert load.rps == pytest.approx(3901.45)
    assert load.p50_ms == pytest.approx(15.80)
    assert load.p99_ms == pytest.approx(28.67)
    assert load.non_2xx == 3
    assert load.socket_errors == {"connect": 0, "read": 0, "write": 0, "timeout": 2}
    assert load.errors == 5


def test_parse_wrk_converts_microseconds_and_seconds_to_ms() -> None:
    text = (
        WRK_OUTPUT.replace("50%   15.80ms", "50%  812.00us")
        .replace("99%   28.67ms", "99%    1.20s")
        .replace("  Socket errors: connect 0, read 0, write 0, timeout 2\n", "")
        .replace("  Non-2xx or 3xx responses: 3\n", "")
    )
    load = parse_wrk(text)
    assert load.p50_ms == pytest.approx(0.812)
    assert load.p99_ms == pytest.approx(1200.0)
    assert load.errors == 0


def test_parse_wrk_with_no_request_done_has_no_latency() -> None:
    load = parse_wrk(WRK_OUTPUT.replace("11712 requests in", "0 requests in"))
    assert load.requests == 0
    assert math.isnan(load.p50_ms) and math.isnan(load.p99_ms)


def test_parse_wrk_rejects_other_output() -> None:
    with pytest.raises(ValueError, match="cannot parse wrk output"):
        parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_percentile_is_a_measured_value_by_nearest_rank() -> None:
    ordered = [float(v) for v in range(1, 101)]
    assert percentile(ordered, 0.50) == 51.0
    assert percentile(ordered, 0.99) == 100.0
    assert percentile(ordered, 1.0) == 100.0
    assert percentile([7.0], 0.99) == 7.0
    with pytest.raises(ValueError):
        percentile([], 0.5)


def test_load_from_latencies_sorts_and_reports_in_ms() -> None:
    load = load_from_latencies([0.004, 0.001, 0.003, 0.002], 2.0, 1, {"timeout": 1})
    assert load.requests == 4
    assert load.rps == 2.0
    assert load.p50_ms == pytest.approx(3.0)
    assert load.p99_ms == pytest.approx(4.0)
    assert load.errors == 2


def test_cpu_figures_of_a_gateway_cell() -> None:
    spent = CpuSpent(
        server_ms=300.0,
        upstream_ms=200.0,
        redis_ms=50.0,
        host_ms=700.0,
        steal_ms=10.0,
        loadgen_ms=100.0,
    )
    cpu = cpu_figures(spent, wall_ms=1000.0, requests=1000)
    assert cpu.ms_per_request == pytest.approx(0.3)
    assert cpu.percent == pytest.approx(30.0)
    assert cpu.upstream_percent == pytest.approx(20.0)
    assert cpu.redis_percent == pytest.approx(5.0)
    assert cpu.host_busy_percent == pytest.approx(70.0)
    assert cpu.loadgen_percent == pytest.approx(10.0)
    # Busy 700 minus ours 300 + 200 + 50 and the load generator's 100.
    assert cpu.other_percent == pytest.approx(5.0)
    assert cpu.steal_percent == pytest.approx(1.0)


def test_cpu_figures_of_the_direct_simulator_count_it_once() -> None:
    spent = CpuSpent(
        server_ms=400.0,
        upstream_ms=None,
        redis_ms=None,
        host_ms=600.0,
        steal_ms=0.0,
        loadgen_ms=150.0,
    )
    cpu = cpu_figures(spent, wall_ms=2000.0, requests=0)
    assert cpu.ms_per_request is None
    assert cpu.percent == pytest.approx(20.0)
    assert cpu.upstream_percent == pytest.approx(20.0)
    assert cpu.redis_percent is None
    assert cpu.other_percent == pytest.approx(2.5)


def test_cpu_figures_never_report_negative_other_use() -> None:
    spent = CpuSpent(100.0, 100.0, 10.0, host_ms=150.0, steal_ms=0.0, loadgen_ms=50.0)
    assert cpu_figures(spent, 1000.0, 10).other_percent == 0.0


def test_rotation_starts_one_further_each_round() -> None:
    order = ["direct", "gw-1w", "gw-2w"]
    assert rotation(order, 0) == ["direct", "gw-1w", "gw-2w"]
    assert rotation(order, 1) == ["gw-1w", "gw-2w", "direct"]
    assert rotation(order, 2) == ["gw-2w", "direct", "gw-1w"]
    assert rotation(order, 3) == order
    assert rotation([], 5) == []


def test_slice_seconds_add_up_to_about_one_cell_and_at_least_one() -> None:
    assert slice_seconds(8, 4) == 2
    assert slice_seconds(3, 4) == 1
    assert slice_seconds(1, 4) == 1
    assert slice_seconds(10, 4) == 2  # round half to even


def test_merge_slices_sums_counts_and_takes_the_median_latency() -> None:
    slices = [
        make_cell(requests=100, seconds=1.0, p50_ms=1.0, p99_ms=4.0, ms_per_request=0.2,
                  percent=10.0, peak_rss_mb=90.0, socket_errors={"timeout": 1}),
        make_cell(requests=300, seconds=1.0, p50_ms=3.0, p99_ms=6.0, ms_per_request=0.4,
                  percent=30.0, peak_rss_mb=95.0, non_2xx=2, socket_errors={"timeout": 2}),
    ]  # fmt: skip
    cell = merge_slices(slices)
    assert cell.load.requests == 400
    assert cell.load.seconds == 2.0
    assert cell.load.rps == 200.0
    assert cell.load.p50_ms == 2.0
    assert cell.load.p99_ms == 5.0
    assert cell.load.non_2xx == 2
    assert cell.load.socket_errors == {"timeout": 3}
    # CPU per request weighted by requests: (100 x 0.2 + 300 x 0.4) / 400.
    assert cell.cpu.ms_per_request == pytest.approx(0.35)
    assert cell.cpu.percent == pytest.approx(20.0)
    assert cell.peak_rss_mb == 95.0
    assert cell.server == "gw-1w" and cell.concurrency == 64


def test_merge_slices_weights_shares_by_time_and_keeps_unknowns_unknown() -> None:
    slices = [
        make_cell(seconds=3.0, percent=40.0, redis_percent=None, peak_rss_mb=None),
        make_cell(seconds=1.0, percent=80.0, redis_percent=8.0, peak_rss_mb=None),
    ]
    cell = merge_slices(slices)
    assert cell.cpu.percent == pytest.approx(50.0)
    assert cell.cpu.redis_percent is None
    assert cell.peak_rss_mb is None


def test_round_added_p50_pairs_each_round_with_the_baseline_of_that_round() -> None:
    mine = [make_cell(p50_ms=0.60), make_cell(p50_ms=0.70)]
    base = [make_cell("direct", p50_ms=0.15), make_cell("direct", p50_ms=0.20)]
    assert round_added_p50(mine, base) == pytest.approx((0.45, 0.50))
    with pytest.raises(ValueError):
        round_added_p50(mine, base[:1])


def test_fill_added_subtracts_the_direct_cell_of_the_same_scenario_and_concurrency() -> None:
    direct = make_cell("direct", concurrency=1, p50_ms=0.15, p99_ms=0.30)
    gateway = make_cell("gw-1w", concurrency=1, p50_ms=0.60, p99_ms=1.00)
    elsewhere = make_cell("gw-1w", concurrency=64, p50_ms=20.0)
    fill_added([direct, gateway, elsewhere])
    assert gateway.added_p50_ms == pytest.approx(0.45)
    assert gateway.added_p99_ms == pytest.approx(0.70)
    assert direct.added_p50_ms is None
    assert elsewhere.added_p50_ms is None


def test_ratio_is_unknown_without_a_positive_denominator() -> None:
    assert ratio(4000.0, 100.0) == 40.0
    assert ratio(None, 100.0) is None
    assert ratio(1.0, None) is None
    assert ratio(1.0, 0.0) is None
    assert ratio(math.nan, 2.0) is None


def test_slope_per_10k_is_the_least_squares_growth() -> None:
    assert slope_per_10k([(0, 100.0), (10_000, 101.0), (20_000, 102.0)]) == pytest.approx(1.0)
    assert slope_per_10k([(0, 100.0), (10_000, 102.0), (20_000, 100.0)]) == pytest.approx(0.0)
    assert slope_per_10k([(5, 100.0)]) == 0.0
    assert slope_per_10k([(5, 100.0), (5, 120.0)]) == 0.0  # no spread of x: no slope


def test_rss_at_and_peak_since_read_the_samples() -> None:
    samples = [(0.0, 0, 90.0), (1.0, 500, 95.0), (2.0, 1000, 97.0), (3.0, 1500, 96.0)]
    assert rss_at(samples, 0) == 90.0
    assert rss_at(samples, 600) == 97.0
    assert rss_at(samples, 10_000) == 96.0  # never reached: the last sample
    assert peak_since(samples, 1.5) == 97.0
    assert peak_since(samples, 9.0) == 0.0


def test_soak_run_counts_errors_and_growth_across_rounds() -> None:
    first = StreamRound(100.0, 140.0, 104.0, complete=299, failed=1, most_open=300, seconds=7.0)
    second = StreamRound(104.0, 141.0, 106.5, complete=300, failed=0, most_open=300, seconds=7.0)
    run = SoakRun(
        idle_mb=93.0,
        statuses={200: 19_998, 429: 1, 0: 1},
        requests_s=10.0,
        warmup=2000,
        warmup_mb=99.0,
        marks_mb={"100%": 100.0},
        slope_mb_per_10k=0.2,
        slope_samples=8,
        streams=300,
        rounds=(first, second),
        total_s=30.0,
        traceback=False,
    )
    assert run.errors == 3
    assert run.round_growth_mb == pytest.approx(2.5)
