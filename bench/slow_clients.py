"""Slow and hostile clients: a gateway's memory and answers while hundreds of connections trickle
request heads, flood headers, stall bodies or send nothing (`bench/hostile.py`), with valid
clients served meanwhile; with `--baseline REV`, an earlier revision's gateway the same way.

Run from the repository root:

    python -m bench.slow_clients                    # this tree, ~15 s
    python -m bench.slow_clients --baseline main    # and main's code after it

It starts `python -m gateway simulate` and `python -m gateway serve` (one worker, the embedded
store, a team key), warms the gateway with 20 calls, then opens every hostile connection at
once while four openai-SDK clients call chat completions until the last hostile connection has
ended: answered, closed, or given up on by the client after `--give-up-s`. It prints, per
gateway, how each kind of connection ended and the gateway's RSS before, at its peak and after.
The working tree gets `--header-timeout-s` and `--body-timeout-s`; a baseline runs with its own
config (a revision without these keys would refuse them).
Exit status: 0 done, 2 setup failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench.checkouts import checked_out, describe_commit, resolve
from bench.hostile import CLOSED, KINDS, STILL_OPEN, Mix, Outcome, attack
from bench.processes import HOST, ROOT, SetupError, raise_fd_limit, stopped_at_exit
from bench.report import Section, as_markdown, as_text
from bench.results import add_results_option, write_results
from bench.servers import GATEWAY_KEY, start_gateway, start_simulator, write_teams_file


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.slow_clients", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--baseline", help="also run this revision's gateway (e.g. main)")
    defaults = Mix()
    for kind in KINDS:
        parser.add_argument(f"--{kind}", type=int, default=getattr(defaults, kind))
    parser.add_argument("--flood-bytes", type=int, default=defaults.flood_bytes)
    parser.add_argument("--give-up-s", type=float, default=20.0)
    parser.add_argument("--header-timeout-s", type=float, default=2.0)
    parser.add_argument("--body-timeout-s", type=float, default=2.0)
    add_results_option(parser)
    return parser.parse_args(argv)


def describe(counts: dict[int, int]) -> str:
    names = {CLOSED: "closed", STILL_OPEN: "still open"}
    return ", ".join(f"{n} {names.get(status, status)}" for status, n in sorted(counts.items()))


def table(outcomes: dict[str, Outcome]) -> str:
    rows = [
        "| gateway | " + " | ".join(KINDS) + " | valid calls ok / failed "
        "| RSS before / peak / after (MiB) |",
        "|---" * (len(KINDS) + 3) + "|",
    ]
    for name, o in outcomes.items():
        rows.append(
            f"| {name} | "
            + " | ".join(describe(o.answers[kind]) for kind in KINDS)
            + f" | {o.valid_ok} / {len(o.valid_failed)} "
            f"| {o.rss_before_mb:.1f} / {o.rss_peak_mb:.1f} / {o.rss_after_mb:.1f} |"
        )
    return "\n".join(rows)


def run(args: argparse.Namespace) -> dict[str, Outcome]:
    mix = Mix(
        trickle=args.trickle, flood=args.flood, stall=args.stall, silent=args.silent,
        flood_bytes=args.flood_bytes, give_up_s=args.give_up_s,
    )  # fmt: skip
    limits = {
        "O1GW__SERVER__HEADER_TIMEOUT_S": str(args.header_timeout_s),
        "O1GW__SERVER__BODY_TIMEOUT_S": str(args.body_timeout_s),
    }
    outcomes: dict[str, Outcome] = {}
    with (
        tempfile.TemporaryDirectory(prefix="o1gw-slow-clients-") as tmp,
        contextlib.ExitStack() as stack,
        stopped_at_exit([]) as started,
    ):
        logdir = Path(tmp)
        direct = start_simulator(logdir, started)
        teams = write_teams_file(logdir)
        subjects = [("working tree", ROOT, limits)]
        if args.baseline:
            commit = resolve(args.baseline)
            source = stack.enter_context(checked_out(commit))
            subjects.append((describe_commit(commit), source, {}))
        for name, source, extra in subjects:
            gw = start_gateway(
                f"gw-{len(outcomes)}", 1, direct.base, "", teams, logdir, started, extra, source
            )
            gw.child.wait_http(f"http://{HOST}:{gw.port}/healthz", {})
            outcomes[name] = asyncio.run(attack(HOST, gw.port, GATEWAY_KEY, mix, gw.child.pid))
            gw.child.stop()
    return outcomes


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    raise_fd_limit()
    try:
        outcomes = run(args)
    except SetupError as exc:
        print(f"setup failed: {exc}", file=sys.stderr)
        return 2
    sections = [
        Section(
            "",
            f"{args.trickle} trickling heads, {args.flood} header floods of up to "
            f"{args.flood_bytes} bytes, {args.stall} stalled bodies, {args.silent} silent "
            f"connections at once; clients give up after {args.give_up_s:g} s",
        ),
        Section("How each connection ended, and the gateway's memory", table(outcomes), True),
    ]
    print(as_text(sections))
    record = {
        name: {
            "answers": {kind: dict(o.answers[kind]) for kind in KINDS},
            "valid_ok": o.valid_ok,
            "valid_failed": o.valid_failed[:20],
            "rss_mb": {"before": o.rss_before_mb, "peak": o.rss_peak_mb, "after": o.rss_after_mb},
        }
        for name, o in outcomes.items()
    }
    print(
        f"\nwritten: {write_results('slow-clients', record, as_markdown(sections), args.results_dir)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
