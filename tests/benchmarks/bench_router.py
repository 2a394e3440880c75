"""Auto-router benchmark: decision latency and estimated cost vs. sending everything to o1-preview.

Run from the repository root (not a pytest test, never collected):

    .venv/bin/python tests/benchmarks/bench_router.py

Reads the labelled prompts from ../shared/routing/dev.jsonl at run time. Prints the median and
p99 microseconds per decision over the dev prompts and over synthetic prompts of 1 KB .. 1 MB
(to show how cost grows with length), then the estimated price of routing relative to sending
every dev prompt to o1-preview (tokens ~ len/4; 500 output tokens, x4 for o1 reasoning tokens).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from gateway.router import route_text  # noqa: E402

DEV = ROOT.parent / "shared" / "routing" / "dev.jsonl"

# USD per 1M tokens (input, output).
PRICES = {"o1-preview": (15.0, 60.0), "o1-mini": (3.0, 12.0), "gpt-4o": (2.5, 10.0)}
OUTPUT_TOKENS = 500
REASONING_FACTOR = 4


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


def main() -> int:
    prompts = [json.loads(line)["prompt"] for line in DEV.open(encoding="utf-8") if line.strip()]
    for text in prompts[:50]:  # warm up
        route_text(text)

    med, p99 = _time(prompts, repeat=20)
    print(f"dev prompts ({len(prompts)}): median {med:8.1f} us   p99 {p99:8.1f} us")

    base = "\n\n".join(prompts)
    for size in (1 << 10, 10 << 10, 100 << 10, 1 << 20):
        text = (base * (size // len(base) + 1))[:size]
        repeat = 200 if size <= 10 << 10 else 20
        med, p99 = _time([text], repeat=repeat)
        print(f"prompt {size >> 10:>5} KB:     median {med:8.1f} us   p99 {p99:8.1f} us")

    routed = sum(_cost(route_text(p).model, p) for p in prompts)
    all_preview = sum(_cost("o1-preview", p) for p in prompts)
    print(
        f"cost: routed ${routed:.4f} vs all-o1-preview ${all_preview:.4f} "
        f"-> ratio {routed / all_preview:.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
