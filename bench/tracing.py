"""What OpenTelemetry tracing costs the gateway: the working tree with tracing off (A) and on
(B, every request sampled, spans exported over OTLP/HTTP to a local sink), interleaved in one run.

Run from the repository root:

    python -m bench.tracing [--quick]

Both run as `python -m gateway serve` with one worker and the full pipeline, the same
environment, one real redis-server (a database each) and one simulated upstream; B also has
`observability.otlp_endpoint` pointing at `bench.otlp_sink` (a process apart, whose CPU is not
B's). The requests carry no `traceparent`, so B starts every trace itself and, at the default
sample ratio of 1, keeps them all: the most tracing can cost (`--sample-ratio` measures another;
the target is judged at 1). For each scenario A, B and the
direct simulator take turns at concurrency 1, then A and B at 64 connections, as `bench.ab` runs
them; the report is `bench.ab`'s, then B's CPU per request against A's, the target being under
5% more (`TARGET_CPU_RATIO`).

With `--instructions` it times nothing: each gateway runs under valgrind's callgrind and its
instructions per request are counted (`bench.instructions`), a figure a busy host does not blur.
`--cache-sim` counts too what callgrind's model of the host's caches misses, and judges by the
cycles estimated from instructions and misses: tracing's cost that instructions do not show,
its code and data displacing the gateway's own from the caches, is counted as steadily.

Exit status: 0 the target is met, 1 it is not or the run had errors, 2 setup failed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.ab import (
    CONNECTIONS,
    DRAIN_S,
    add_turn_options,
    check_turn_options,
    redis_database,
    take_turns,
)
from bench.cells import CellRunner
from bench.comparison import (
    BASELINE,
    CANDIDATE,
    Interval,
    ScenarioComparison,
    Throughput,
    compare_throughput,
    median,
)
from bench.instructions import COUNTS, estimated_cycles, per_request
from bench.load import chosen_loadgen, describe
from bench.measurement import fill_added, ratio
from bench.processes import HOST, Child, SetupError, free_port, raise_fd_limit, stopped_at_exit
from bench.report import ABRun, Section, ab_record, ab_sections, error_report
from bench.results import print_and_write
from bench.scenarios import SCENARIOS, Scenario
from bench.servers import (
    Subject,
    attach,
    start_gateway,
    start_redis,
    start_simulator,
    write_teams_file,
)
from gateway.observability import tracing

TARGET_CPU_RATIO = 1.05  # B's CPU per request over A's, at 64 connections


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.tracing", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    add_turn_options(parser)
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="instead of timing: count off's and on's instructions per request under callgrind",
    )
    parser.add_argument(
        "--cache-sim",
        action="store_true",
        help="with --instructions: simulate the caches and branches too, and judge by the "
        "cycles estimated from instructions and misses",
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=1,
        help="with --instructions: requests at once (default 1)",
    )
    parser.add_argument(
        "--sample-ratio",
        type=float,
        default=1.0,
        help="tracing on's sample ratio (`otel_sample_ratio`; default 1, every request traced)",
    )
    parser.add_argument(
        "--together",
        action="store_true",
        help=f"instead of turns: A and B loaded at once at c={CONNECTIONS}, round by round",
    )
    parser.add_argument(
        "--pure",
        action="store_true",
        help="run the tracer's modules as Python (O1GW_PURE_PYTHON=1), not as the build compiled them",
    )
    args = parser.parse_args(argv)
    check_turn_options(parser, args)
    return args


def start_sink(logdir: Path, started: list[Child]) -> str:
    port = free_port()
    argv = [sys.executable, "-m", "bench.otlp_sink", "--host", HOST, "--port", str(port)]
    sink = Child("otlp-sink", argv, dict(os.environ), logdir)
    started.append(sink)
    url = f"http://{HOST}:{port}"
    sink.wait_http(f"{url}/stats", {})
    return url


def sink_stats(url: str) -> str:
    with urllib.request.urlopen(f"{url}/stats", timeout=10) as answer:
        return str(answer.read().decode())


def overhead_lines(comparisons: Sequence[ScenarioComparison]) -> tuple[list[str], bool]:
    """B's CPU per request and requests/s against A's, and whether the CPU target is met."""
    lines, met = [], True
    for c in comparisons:
        many = ratio(c.throughput.b_cpu_ms_all, c.throughput.a_cpu_ms_all)
        one = ratio(c.latency.b_cpu_ms_all, c.latency.a_cpu_ms_all)
        shown = [f"{(r - 1) * 100:+.1f}%" if r is not None else "-" for r in (many, one)]
        ok = many is not None and many < TARGET_CPU_RATIO
        met = met and ok
        lines.append(
            f"{c.scenario}: CPU/request {shown[0]} at c={c.throughput.connections}, {shown[1]} "
            f"at c=1; req/s B/A x{c.throughput.median_ratio:.3f}; added p50 B - A "
            f"{c.latency.median_difference:+.3f} ms -> {'OK' if ok else 'OVER'} (target < "
            f"{(TARGET_CPU_RATIO - 1) * 100:.0f}% CPU/request at c={c.throughput.connections})"
        )
    return lines, met


@dataclass(frozen=True)
class Servers:
    """What both ways of measuring run on: a temporary directory, the children started, one
    redis-server, one simulator and the OTLP sink."""

    tmp: Path
    children: list[Child]
    redis_url: str
    redis: Child
    direct: Subject
    sink: str
    teams: Path

    def gateway_env(
        self, sample_ratio: float, pure: bool = False
    ) -> tuple[dict[str, str], dict[str, str]]:
        """Tracing off's environment and tracing on's, sampling by `sample_ratio`; `pure`: the
        tracer's modules run as Python even where the build compiled them."""
        both = {"O1GW_PURE_PYTHON": "1" if pure else ""}
        on = {
            **both, "O1GW__OBSERVABILITY__OTLP_ENDPOINT": self.sink, "OTEL_SDK_DISABLED": "",
            "O1GW__OBSERVABILITY__OTEL_SAMPLE_RATIO": str(sample_ratio),
        }  # fmt: skip
        return {**both, "OTEL_SDK_DISABLED": "true"}, on


