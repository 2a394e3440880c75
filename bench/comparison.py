"""Two versions of the gateway measured in one run, A (the baseline) and B (the candidate), and
whether B regressed beyond the run's noise. Pure: the figures come in as the cells of each
round's slices.

A and B took turns in every round, so round i of A and round i of B ran seconds apart on the
same host; the comparison pairs them (B/A for requests/s, B - A for added latency) and takes
the median of the pairs, which the host's slow drift moves little. How far A's own rounds spread
is the noise: a change smaller than that cannot be told from it.

The rule (a measure is OK when):

- requests/s at the throughput concurrency: the median of the rounds' B/A >= 1 - tolerance,
  the tolerance being A's rounds' range relative to their median ((max - min) / median), at
  least 3%;
- added p50 at concurrency 1 (each version's p50 minus the direct simulator's in the same
  round): the median of the rounds' B - A <= A's rounds' range (max - min of A's added p50s), at
  least 0.05 ms.

B faster than A never counts against it. CPU per request is compared but not judged: on a
shared host it moves with the load generator's and the neighbours' share of the cores.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Mapping, Sequence

from bench.measurement import Cell, merge_slices

BASELINE = "A"  # the server names of the two gateways in a comparison's cells
CANDIDATE = "B"
RPS_TOLERANCE_FLOOR = 0.03  # B/A >= 0.97 whatever A's spread
ADDED_P50_TOLERANCE_FLOOR_MS = 0.05


def _finite(values: Sequence[float]) -> bool:
    return bool(values) and all(math.isfinite(v) for v in values)


def median(values: Sequence[float]) -> float:
    """The median, or NaN when some value is unmeasured (NaN) or there is none."""
    return statistics.median(values) if _finite(values) else math.nan


def value_range(values: Sequence[float]) -> float:
    """max - min, or NaN when some value is unmeasured."""
    return max(values) - min(values) if _finite(values) else math.nan


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
    def a_spread(self) -> float:
        """A's rounds' range relative to their median."""
        mid = median(self.a_rps)
        return value_range(self.a_rps) / mid if mid > 0 else math.nan

    @property
    def least_ratio(self) -> float:
        """The lowest median B/A that is still within the noise."""
        return 1 - max(RPS_TOLERANCE_FLOOR, self.a_spread)

    @property
    def met(self) -> bool:
        # NaN compares false: an unmeasured round is never OK.
        return self.median_ratio >= self.least_ratio


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
    def a_spread_ms(self) -> float:
        return value_range(self.a_added)

    @property
    def most_difference_ms(self) -> float:
        """The highest median B - A that is still within the noise."""
        return max(ADDED_P50_TOLERANCE_FLOOR_MS, self.a_spread_ms)

    @property
    def met(self) -> bool:
        return self.median_difference <= self.most_difference_ms


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
