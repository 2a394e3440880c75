"""Large batch input files: the gateway's peak memory, and the create's latency and CPU, while
batches are created over one large input file; with `--baseline REV`, an earlier revision's
gateway beside this tree's.

With `--settle`, ended batches' output files instead: the gateway's peak memory, and the
wall time and CPU, while it settles `--creates` batches at once, each from an output file of
about `--mb` MB.

Run from the repository root:

    python -m bench.batch_files                        # this tree, ~1 min
    python -m bench.batch_files --baseline main        # and main's code beside it
    python -m bench.batch_files --mb 60 --creates 4    # the defaults
    python -m bench.batch_files --settle --mb 48 --baseline main

It starts `python -m gateway simulate` and `python -m gateway serve` (one worker, the embedded
store, a team key, `server.max_body_bytes` raised so that a revision that bounds an upload by
it takes the file too), writes a JSONL file of `--mb` MB of chat lines (about 2 KB each) in a
temporary directory and uploads it to each gateway. The simulator holds files in memory and takes 64 MB
at most, so the file is smaller than OpenAI's 200 MB limit; what a gateway that reads it whole
holds grows with it. Then one create alone on each gateway in turn, `--rounds` times (the
wall time and the serving process's CPU: on a shared host the CPU is the steadier figure), and
`--creates` creates at once on each: the wall time until the last is answered, their CPU, and
the serving process's peak resident memory meanwhile (VmHWM, reset before them: the upload
before is read whole).
With `--settle`, on each gateway in turn: an input file of embeddings lines (text-embedding-3-large,
whose answers are some 60 KB a line of vectors: the output about `--mb` MB, the input a few
hundred KB), `--creates` batches over it, which the simulator completes at once; then their
client reads them all at once, which settles each from its output file (the gateway's own
follower waits an hour): the wall time until the last answer, their CPU and the peak RSS
meanwhile. The simulator keeps 256 MB of files a key: `--mb` times `--creates` stays under it.
Exit status: 0 done, 2 setup failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import orjson

from bench.checkouts import checked_out, describe_commit, resolve
from bench.processes import (
    HOST,
    ROOT,
    TICK_MS,
    SetupError,
    cpu_ticks,
    exit_status,
    peak_rss_mb,
    serving_pids,
    stopped_at_exit,
)
from bench.report import Section, as_markdown, as_text
from bench.results import add_results_option, write_results
from bench.servers import GATEWAY_KEY, start_gateway, start_simulator, write_teams_file

LINE_TEXT = 1900  # characters of a line's message: a line of about 2 KB


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.batch_files", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--baseline", help="also run this revision's gateway (e.g. main)")
    parser.add_argument("--mb", type=int, default=60, help="the input file's size, MB")
    parser.add_argument("--creates", type=int, default=4, help="creates at once")
    parser.add_argument("--rounds", type=int, default=5, help="creates alone on each, in turn")
    parser.add_argument(
        "--settle", action="store_true", help="settle ended batches: --mb of output each"
    )
    add_results_option(parser)
    return parser.parse_args(argv)


def write_input(path: Path, megabytes: int) -> int:
    """A chat batch's input file of about `megabytes` MB; its line count."""
    words = ("the quick brown fox jumps over the lazy dog " * 50)[:LINE_TEXT]
    count = 0
    with path.open("wb") as out:
        while out.tell() < megabytes * 1_000_000:
            body = {
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": f"{count}: {words}"}],
                "max_tokens": 100,
            }
            line = {"custom_id": f"r{count}", "method": "POST", "url": "/v1/chat/completions"}
            out.write(orjson.dumps({**line, "body": body}) + b"\n")
            count += 1
    return count


# Characters of an embeddings line's input: short, its answer (3,072 floats) some 60 KB.
EMBEDDED_TEXT = 200
EMBEDDED_LINE_BYTES = 62_000  # about what the simulator answers one with, as a JSON line


def write_embeddings_input(path: Path, megabytes: int) -> int:
    """An embeddings batch's input file whose output is about `megabytes` MB; its lines."""
    words = ("the quick brown fox jumps over the lazy dog " * 5)[:EMBEDDED_TEXT]
    count = megabytes * 1_000_000 // EMBEDDED_LINE_BYTES
    with path.open("wb") as out:
        for n in range(count):
            body = {"model": "text-embedding-3-large", "input": f"{n}: {words}"}
            line = {"custom_id": f"r{n}", "method": "POST", "url": "/v1/embeddings"}
            out.write(orjson.dumps({**line, "body": body}) + b"\n")
    return count


@dataclass(slots=True)
class Outcome:
    alone_s: list[float] = field(default_factory=list)  # one create at a time
    alone_cpu_s: list[float] = field(default_factory=list)  # the gateway's CPU for each
    together_s: float = 0.0  # the creates at once, until the last answer
    together_cpu_s: float = 0.0
    statuses: list[int] = field(default_factory=list)
    rss_before_mb: float = 0.0
    peak_mb: float = 0.0  # VmHWM during the creates at once