@contextmanager
def servers() -> Iterator[Servers]:
    """Start them; stop them all at the end. Raises SetupError."""
    with (
        tempfile.TemporaryDirectory(prefix="o1gw-bench-") as tmp_name,
        stopped_at_exit([]) as children,
    ):
        tmp = Path(tmp_name)
        redis_url, redis = start_redis(tmp, children)
        direct = start_simulator(tmp, children)
        sink = start_sink(tmp, children)
        yield Servers(tmp, children, redis_url, redis, direct, sink, write_teams_file(tmp))


def start_pair(
    up: Servers, sample_ratio: float, pure: bool, scenarios: Sequence[Scenario]
) -> tuple[Subject, Subject]:
    """A (tracing off) and B (on), started and checked with a request of each scenario."""
    pair: list[Subject] = []
    for number, (name, extra) in enumerate(
        zip((BASELINE, CANDIDATE), up.gateway_env(sample_ratio, pure), strict=True)
    ):
        url = redis_database(up.redis_url, number)
        pair.append(
            start_gateway(name, 1, up.direct.base, url, up.teams, up.tmp, up.children, extra)
        )
    for gw in pair:
        gw.child.wait_http(f"http://{HOST}:{gw.port}/healthz", {})
        attach(gw, scenarios)
    return pair[0], pair[1]


@contextmanager
def running(
    args: argparse.Namespace, wrk: str | None
) -> Iterator[tuple[Servers, Subject, Subject, CellRunner]]:
    """The servers, A and B started and checked, and a runner for `args`' rounds; all stopped
    at the end. Raises SetupError."""
    with servers() as up:
        scenarios = [SCENARIOS[name] for name in args.scenarios]
        attach(up.direct, scenarios)
        a, b = start_pair(up, args.sample_ratio, args.pure, scenarios)
        duration = args.slice * args.rounds
        runner = CellRunner(wrk, up.direct, [up.redis.pid], args.warmup, duration, args.rounds)
        yield up, a, b, runner


