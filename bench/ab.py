"""Two versions of the gateway, interleaved in one run: does the working tree regress on an
earlier revision beyond the noise?

Run from the repository root:

    python -m bench.ab --baseline REV [--quick]
    python -m bench.ab --baseline-dir PATH [--quick]

A is the baseline: the revision's files unpacked into a temporary directory (or PATH as it is),
B the working tree. Both run as `python -m gateway serve` with one worker and the full pipeline,
on this venv's interpreter and packages, each with its own checkout first on the import path and
as its working directory (its own config/gateway.yaml), the same environment, one real
redis-server (a database each) and one simulated upstream. For each scenario A, B and the direct
simulator take turns at concurrency 1 in several rounds (added p50 is each version's p50 minus
the simulator's in the same round), then A and B at 64 connections (requests/s, CPU per request).
It prints both versions side by side, round by round, and the verdict (bench/comparison.py has
the rule), and writes it all to bench/results/.

Exit status: 0 no regression beyond noise, 1 a regression beyond noise or a run with errors
(the report says which), 2 setup failed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from bench.cells import CellRunner
from bench.checkouts import checked_out, describe_commit, describe_working_tree, resolve
from bench.comparison import (
    BASELINE,
    CANDIDATE,
    ScenarioComparison,
    compare_scenario,
    no_regression,
)
from bench.load import add_loadgen_option, chosen_loadgen, describe
from bench.measurement import fill_added
from bench.processes import HOST, ROOT, Child, SetupError, raise_fd_limit, stopped_at_exit
from bench.report import ABRun, ab_record, ab_sections, error_report
from bench.results import add_results_option, print_and_write
from bench.scenarios import SCENARIOS, Scenario, scenario_names
from bench.servers import (
    Subject,
    attach,
    gateway_origin,
    start_gateway,
    start_redis,
    start_simulator,
    write_teams_file,
)

CONNECTIONS = 64  # where requests/s is compared
DEFAULT_SCENARIOS = "non-stream,stream"
DRAIN_S = 15.0  # how long a gateway may take to finish the requests wrk left in flight
# Many short turns rather than a few long ones: each round is a pair, and more pairs narrow the
# interval the verdict reads (10 rounds: the 2nd lowest to 2nd highest pair, 98%).
FULL = {"rounds": 10, "slice": 3, "warmup": 2}
QUICK = {"rounds": 6, "slice": 2, "warmup": 1}


def add_turn_options(parser: argparse.ArgumentParser) -> None:
    """The options of a run of two gateways taking turns (this one and `bench.tracing`)."""
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK['rounds']} rounds of {QUICK['slice']} s slices, {QUICK['warmup']} s "
        f"warm-up (default {FULL['rounds']} of {FULL['slice']} s, {FULL['warmup']} s)",
    )
    parser.add_argument("--rounds", type=int, help="turns each server takes per cell")
    parser.add_argument("--slice", type=int, help="seconds of each turn")
    parser.add_argument("--warmup", type=int, help="seconds of warm-up in the first round")
    parser.add_argument(
        "--scenarios",
        default=DEFAULT_SCENARIOS,
        help=f"comma-separated, of {', '.join(SCENARIOS)} (default {DEFAULT_SCENARIOS})",
    )
    add_loadgen_option(parser)
    add_results_option(parser)


def check_turn_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """`add_turn_options`' values read: the scenarios named, the defaults of a full or quick
    run filled in, and checked."""
    try:
        args.scenarios = scenario_names(args.scenarios)
    except ValueError as exc:
        parser.error(f"--scenarios: {exc}")
    settings = QUICK if args.quick else FULL
    for name, default in settings.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    if args.rounds < 2 or args.slice < 1 or args.warmup < 1:
        parser.error("--rounds >= 2, --slice and --warmup whole seconds >= 1")


def take_turns(
    args: argparse.Namespace, runner: CellRunner, direct: Subject, a: Subject, b: Subject
) -> list[ScenarioComparison]:
    """Each scenario: the direct simulator, A and B in turns at c=1, then A and B at
    `CONNECTIONS`; A and B compared."""
    comparisons = []
    for name in args.scenarios:
        scenario = SCENARIOS[name]
        print(f"{name}: c=1, {args.rounds} rounds of direct, A, B taking turns ...", flush=True)
        at_1 = runner.run_interleaved([direct, a, b], scenario)
        print(f"{name}: c={CONNECTIONS}, {args.rounds} rounds of A, B ...", flush=True)
        at_many = runner.run_interleaved([a, b], scenario, CONNECTIONS, DRAIN_S)
        comparisons.append(compare_scenario(name, at_1, at_many, CONNECTIONS))
    return comparisons


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ab", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    baseline = parser.add_mutually_exclusive_group(required=True)
    baseline.add_argument("--baseline", metavar="REV", help="the git revision A runs")
    baseline.add_argument(
        "--baseline-dir", type=Path, metavar="PATH", help="a directory of the code A runs"
    )
    add_turn_options(parser)
    args = parser.parse_args(argv)
    check_turn_options(parser, args)
    if args.baseline_dir is not None and not args.baseline_dir.is_dir():
        parser.error(f"--baseline-dir: {args.baseline_dir} is not a directory")
    return args


@contextlib.contextmanager
def baseline_source(args: argparse.Namespace) -> Iterator[tuple[Path, str]]:
    """The directory A runs from and what it is; a revision's is removed afterwards."""
    if args.baseline_dir is not None:
        yield args.baseline_dir.resolve(), f"directory {args.baseline_dir.resolve()}"
        return
    commit = resolve(args.baseline)
    with checked_out(commit) as folder:
        yield folder, describe_commit(commit)


