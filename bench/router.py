"""Auto-router benchmark: decision latency, accuracy and estimated cost against sending every
prompt to o1-preview.

Run from the repository root:

    python -m bench.router [--prompts FILE]

Reads labelled prompts (JSON lines with `prompt`, `class`, `acceptable`; by default
../shared/routing/dev.jsonl next to the repository) and prints

* the median and p99 microseconds per decision over the prompts;
* the median over synthetic prompts of 100 B .. 1 MB with microseconds per KB, so linear growth
  (constant us/KB) and the bounded head+tail scan (falling us/KB past ~8 KB) are visible;
* per-class acceptable accuracy and the share of hard prompts sent to gpt-4o;
* the estimated price of routing relative to sending every prompt to o1-preview (tokens ~
  len/4; 500 output tokens, x4 for o1 reasoning tokens).

The report goes to bench/results/ too.
"""

from __future__ import annotations

import argparse
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
from gateway.admission.pricing import cost_micros
from gateway.config import Price
from gateway.routing import evaluation
from gateway.routing.heuristic import route_text
from gateway.wire.usage import Usage

DEV = ROOT.parent / "shared" / "routing" / "dev.jsonl"

# Integer micro-dollars per 1M tokens (input, cached input, output): list prices, fixed here
# so that the ratio does not move when the gateway's configured prices do.
PRICES = {
    "o1-preview": Price(input=15_000_000, cached_input=7_500_000, output=60_000_000),
    "o1-mini": Price(input=3_000_000, cached_input=1_500_000, output=12_000_000),
    "gpt-4o": Price(input=2_500_000, cached_input=1_250_000, output=10_000_000),
}
OUTPUT_TOKENS = 500
REASONING_FACTOR = 4  # o1 models bill their hidden reasoning tokens as output
SIZES = (100, 1 << 10, 10 << 10, 100 << 10, 1 << 20)


def estimated_cost_micros(model: str, prompt: str) -> int:
    """What `prompt` would cost on `model`: about 4 characters a token in, a fixed answer out."""
    output = OUTPUT_TOKENS * (REASONING_FACTOR if model.startswith("o1") else 1)
    usage = Usage(prompt_tokens=-(-len(prompt) // 4), completion_tokens=output)
    return cost_micros(PRICES[model], usage)


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
        f"hard -> gpt-4o {report.hard_to_general_share:.1%}"
    )
    return out


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
    with args.prompts.open(encoding="utf-8") as lines:
        rows = [json.loads(line) for line in lines if line.strip()]
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

    routed = [route_text(p).model for p in prompts]
    costs = [{model: estimated_cost_micros(model, p) for model in PRICES} for p in prompts]
    report = evaluation.evaluate(rows, routed, costs=costs)
    out.append("accuracy on dev:")
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
    text = "\n".join(out)
    print(text)
    path = write_results("router", record, f"```\n{text}\n```", args.results_dir)
    print(f"\nresults: {path} and {path.with_suffix('.md').name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
