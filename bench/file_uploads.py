"""Large file uploads: the gateway's peak memory and wall time while several large files are
uploaded through it at once; with `--baseline REV`, an earlier revision's gateway beside this
tree's.

Run from the repository root:

    python -m bench.file_uploads                        # this tree, ~10 s
    python -m bench.file_uploads --baseline main        # and main's code beside it
    python -m bench.file_uploads --mb 50 --uploads 4    # the defaults

It starts `python -m gateway simulate` and `python -m gateway serve` (one worker, the embedded
store, a team key) per revision; a baseline gets `server.max_body_bytes` raised so that it takes
the file at all (this tree bounds an upload by `server.max_upload_bytes`, 512 MiB). The
simulator holds files in memory and takes 64 MB at most. Then `--uploads` uploads of a `--mb` MB
file at once (the SDK's way: multipart with a Content-Length) to each gateway in turn: the wall
time until the last answer, their statuses, and the serving process's resident memory before
and its peak meanwhile (VmHWM, reset before them).
Exit status: 0 done, 2 setup failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from bench.batch_files import reset_peak, rss_now_mb
from bench.checkouts import checked_out, describe_commit, resolve
from bench.processes import HOST, ROOT, exit_status, peak_rss_mb, serving_pids, stopped_at_exit
from bench.report import Section
from bench.results import add_results_option, print_and_write
from bench.servers import GATEWAY_KEY, start_gateway, start_simulator, write_teams_file


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.file_uploads", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--baseline", help="also run this revision's gateway (e.g. main)")
    parser.add_argument("--mb", type=int, default=50, help="the file's size, MB (at most 63)")
    parser.add_argument("--uploads", type=int, default=4, help="uploads at once")
    add_results_option(parser)
    return parser.parse_args(argv)


@dataclass(slots=True)
class Outcome:
    wall_s: float = 0.0  # the uploads at once, until the last answer
    statuses: list[int] = field(default_factory=list)
    rss_before_mb: float = 0.0
    peak_mb: float = 0.0  # VmHWM during the uploads


async def uploads(base: str, data: bytes, count: int) -> tuple[list[int], float]:
    headers = {"Authorization": f"Bearer {GATEWAY_KEY}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=600) as client:
        began = time.monotonic()
        answers = await asyncio.gather(
            *(
                client.post("/files", files={"file": ("in.jsonl", data)}, data={"purpose": "batch"})
                for _ in range(count)
            )
        )
        return [a.status_code for a in answers], time.monotonic() - began


def run(args: argparse.Namespace) -> dict[str, Outcome]:
    line = b'{"custom_id": "r", "method": "POST", "url": "/v1/chat/completions"}\n'
    data = line * (args.mb * 1_000_000 // len(line))
    with (
        tempfile.TemporaryDirectory(prefix="o1gw-file-uploads-") as tmp,
        contextlib.ExitStack() as stack,
        stopped_at_exit([]) as started,
    ):
        logdir = Path(tmp)
        direct = start_simulator(logdir, started)
        teams = write_teams_file(logdir)
        subjects: list[tuple[str, Path, dict[str, str]]] = [("working tree", ROOT, {})]
        if args.baseline:
            commit = resolve(args.baseline)
            source = stack.enter_context(checked_out(commit))
            raised = {"O1GW__SERVER__MAX_BODY_BYTES": str(len(data) + 1_000_000)}
            subjects.append((describe_commit(commit), source, raised))
        outcomes: dict[str, Outcome] = {}
        for number, (name, source, env) in enumerate(subjects):
            gw = start_gateway(
                f"gw-{number}", 1, direct.base, "", teams, logdir, started, env, source
            )
            gw.child.wait_http(f"http://{HOST}:{gw.port}/healthz", {})
            (pid,) = serving_pids(gw.child, gw.port)
            outcome = outcomes[name] = Outcome(rss_before_mb=rss_now_mb(pid))
            reset_peak(pid)
            outcome.statuses, outcome.wall_s = asyncio.run(uploads(gw.base, data, args.uploads))
            outcome.peak_mb = peak_rss_mb([pid]) or 0.0
    return outcomes


def report(args: argparse.Namespace, outcomes: dict[str, Outcome]) -> None:
    rows = [
        f"| gateway | {args.uploads} at once: wall until the last (s) | statuses "
        "| RSS before → peak during them (MiB) |",
        "|---|---|---|---|",
    ]
    for name, o in outcomes.items():
        statuses = ", ".join(sorted({str(s) for s in o.statuses}))
        rows.append(
            f"| {name} | {o.wall_s:.2f} | {statuses} | {o.rss_before_mb:.0f} → {o.peak_mb:.0f} |"
        )
    record = {
        "mb": args.mb,
        "uploads": args.uploads,
        "gateways": {name: asdict(o) for name, o in outcomes.items()},
    }
    header = f"{args.uploads} uploads of a {args.mb} MB file at once"
    memory = Section("The gateway's memory", "\n".join(rows), True)
    print_and_write("file-uploads", header, [memory], record, args.results_dir)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return exit_status(lambda: report(args, run(args)))


if __name__ == "__main__":
    sys.exit(main())
