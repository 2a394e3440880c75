"""Auto-router benchmark: decision latency, accuracy and estimated cost against sending every
prompt to o1-preview.

Run from the repository root:

    python -m bench.router [--prompts FILE]

Reads labelled prompts (JSON lines with `prompt`, `class`, `acceptable`; by default
../shared/routing/dev.jsonl next to the repository) and prints

* the median and p99 microseconds per decision over the prompts;
* the median over synthetic prompts of 100 B .. 1 MB with microseconds per KB, so linear growth
  (constant us/KB) and the bounded head+tail scan (falling us/KB past ~8 KB) are visible;
* per-class acceptable accuracy, the share of hard prompts sent to gpt-4o and of general
  prompts sent to a reasoning model, on the prompts and on tests/data/router_holdout.jsonl
  (the prompts are marked in-sample when the router's weights were trained on them: the
  dev set is; its leave-one-source-out estimate is `python -m bench.router_train --loso`);
* the estimated price of routing relative to sending every prompt to o1-preview (tokens ~
  len/4; 500 output tokens, x4 for o1 reasoning tokens).

The report goes to bench/results/ too.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.measurement import percentile
from bench.processes import ROOT
from bench.results import add_results_option, write_results
from bench.router_cost import PRICES, estimated_cost_micros
from gateway.routing import evaluation
from gateway.routing.heuristic import MODEL, route_text

__all__ = ["estimated_cost_micros", "main", "size_label"]

DEV = ROOT.parent / "shared" / "routing" / "dev.jsonl"
HOLDOUT = ROOT / "tests" / "data" / "router_holdout.jsonl"
SIZES = (100, 1 << 10, 10 << 10, 100 << 10, 1 << 20)


def size_label(size: int) -> str:
    return f"{size} B" if size < 1024 else f"{size >> 10} KB"


def time_decisions(texts: Sequence[str], repeat: int) -> tuple[float, float]:
    """(median, p99) microseconds per routing decision."""
    samples: list[float] = []
    for _ in range(repeat):
        for text in texts:
            t0 = time.perf_counter_ns()
            route_text(text)
            samples.append((time.perf_counter_ns() - t0) / 1000)
    samples.sort()
    return statistics.median(samples), percentile(samples, 0.99)


def accuracy_lines(report: evaluation.Report) -> list[str]:
    out = [
        f"  {name:<14} {report.class_accuracy(name):6.1%} acceptable of {result.total}"
        for name, result in report.classes.items()
    ]
    out.append(
        f"  {'overall':<14} {report.accuracy:6.1%} acceptable; "
        f"hard -> gpt-4o {report.hard_to_general_share:.1%}; "
        f"general -> o1 {report.general_to_reasoning_share:.1%}"
    )
    return out


def in_sample(path: Path) -> bool:
    """Whether the router's weights were trained on the file at `path`."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return any(data["sha256"] == digest for data in MODEL.provenance["data"])


def read_labelled(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def evaluate(rows: list[dict[str, Any]]) -> evaluation.Report:
    prompts = [row["prompt"] for row in rows]
    routed = [route_text(p).model for p in prompts]
    costs = [{model: estimated_cost_micros(model, p) for model in PRICES} for p in prompts]
    return evaluation.evaluate(rows, routed, costs=costs)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.router", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--prompts", type=Path, default=DEV, help=f"labelled JSON lines ({DEV})")
    add_results_option(parser)
    args = parser.parse_args(argv)
    if not args.prompts.is_file():
        print(f"no labelled prompts at {args.prompts} (--prompts FILE)", file=sys.stderr)
        return 2
    rows = read_labelled(args.prompts)
    prompts = [row["prompt"] for row in rows]
    for text in prompts[:50]:  # warm up
        route_text(text)

    record: dict[str, Any] = {"prompts": str(args.prompts), "sizes": {}}
    out: list[str] = []
    med, p99 = time_decisions(prompts, repeat=20)
    record["decision_us"] = {"median": med, "p99": p99, "prompts": len(prompts)}
    out.append(f"dev prompts ({len(prompts)}): median {med:8.1f} us   p99 {p99:8.1f} us")
    base = "\n\n".join(prompts)
    for size in SIZES:
        text = (base * (size // len(base) + 1))[:size]
        med, p99 = time_decisions([text], repeat=500 if size <= 10 << 10 else 50)
        per_kb = med / (size / 1024)
        record["sizes"][size] = {"median_us": med, "p99_us": p99, "us_per_kb": per_kb}
        out.append(
            f"prompt {size_label(size):>8}:  median {med:8.1f} us   p99 {p99:8.1f} us"
            f"   {per_kb:8.1f} us/KB"
        )

    report = evaluate(rows)
    sample = " (in-sample: the router was trained on it)" if in_sample(args.prompts) else ""
    out.append(f"accuracy on {args.prompts.name}{sample}:")
    out += accuracy_lines(report)
    cost, baseline = report.cost_micros or 0, report.baseline_micros or 0
    share = cost / baseline if baseline else 0.0
    out.append(
        f"cost: routed ${cost / 1e6:.4f} vs all-o1-preview ${baseline / 1e6:.4f} "
        f"-> ratio {share:.3f}"
    )
    record["accuracy"] = {name: report.class_accuracy(name) for name in report.classes}
    record["accuracy"]["overall"] = report.accuracy
    record["hard_to_gpt_4o"] = report.hard_to_general_share
    record["cost_micros"] = {"routed": cost, "all_o1_preview": baseline}
    held = evaluate(read_labelled(HOLDOUT))
    out.append(f"accuracy on {HOLDOUT.relative_to(ROOT)} (held out):")
    out += accuracy_lines(held)
    record["holdout"] = {name: held.class_accuracy(name) for name in held.classes}
    record["holdout"]["overall"] = held.accuracy
    text = "\n".join(out)
    print(text)
    path = write_results("router", record, f"```\n{text}\n```", args.results_dir)
    print(f"\nresults: {path} and {path.with_suffix('.md').name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
