"""Two versions of the gateway measured in one run, A (the baseline) and B (the candidate), and
whether B regressed beyond the run's noise. Pure: the figures come in as the cells of each
round's slices.

A and B took turns in every round, so round i of A and round i of B ran seconds apart on the
same host; the comparison pairs them (B/A for requests/s, B - A for added latency) and takes the
median of the pairs, which the host's drift over minutes, moving both alike, leaves alone. The
pairs' own spread is the noise: the interval from the k-th lowest to the k-th highest pair holds
the pairs' true median with each tail at most 5% (the sign test: k = 1, every round, up to 7
rounds, where its confidence is 1 - 2 / 2^n; k = 2 for 8 to 10 rounds).

The rule: B regressed beyond noise on a measure when the median is worse than a floor and the
whole interval is on the worse side of no change:

- requests/s at the throughput concurrency: median B/A < 0.97 and the interval's top < 1;
- added p50 at concurrency 1 (each version's p50 minus the direct simulator's in the same round;
  in B - A the simulator's cancels out): median B - A > 0.05 ms and the interval's bottom > 0.

Otherwise: no regression beyond noise (B faster never counts against it). The floors leave out
what matters too little to act on; the interval, what the rounds do not agree on. CPU per
request is compared but not judged: on a shared host it moves with the neighbours' share of the
cores.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Mapping, Sequence

from bench.measurement import Cell, merge_slices

BASELINE = "A"  # the server names of the two gateways in a comparison's cells
CANDIDATE = "B"
RPS_RATIO_FLOOR = 0.97  # median B/A below this, and the interval below 1: a regression
ADDED_P50_FLOOR_MS = 0.05  # median B - A above this, and the interval above 0: a regression
TAIL = 0.05  # the most each end of the interval may leave out of the pairs' true median


def _finite(values: Sequence[float]) -> bool:
    return bool(values) and all(math.isfinite(v) for v in values)


def median(values: Sequence[float]) -> float:
    """The median, or NaN when some value is unmeasured (NaN) or there is none."""
    return statistics.median(values) if _finite(values) else math.nan


def _below(k: int, n: int) -> float:
    """The chance that fewer than k of n pairs fall below their true median (binomial, 1/2)."""
    return sum(math.comb(n, i) for i in range(k)) / (1 << n)


def interval_rank(n: int) -> int:
    """k for n pairs: the largest k whose interval leaves each tail at most TAIL, at least 1."""
    k = 1
    while k + 1 <= n // 2 and _below(k + 1, n) <= TAIL:
        k += 1
    return k


def interval_confidence(n: int) -> float:
    """How often the interval of n pairs holds their true median."""
    return 1 - 2 * _below(interval_rank(n), n) if n else math.nan


@dataclasses.dataclass(frozen=True, slots=True)
class Interval:
    """The k-th lowest and k-th highest of the pairs (k = interval_rank); NaN when a round is
    unmeasured."""

    low: float
    high: float
    confidence: float

    @classmethod
    def of(cls, pairs: Sequence[float]) -> Interval:
        if not _finite(pairs):
            return cls(math.nan, math.nan, interval_confidence(len(pairs)))
        ordered = sorted(pairs)
        k = interval_rank(len(ordered))
        return cls(ordered[k - 1], ordered[-k], interval_confidence(len(ordered)))


def _cpu_ms(slices: Sequence[Cell]) -> float | None:
    return merge_slices(slices).cpu.ms_per_request if slices else None


def _other_percent(rounds: Sequence[Sequence[Cell]]) -> tuple[float, ...]:
    """Per round, the most CPU that processes not ours took during any of its slices."""
    return tuple(max(c.cpu.other_percent for c in cells) for cells in zip(*rounds, strict=True))


@dataclasses.dataclass(frozen=True, slots=True)
class Throughput:
    """Requests/s of A and B at `connections`, round by round."""

    scenario: str
    connections: int
    a_rps: tuple[float, ...]
    b_rps: tuple[float, ...]
    a_cpu_ms: tuple[float | None, ...]  # CPU per request, each round
    b_cpu_ms: tuple[float | None, ...]
    a_cpu_ms_all: float | None  # CPU per request over all rounds
    b_cpu_ms_all: float | None
    other_percent: tuple[float, ...]  # each round, see _other_percent

    @property
    def ratios(self) -> tuple[float, ...]:
        return tuple(
            b / a if a > 0 else math.nan for a, b in zip(self.a_rps, self.b_rps, strict=True)
        )

    @property
    def median_ratio(self) -> float:
        return median(self.ratios)

    @property
    def cpu_ratios(self) -> tuple[float, ...]:
        """B's CPU per request over A's, round by round (NaN: a round unmeasured)."""
        return tuple(
            b / a if a and b is not None else math.nan
            for a, b in zip(self.a_cpu_ms, self.b_cpu_ms, strict=True)
        )

    @property
    def interval(self) -> Interval:
        return Interval.of(self.ratios)

    @property
    def met(self) -> bool:
        """No regression beyond noise; an unmeasured round (NaN) never is."""
        if math.isnan(self.median_ratio) or math.isnan(self.interval.high):
            return False
        return not (self.median_ratio < RPS_RATIO_FLOOR and self.interval.high < 1)


@dataclasses.dataclass(frozen=True, slots=True)
class AddedLatency:
    """p50 of A and B at concurrency 1 minus the direct simulator's, round by round."""

    scenario: str
    direct_p50: tuple[float, ...]
    a_p50: tuple[float, ...]
    b_p50: tuple[float, ...]
    a_cpu_ms_all: float | None  # CPU per request over all rounds
    b_cpu_ms_all: float | None
    other_percent: tuple[float, ...]

    @property
    def a_added(self) -> tuple[float, ...]:
        return tuple(a - d for a, d in zip(self.a_p50, self.direct_p50, strict=True))

    @property
    def b_added(self) -> tuple[float, ...]:
        return tuple(b - d for b, d in zip(self.b_p50, self.direct_p50, strict=True))

    @property
    def differences(self) -> tuple[float, ...]:
        """B - A each round (the direct simulator's p50 cancels out)."""
        return tuple(b - a for a, b in zip(self.a_p50, self.b_p50, strict=True))

    @property
    def median_difference(self) -> float:
        return median(self.differences)

    @property
    def interval(self) -> Interval:
        return Interval.of(self.differences)

    @property
    def met(self) -> bool:
        """No regression beyond noise; an unmeasured round (NaN) never is."""
        if math.isnan(self.median_difference) or math.isnan(self.interval.low):
            return False
        return not (self.median_difference > ADDED_P50_FLOOR_MS and self.interval.low > 0)