def redis_database(url: str, number: int) -> str:
    """The same redis-server, another database: each version keeps its admission state apart,
    so a key layout that changed between them cannot meet the other's."""
    return f"{url.rsplit('/', 1)[0]}/{number}"


def start_pair(
    baseline: Path,
    sim_base: str,
    redis_url: str,
    logdir: Path,
    started: list[Child],
    scenarios: Sequence[Scenario],
) -> tuple[Subject, Subject]:
    """A from `baseline`, B from the working tree: the same command, environment and teams."""
    teams = write_teams_file(logdir)
    pair = []
    for number, (name, source) in enumerate(((BASELINE, baseline), (CANDIDATE, ROOT))):
        print(f"{name}: gateway from {gateway_origin(source)}")
        url = redis_database(redis_url, number)
        pair.append(start_gateway(name, 1, sim_base, url, teams, logdir, started, source=source))
    for gw in pair:
        gw.child.wait_http(f"http://{HOST}:{gw.port}/healthz", {})
        attach(gw, scenarios)
    return pair[0], pair[1]


def measure(args: argparse.Namespace, wrk: str | None, baseline: Path, run: ABRun) -> None:
    """Start the servers, take every turn, stop them all; fills `run`. Raises SetupError."""
    with (
        tempfile.TemporaryDirectory(prefix="o1gw-bench-") as tmp_name,
        stopped_at_exit([]) as children,
    ):
        tmp = Path(tmp_name)
        redis_url, redis = start_redis(tmp, children)
        scenarios = [SCENARIOS[name] for name in args.scenarios]
        direct = start_simulator(tmp, children)
        attach(direct, scenarios)
        a, b = start_pair(baseline, direct.base, redis_url, tmp, children, scenarios)
        duration = args.slice * args.rounds
        runner = CellRunner(wrk, direct, [redis.pid], args.warmup, duration, args.rounds)
        run.comparisons += take_turns(args, runner, direct, a, b)
        fill_added(runner.cells)
        run.cells = runner.cells


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    raise_fd_limit()
    load_s = len(args.scenarios) * 5 * (args.rounds * args.slice + args.warmup)
    try:
        wrk = chosen_loadgen(args.loadgen)
        candidate_label = describe_working_tree()
        with baseline_source(args) as (baseline, baseline_label):
            header = (
                f"o1-gateway A/B (full pipeline, one worker each, one redis-server, one "
                f"simulator): {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
                f"{describe(wrk)}\n"
                f"A = {baseline_label}\nB = {candidate_label}\n"
                f"scenarios {', '.join(args.scenarios)}: c=1 direct, A, B and c={CONNECTIONS} "
                f"A, B taking turns, {args.rounds} rounds of {args.slice} s "
                f"(+{args.warmup} s warm-up in the first) = ~{load_s / 60:.1f} min of load"
            )
            print(header, flush=True)
            run = ABRun(header, baseline_label, candidate_label, [], [], os.cpu_count() or 1)
            measure(args, wrk, baseline, run)
    except SetupError as exc:
        print(f"\nSETUP FAILED: {exc}", file=sys.stderr)
        return 2
    name = "ab-quick" if args.quick else "ab"
    print_and_write(name, header, ab_sections(run), ab_record(run, vars(args)), args.results_dir)
    return 0 if no_regression(run.comparisons) and not error_report(run.cells) else 1


if __name__ == "__main__":
    sys.exit(main())