def rss_now_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def reset_peak(pid: int) -> None:
    """VmHWM from now on (the upload before was read whole: its peak is not the creates')."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


@dataclass(frozen=True, slots=True)
class Served:
    base: str
    pid: int  # the serving process
    file_id: str


def client_of(served: Served) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {GATEWAY_KEY}"}
    return httpx.AsyncClient(base_url=served.base, headers=headers, timeout=600)


def batch_body(served: Served, endpoint: str) -> dict[str, str]:
    return {"input_file_id": served.file_id, "endpoint": endpoint, "completion_window": "24h"}


async def timed(
    served: Served, calls: Callable[[httpx.AsyncClient], list[Awaitable[httpx.Response]]]
) -> tuple[list[httpx.Response], float, float]:
    """The answers to `calls` made at once, the wall time until the last and the gateway's
    CPU seconds meanwhile."""
    async with client_of(served) as client:
        ticks, began = cpu_ticks([served.pid]), time.monotonic()
        answers = await asyncio.gather(*calls(client))
        wall = time.monotonic() - began
        cpu = (cpu_ticks([served.pid]) - ticks) * TICK_MS / 1000
    return list(answers), wall, cpu


async def creates(served: Served, count: int) -> tuple[list[int], float, float]:
    """`count` creates at once: their statuses, the wall time until the last answer and the
    gateway's CPU seconds meanwhile."""
    body = batch_body(served, "/v1/chat/completions")
    answers, wall, cpu = await timed(
        served, lambda client: [client.post("/batches", json=body) for _ in range(count)]
    )
    return [a.status_code for a in answers], wall, cpu


def measure(subjects: dict[str, Served], together: int, rounds: int) -> dict[str, Outcome]:
    """One create alone on each gateway in turn, `rounds` times (the host is shared: turns
    spread its load over both), then `together` creates at once on each."""
    outcomes = {name: Outcome() for name in subjects}
    for _ in range(rounds):
        for name, served in subjects.items():
            statuses, wall, cpu = asyncio.run(creates(served, 1))
            outcomes[name].alone_s.append(wall)
            outcomes[name].alone_cpu_s.append(cpu)
            outcomes[name].statuses += statuses
    for name, served in subjects.items():
        outcome = outcomes[name]
        outcome.rss_before_mb = rss_now_mb(served.pid)
        reset_peak(served.pid)
        statuses, outcome.together_s, outcome.together_cpu_s = asyncio.run(
            creates(served, together)
        )
        outcome.statuses += statuses
        outcome.peak_mb = peak_rss_mb([served.pid]) or 0.0
    return outcomes


async def ended(served: Served, count: int, sim_root: str) -> list[str]:
    """`count` embeddings batches over the served file, completed by the simulator."""
    body = batch_body(served, "/v1/embeddings")
    batch_ids: list[str] = []
    async with client_of(served) as client:
        for _ in range(count):
            answer = await client.post("/batches", json=body)
            if answer.status_code != 200:
                raise SetupError(f"create refused: {answer.status_code} {answer.text[:300]}")
            batch_ids.append(answer.json()["id"])
            done = await client.post(f"{sim_root}/_sim/batches/{batch_ids[-1]}/complete")
            if done.status_code != 200:
                raise SetupError(f"not completed: {done.status_code} {done.text[:300]}")
    return batch_ids


async def settles(served: Served, batch_ids: list[str]) -> tuple[list[int], float, float]:
    """The ended batches read at once by their client, each settled from its output file:
    their statuses, the wall time until the last answer and the gateway's CPU seconds."""
    answers, wall, cpu = await timed(
        served, lambda client: [client.get(f"/batches/{b}") for b in batch_ids]
    )
    if any(a.status_code == 200 and a.json().get("status") != "completed" for a in answers):
        raise SetupError("a batch read had not ended")
    return [a.status_code for a in answers], wall, cpu


def measure_settles(served: Served, together: int, sim_root: str) -> Outcome:
    outcome = Outcome()
    batch_ids = asyncio.run(ended(served, together, sim_root))
    outcome.rss_before_mb = rss_now_mb(served.pid)
    reset_peak(served.pid)
    outcome.statuses, outcome.together_s, outcome.together_cpu_s = asyncio.run(
        settles(served, batch_ids)
    )
    outcome.peak_mb = peak_rss_mb([served.pid]) or 0.0
    return outcome