def measure(args: argparse.Namespace, wrk: str | None, run: ABRun) -> str:
    """Take every turn; fills `run`, returns the sink's counts. Raises SetupError."""
    with running(args, wrk) as (up, a, b, runner):
        run.comparisons += take_turns(args, runner, up.direct, a, b)
        fill_added(runner.cells)
        run.cells = runner.cells
        return sink_stats(up.sink)


def measure_together(args: argparse.Namespace, wrk: str | None) -> int:
    """Tracing off and on loaded at once, `rounds` rounds of `slice` s at `CONNECTIONS` each;
    B's CPU per request against A's, each scenario. Raises SetupError."""
    met = True
    with running(args, wrk) as (up, a, b, runner):
        for name in args.scenarios:
            print(f"{name}: {args.rounds} rounds of A and B at once ...", flush=True)
            rounds = runner.run_together([a, b], SCENARIOS[name], CONNECTIONS, DRAIN_S)
            throughput = compare_throughput(name, CONNECTIONS, rounds[BASELINE], rounds[CANDIDATE])
            lines, ok = together_lines(throughput)
            met = met and ok
            print("\n".join(lines), flush=True)
        print(f"the sink received {sink_stats(up.sink)}")
    return 0 if met else 1


def together_lines(t: Throughput) -> tuple[list[str], bool]:
    """Round by round B's CPU per request over A's, their median and its interval, and over
    all rounds (the verdict's figure, as taking turns judges it)."""
    ratios = t.cpu_ratios
    interval = Interval.of(ratios)
    overall = ratio(t.b_cpu_ms_all, t.a_cpu_ms_all)
    ok = overall is not None and overall < TARGET_CPU_RATIO
    lines = [
        "  B/A CPU per request by round: " + " ".join(f"x{r:.3f}" for r in ratios),
        f"  median x{median(ratios):.3f} ({interval.confidence:.0%} interval x{interval.low:.3f}"
        f" to x{interval.high:.3f}); over all rounds "
        + (f"{(overall - 1) * 100:+.1f}%" if overall is not None else "-")
        + f"; req/s B/A x{t.median_ratio:.3f} -> {'OK' if ok else 'OVER'} (target < "
        f"{(TARGET_CPU_RATIO - 1) * 100:.0f}% CPU/request at c={t.connections})",
    ]
    return lines, ok


def count_instructions(
    scenarios: Sequence[str], sample_ratio: float, connections: int, pure: bool,
    cache_sim: bool = False,
) -> int:  # fmt: skip
    """Tracing off's and on's instructions per request (`bench.instructions`), each scenario;
    with `cache_sim`, their simulated cache misses too, judged by the cycles estimated."""
    met = True
    with servers() as up:
        upstream = up.direct.base, up.redis_url, up.teams
        off, on = up.gateway_env(sample_ratio, pure)
        for name in scenarios:
            scenario = SCENARIOS[name]
            counted = per_request(
                {"off": off, "on": on}, scenario, upstream, up.tmp, up.children, COUNTS,
                connections, cache_sim,
            )  # fmt: skip
            lines, ok = counted_lines(name, counted["off"], counted["on"], cache_sim)
            met = met and ok
            print("\n".join(lines), flush=True)
        print(f"the sink received {sink_stats(up.sink)}")
    return 0 if met else 1