def compare_throughput(
    scenario: str, connections: int, a: Sequence[Cell], b: Sequence[Cell]
) -> Throughput:
    """From A's and B's slices, in round order."""
    return Throughput(
        scenario=scenario,
        connections=connections,
        a_rps=tuple(c.load.rps for c in a),
        b_rps=tuple(c.load.rps for c in b),
        a_cpu_ms=tuple(c.cpu.ms_per_request for c in a),
        b_cpu_ms=tuple(c.cpu.ms_per_request for c in b),
        a_cpu_ms_all=_cpu_ms(a),
        b_cpu_ms_all=_cpu_ms(b),
        other_percent=_other_percent([a, b]),
    )


def compare_added_latency(
    scenario: str, direct: Sequence[Cell], a: Sequence[Cell], b: Sequence[Cell]
) -> AddedLatency:
    """From the direct simulator's, A's and B's slices at concurrency 1, in round order."""
    return AddedLatency(
        scenario=scenario,
        direct_p50=tuple(c.load.p50_ms for c in direct),
        a_p50=tuple(c.load.p50_ms for c in a),
        b_p50=tuple(c.load.p50_ms for c in b),
        a_cpu_ms_all=_cpu_ms(a),
        b_cpu_ms_all=_cpu_ms(b),
        other_percent=_other_percent([direct, a, b]),
    )


@dataclasses.dataclass(frozen=True, slots=True)
class ScenarioComparison:
    scenario: str
    latency: AddedLatency
    throughput: Throughput

    @property
    def met(self) -> bool:
        return self.latency.met and self.throughput.met


def no_regression(comparisons: Sequence[ScenarioComparison]) -> bool:
    return bool(comparisons) and all(c.met for c in comparisons)


def regressions(comparisons: Sequence[ScenarioComparison]) -> list[str]:
    """The measures where B regressed beyond the noise, named."""
    out = []
    for c in comparisons:
        if not c.throughput.met:
            out.append(f"{c.scenario} req/s at c={c.throughput.connections}")
        if not c.latency.met:
            out.append(f"{c.scenario} added p50 at c=1")
    return out


def compare_scenario(
    scenario: str,
    at_1: Mapping[str, Sequence[Cell]],
    at_many: Mapping[str, Sequence[Cell]],
    connections: int,
) -> ScenarioComparison:
    """From the slices by server name: `at_1` of the direct simulator, A and B at concurrency
    1, `at_many` of A and B at `connections`."""
    return ScenarioComparison(
        scenario,
        compare_added_latency(scenario, at_1["direct"], at_1[BASELINE], at_1[CANDIDATE]),
        compare_throughput(scenario, connections, at_many[BASELINE], at_many[CANDIDATE]),
    )