def upload(base: str, path: Path) -> str:
    with path.open("rb") as data:
        answer = httpx.post(
            f"{base}/files", headers={"Authorization": f"Bearer {GATEWAY_KEY}"},
            files={"file": ("in.jsonl", data)}, data={"purpose": "batch"}, timeout=300,
        )  # fmt: skip
    if answer.status_code != 200:
        raise SetupError(f"upload refused: {answer.status_code} {answer.text[:300]}")
    file_id: str = answer.json()["id"]
    return file_id


def run(args: argparse.Namespace) -> tuple[int, dict[str, Outcome]]:
    with (
        tempfile.TemporaryDirectory(prefix="o1gw-batch-files-") as tmp,
        contextlib.ExitStack() as stack,
        stopped_at_exit([]) as started,
    ):
        logdir = Path(tmp)
        path = logdir / "input.jsonl"
        write = write_embeddings_input if args.settle else write_input
        lines = write(path, args.mb)
        direct = start_simulator(logdir, started)
        teams = write_teams_file(logdir)
        size = {"O1GW__SERVER__MAX_BODY_BYTES": str(path.stat().st_size + 1_000_000)}
        if args.settle:  # settled when read, not by the gateway's follower meanwhile
            size["O1GW__BATCHES__POLL_S"] = "3600"
        subjects = [("working tree", ROOT)]
        if args.baseline:
            commit = resolve(args.baseline)
            subjects.append((describe_commit(commit), stack.enter_context(checked_out(commit))))
        served: dict[str, Served] = {}
        for name, source in subjects:
            gw = start_gateway(
                f"gw-{len(served)}", 1, direct.base, "", teams, logdir, started, size, source
            )
            gw.child.wait_http(f"http://{HOST}:{gw.port}/healthz", {})
            (pid,) = serving_pids(gw.child, gw.port)
            # Settling, each uploads when its turn comes: the simulator keeps 256 MB of files
            # a key, and drops the oldest (the last gateway's, settled already) for the next.
            served[name] = Served(gw.base, pid, "" if args.settle else upload(gw.base, path))
        if args.settle:
            sim_root = direct.base.removesuffix("/v1")
            outcomes = {
                name: measure_settles(
                    Served(s.base, s.pid, upload(s.base, path)), args.creates, sim_root
                )
                for name, s in served.items()
            }
        else:
            outcomes = measure(served, args.creates, args.rounds)
    return lines, outcomes


def table(outcomes: dict[str, Outcome], together: int, settle: bool) -> str:
    """The figures of each gateway; with `settle`, of the settles at once only."""
    alone = "| one create alone: wall, median (s) | its CPU, median (s) "
    did = "settled" if settle else "at once"
    rows = [
        f"| gateway {'' if settle else alone}| {together} {did}: wall until the last (s) "
        "| their CPU (s) | RSS before (MiB) | peak RSS during them (MiB) | statuses |",
        "|---|---|---|---|---|---|" + ("" if settle else "---|---|"),
    ]
    for name, o in outcomes.items():
        statuses = ", ".join(sorted({str(s) for s in o.statuses}))
        medians = (
            ""
            if settle
            else f"| {statistics.median(o.alone_s):.2f} | {statistics.median(o.alone_cpu_s):.2f} "
        )
        rows.append(
            f"| {name} {medians}| {o.together_s:.2f} | {o.together_cpu_s:.2f} "
            f"| {o.rss_before_mb:.0f} | {o.peak_mb:.0f} | {statuses} |"
        )
    return "\n".join(rows)


def report(args: argparse.Namespace, lines: int, outcomes: dict[str, Outcome]) -> None:
    """Print the run's figures and write its results files."""
    if args.settle:
        sections = [
            Section(
                "",
                f"{args.creates} embeddings batches of {lines} lines, an output file of about "
                f"{args.mb} MB each, settled at once as their client reads them",
            ),
            Section(
                "Settling: the gateway's memory", table(outcomes, args.creates, settle=True), True
            ),
        ]
        return finish_report(args, lines, outcomes, sections)
    sections = [
        Section(
            "",
            f"an input file of {args.mb} MB ({lines} chat lines); {args.creates} creates at "
            f"once, {args.rounds} alone",
        ),
        Section(
            "Latency, CPU and the gateway's memory",
            table(outcomes, args.creates, settle=False),
            True,
        ),
    ]
    finish_report(args, lines, outcomes, sections)


def finish_report(
    args: argparse.Namespace, lines: int, outcomes: dict[str, Outcome], sections: list[Section]
) -> None:
    print(as_text(sections))
    record = {
        "mb": args.mb,
        "lines": lines,
        "creates": args.creates,
        "settle": args.settle,
        "gateways": {name: asdict(o) for name, o in outcomes.items()},
    }
    path = write_results("batch-files", record, as_markdown(sections), args.results_dir)
    print(f"\nwritten: {path}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return exit_status(lambda: report(args, *run(args)))


if __name__ == "__main__":
    sys.exit(main())
