"""The gateway's full pipeline against the simulated upstream, measured in the same run.

Run from the repository root:

    python -m bench.proxy [--quick] [--litellm] [--profile S]

It starts a real redis-server, `python -m gateway simulate` (the upstream) and the gateway with
its full pipeline (`python -m gateway serve`: auth with a gateway key from a teams file,
admission on that Redis, routing, compatibility patches, metrics and the JSON access log, as
configured by default) with 1 and with 2 workers. For each scenario (chat non-streaming,
streaming and fake-streamed o1; the Responses API plain and streamed) and concurrency (1, 64,
512) it drives the simulator directly and each gateway with wrk (`chat.lua`; a bounded aiohttp
load generator when wrk is missing) and prints one table: req/s, latency added over the direct
upstream in the same run, server CPU per request, peak RSS; then the verdict against the
targets, and writes it all to bench/results/. `--litellm` also measures a LiteLLM proxy
(installed in its own virtual environment) on the same upstream and prints ratios.

Exit status: 0 measured (PASS or MISS), 1 the run had errors or non-2xx answers, 2 setup failed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench.cells import CellRunner
from bench.load import add_loadgen_option, chosen_loadgen, describe
from bench.measurement import fill_added
from bench.processes import HOST, SetupError, raise_fd_limit, stopped_at_exit
from bench.profiling import profile_gateway
from bench.report import (
    ProxyRun,
    access_log_line,
    admission_round_trips,
    error_report,
    proxy_record,
    proxy_sections,
)
from bench.results import add_results_option, print_and_write
from bench.scenarios import SCENARIOS, Scenario, scenario_names
from bench.servers import (
    LITELLM_SPEC,
    LITELLM_VENV,
    VARIANTS,
    Subject,
    attach,
    ensure_litellm,
    litellm_version,
    redis_calls,
    start_gateway,
    start_litellm,
    start_redis,
    start_subjects,
    write_teams_file,
)
from bench.targets import FRESH, HOT, proxy_verdicts

CONCURRENCIES = (1, 64, 512)
WORKERS = (1, 2)
INTERLEAVE_ROUNDS = 4  # at concurrency 1 every server is measured in this many slices
DRAIN_S = 15.0  # how long a server may take to finish the requests wrk left in flight


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected integers >= 1, got {text!r}")
    return values


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.proxy", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument(
        "--quick", action="store_true", help="3 s cells, 1 s warm-up (~2.5 min instead of ~5.5)"
    )
    parser.add_argument("--duration", type=int, help="seconds per measured cell (default 8)")
    parser.add_argument("--warmup", type=int, help="seconds of warm-up per cell (default 2)")
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated, of {', '.join(SCENARIOS)} (default: all)",
    )
    parser.add_argument(
        "--concurrency",
        type=_int_list,
        default=list(CONCURRENCIES),
        help="connections, comma-separated (default 1,64,512)",
    )
    parser.add_argument(
        "--workers",
        type=_int_list,
        default=list(WORKERS),
        help="full-pipeline gateways to run, by worker count (default 1,2; 1 is always run)",
    )
    parser.add_argument(
        "--variants",
        default="",
        help="opt-in one-worker comparisons, comma-separated: aiohttp or httpx (that upstream "
        "client instead of http1), noadmit (admission off)",
    )
    parser.add_argument(
        "--litellm",
        action="store_true",
        help=f"also measure a LiteLLM proxy (one worker, no database), installed on first use "
        f"into --litellm-venv ({LITELLM_SPEC})",
    )
    parser.add_argument("--litellm-venv", type=Path, default=LITELLM_VENV)
    parser.add_argument("--litellm-spec", default=LITELLM_SPEC, help="pip requirement")
    add_loadgen_option(parser)
    parser.add_argument(
        "--profile",
        type=int,
        metavar="S",
        help="py-spy the one-worker full-pipeline gateway for S seconds under c=64 "
        "load (--profile-scenario) after the table (default: 10 s only if it misses a target; "
        "0: never)",
    )
    parser.add_argument(
        "--profile-scenario",
        default="non-stream",
        choices=list(SCENARIOS),
        help="what --profile sends (default non-stream)",
    )
    add_results_option(parser)
    args = parser.parse_args(argv)
    try:
        args.scenarios = scenario_names(args.scenarios)
    except ValueError as exc:
        parser.error(f"--scenarios: {exc}")
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    bad = [v for v in args.variants if v not in VARIANTS]
    if bad:
        parser.error(f"--variants: expected some of {', '.join(VARIANTS)}, got {bad}")
    args.workers = sorted({1, *args.workers})
    if args.duration is None:
        args.duration = 3 if args.quick else 8
    if args.warmup is None:
        args.warmup = 1 if args.quick else 2
    if args.duration < 1 or args.warmup < 1:
        parser.error("--duration and --warmup are whole seconds >= 1")
    return args


def access_log_lines(gateways: Sequence[Subject]) -> list[str]:
    """Access-log lines each gateway wrote, against the requests it was sent."""
    out = []
    for gw in gateways:
        lines = 0
        with contextlib.suppress(OSError), gw.child.log_path.open("rb") as log:
            while chunk := log.read(1 << 20):
                lines += chunk.count(b'{"request_id":')
        path = gw.child.log_path
        size_mb = path.stat().st_size / 1e6 if path.exists() else 0.0
        out.append(access_log_line(gw.name, lines, gw.requests, size_mb))
    return out


def measure_all(
    args: argparse.Namespace, wrk: str | None, litellm_bin: Path | None, header: str
) -> ProxyRun:
    """Start every server, measure every cell, stop them all; raises SetupError."""
    scenarios: list[Scenario] = [SCENARIOS[s] for s in args.scenarios]
    run = ProxyRun(header=header, cells=[], verdicts=[], cpus=os.cpu_count() or 1)
    with (
        tempfile.TemporaryDirectory(prefix="o1gw-bench-") as tmp_name,
        stopped_at_exit([]) as children,
    ):
        tmp = Path(tmp_name)
        redis_url, redis = start_redis(tmp, children)
        direct, gateways = start_subjects(
            args.workers, args.variants, tmp, children, redis_url, scenarios
        )
        litellm: Subject | None = None
        if litellm_bin is not None:
            litellm = start_litellm(litellm_bin, direct.base, tmp, children)
            run.litellm_note = (
                f"LiteLLM {litellm_version(args.litellm_venv)} proxy, one worker, "
                f"no database, master key auth (venv {args.litellm_venv})"
            )
        calls_before = redis_calls(redis_url)
        runner = CellRunner(wrk, direct, [redis.pid], args.warmup, args.duration, INTERLEAVE_ROUNDS)
        for scenario in scenarios:
            for connections in args.concurrency:
                if connections == 1:
                    runner.run_interleaved([direct, *gateways], scenario)
                    continue
                for subject in [direct, *gateways]:
                    if not runner.run(subject, scenario, connections, DRAIN_S):
                        print(f"  !! {subject.name} still busy after {DRAIN_S:g}s")
        # LiteLLM last: its backlog at high concurrency must not load our cells. When it
        # cannot work it off, it is restarted (its RSS then starts again).
        for scenario in scenarios:
            for connections in args.concurrency:
                if litellm is None or litellm.body(scenario) is None:
                    continue
                if not runner.run(litellm, scenario, connections, DRAIN_S):
                    print(f"  .. {litellm.name} still busy after {DRAIN_S:g}s: restart")
                    litellm.child.stop()
                    assert litellm_bin is not None
                    litellm = start_litellm(litellm_bin, direct.base, tmp, children)
        # The RSS target is about 512 streams, not about everything a long-running process
        # has served before: measure it on a fresh one-worker gateway too.
        if 512 in args.concurrency:
            teams = write_teams_file(tmp)
            for scenario in scenarios:
                if not scenario.stream:
                    continue
                fresh = start_gateway(FRESH, 1, direct.base, redis_url, teams, tmp, children)
                fresh.child.wait_http(f"http://{HOST}:{fresh.port}/healthz", {})
                attach(fresh, [scenario])
                runner.run(fresh, scenario, 512, DRAIN_S)
                fresh.child.stop()
        run.cells = runner.cells
        fill_added(run.cells)
        admitted = sum(g.requests for g in gateways if "noadmit" not in g.name)
        run.redis_lines = admission_round_trips(admitted, calls_before, redis_calls(redis_url))
        run.verdicts = proxy_verdicts(run.cells)
        hot = next(g for g in gateways if g.name == HOT)
        missed = not all(v.met for v in run.verdicts)
        seconds = args.profile if args.profile is not None else (10 if missed else 0)
        if seconds > 0:
            load = SCENARIOS[args.profile_scenario]
            print(f"\nprofiling {hot.name} for {seconds}s under c=64 {load.name} load ...")
            run.profile_lines = profile_gateway(wrk, hot, seconds, tmp, load)
        for child in reversed(children):
            child.stop()  # the access logs are complete once the gateways have exited
        run.access_lines = access_log_lines(gateways)
    return run


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    raise_fd_limit()
    litellm_bin: Path | None = None
    try:
        wrk = chosen_loadgen(args.loadgen)
        if args.litellm:
            litellm_bin = ensure_litellm(args.litellm_venv, args.litellm_spec)
    except SetupError as exc:
        print(f"\nSETUP FAILED: {exc}", file=sys.stderr)
        return 2
    scenarios = [SCENARIOS[s] for s in args.scenarios]
    n_servers = 1 + len(args.workers) + len(args.variants)
    cells_planned = len(scenarios) * len(args.concurrency) * n_servers
    if args.litellm:
        cells_planned += sum(1 for s in scenarios if s.litellm) * len(args.concurrency)
    per_cell = args.warmup + args.duration
    header = (
        f"o1-gateway benchmark (full pipeline): {os.cpu_count()} CPUs, "
        f"Python {sys.version.split()[0]}, {describe(wrk)}\n"
        f"{cells_planned} cells x ({args.warmup}s warm-up + {args.duration}s) = "
        f"~{cells_planned * per_cell / 60:.1f} min of load; gateways: "
        + ", ".join([*(f"gw-{w}w" for w in args.workers), *args.variants])
        + (", litellm-1w" if args.litellm else "")
    )
    print(header, flush=True)
    try:
        run = measure_all(args, wrk, litellm_bin, header)
    except SetupError as exc:
        print(f"\nSETUP FAILED: {exc}", file=sys.stderr)
        return 2
    name = "proxy-quick" if args.quick else "proxy"
    record = proxy_record(run, vars(args))
    print_and_write(name, header, proxy_sections(run), record, args.results_dir)
    return 1 if error_report([c for c in run.cells if c.kind != "litellm"]) else 0


if __name__ == "__main__":
    sys.exit(main())
