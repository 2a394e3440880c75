"""Auto-router benchmark: decision latency, accuracy and estimated cost vs. all-o1-preview.

Run from the repository root (not a pytest test, never collected):

    .venv/bin/python tests/benchmarks/bench_router.py

Reads the labelled prompts from ../shared/routing/dev.jsonl at run time. Prints

* the median and p99 microseconds per decision over the dev prompts;
* the median over synthetic prompts of 100 B .. 1 MB with microseconds per KB, so linear growth
  (constant us/KB) and the bounded head+tail scan (falling us/KB past ~8 KB) are visible;
* per-class acceptable accuracy and the share of hard prompts sent to gpt-4o;
* the estimated price of routing relative to sending every dev prompt to o1-preview
  (tokens ~ len/4; 500 output tokens, x4 for o1 reasoning tokens).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from gateway.routing.heuristic import route_text  # noqa: E402

DEV = ROOT.parent / "shared" / "routing" / "dev.jsonl"

# USD per 1M tokens (input, output).
PRICES = {"o1-preview": (15.0, 60.0), "o1-mini": (3.0, 12.0), "gpt-4o": (2.5, 10.0)}
OUTPUT_TOKENS = 500
REASONING_FACTOR = 4
SIZES = (100, 1 << 10, 10 << 10, 100 << 10, 1 << 20)


def _cost(model: str, prompt: str) -> float:
    price_in, price_out = PRICES[model]
    out = OUTPUT_TOKENS * (REASONING_FACTOR if model.startswith("o1") else 1)
    return (len(prompt) / 4 * price_in + out * price_out) / 1e6


def _time(texts: list[str], repeat: int) -> tuple[float, float]:
    samples: list[float] = []
    for _ in range(repeat):
        for text in texts:
            t0 = time.perf_counter_ns()
            route_text(text)
            samples.append((time.perf_counter_ns() - t0) / 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def _accuracy(rows: list[dict[str, Any]]) -> None:
    ok: Counter[str] = Counter()
    total: Counter[str] = Counter()
    hard = hard_to_4o = 0
    for row in rows:
        model = route_text(row["prompt"]).model
        total[row["class"]] += 1
        ok[row["class"]] += model in row["acceptable"]
        if row["class"] in ("hard-stem", "hard-science"):
            hard += 1
            hard_to_4o += model == "gpt-4o"
    for cls in sorted(total):
        print(f"  {cls:<14} {ok[cls] / total[cls]:6.1%} acceptable of {total[cls]}")
    print(
        f"  {'overall':<14} {sum(ok.values()) / len(rows):6.1%} acceptable; "
        f"hard -> gpt-4o {hard_to_4o / max(hard, 1):.1%}"
    )


def main() -> int:
    rows = [json.loads(line) for line in DEV.open(encoding="utf-8") if line.strip()]
    prompts = [row["prompt"] for row in rows]
    for text in prompts[:50]:  # warm up
        route_text(text)

    med, p99 = _time(prompts, repeat=20)
    print(f"dev prompts ({len(prompts)}): median {med:8.1f} us   p99 {p99:8.1f} us")

    base = "\n\n".join(prompts)
    for size in SIZES:
        text = (base * (size // len(base) + 1))[:size]
        repeat = 500 if size <= 10 << 10 else 50
        med, p99 = _time([text], repeat=repeat)
        label = f"{size} B" if size < 1024 else f"{size >> 10} KB"
        print(
            f"prompt {label:>8}:  median {med:8.1f} us   p99 {p99:8.1f} us"
            f"   {med / (size / 1024):8.1f} us/KB"
        )

    print("accuracy on dev:")
    _accuracy(rows)

    routed = sum(_cost(route_text(p).model, p) for p in prompts)
    all_preview = sum(_cost("o1-preview", p) for p in prompts)
    print(
        f"cost: routed ${routed:.4f} vs all-o1-preview ${all_preview:.4f} "
        f"-> ratio {routed / all_preview:.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