def counted_lines(
    name: str, off: dict[str, float], on: dict[str, float], cache_sim: bool
) -> tuple[list[str], bool]:
    """Off's and on's events per request: instructions, and with `cache_sim` the misses of the
    last level simulated and the cycles estimated (the verdict's figure then)."""

    def compared(what: str, a: float, b: float) -> str:
        return f"{what} off {a:,.0f}, on {b:,.0f}: {(b / a - 1) * 100:+.1f}% ({b - a:+,.0f})"

    lines = [f"{name}: " + compared("instructions/request", off["Ir"], on["Ir"])]
    judged = on["Ir"] / off["Ir"]
    if cache_sim:
        misses = [sum(counts[event] for event in ("ILmr", "DLmr", "DLmw")) for counts in (off, on)]
        lines.append("  " + compared("L2 misses/request", *misses))
        cycles = estimated_cycles(off), estimated_cycles(on)
        lines.append("  " + compared("estimated cycles/request", *cycles))
        judged = cycles[1] / cycles[0]
    ok = judged < TARGET_CPU_RATIO
    lines[-1] += f" -> {'OK' if ok else 'OVER'}"
    return lines, ok


def tracer_build(pure: bool) -> str:
    """How the gateways run the tracer: as the build compiled it (`setup.py`), or as Python."""
    compiled = not pure and not tracing.__file__.endswith(".py")
    return "tracer compiled by mypyc" if compiled else "tracer run as Python"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    raise_fd_limit()
    if args.instructions or args.cache_sim:
        simulated = ", caches and branches simulated" if args.cache_sim else ""
        print(
            f"o1-gateway tracing off vs on, instructions per request under callgrind{simulated} (one worker, "
            f"c={args.connections}, {COUNTS[1] - COUNTS[0]} requests counted, "
            f"{tracer_build(args.pure)}): Python {sys.version.split()[0]}",
            flush=True,
        )
        try:
            return count_instructions(
                args.scenarios, args.sample_ratio, args.connections, args.pure, args.cache_sim
            )
        except SetupError as exc:
            print(f"\nSETUP FAILED: {exc}", file=sys.stderr)
            return 2
    if args.together:
        print(
            f"o1-gateway tracing off (A) vs on (B) loaded at once, c={CONNECTIONS} each "
            f"({tracer_build(args.pure)}), {args.rounds} rounds of {args.slice} s: "
            f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}",
            flush=True,
        )
        try:
            return measure_together(args, chosen_loadgen(args.loadgen))
        except SetupError as exc:
            print(f"\nSETUP FAILED: {exc}", file=sys.stderr)
            return 2
    load_s = len(args.scenarios) * 5 * (args.rounds * args.slice + args.warmup)
    try:
        wrk = chosen_loadgen(args.loadgen)
        header = (
            f"o1-gateway tracing off (A) vs on (B) (full pipeline, one worker each, one "
            f"redis-server, one simulator, B exporting every span to a local OTLP sink, "
            f"{tracer_build(args.pure)}): {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, {describe(wrk)}\n"
            f"scenarios {', '.join(args.scenarios)}: c=1 direct, A, B and c={CONNECTIONS} "
            f"A, B taking turns, {args.rounds} rounds of {args.slice} s "
            f"(+{args.warmup} s warm-up in the first) = ~{load_s / 60:.1f} min of load"
        )
        print(header, flush=True)
        off = "tracing off"
        on = f"tracing on (sample ratio {args.sample_ratio:g}, OTLP/HTTP to a local sink)"
        run = ABRun(header, off, on, [], [], os.cpu_count() or 1)
        exported = measure(args, wrk, run)
    except SetupError as exc:
        print(f"\nSETUP FAILED: {exc}", file=sys.stderr)
        return 2
    lines, met = overhead_lines(run.comparisons)
    lines.append(f"the sink received {exported}")
    sections = [
        *ab_sections(run),
        Section("Tracing overhead", "\n".join("  " + line for line in lines)),
    ]
    name = "tracing-quick" if args.quick else "tracing"
    print_and_write(name, header, sections, ab_record(run, vars(args)), args.results_dir)
    return 0 if met and not error_report(run.cells) else 1


if __name__ == "__main__":
    sys.exit(main())
