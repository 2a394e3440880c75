"""The pure steps of a chat request, timed alone: what each costs on its own, and a bound for the
request validator (a check that every request pays before anything else is spent on it).

Run from the repository root:

    python -m bench.steps

Each step runs in rounds of many calls; the figure is the fastest round's time per call (the
least disturbed by the host), with the median round's beside it. The report goes to
bench/results/ too.
"""

from __future__ import annotations

import argparse
import sys
import timeit
from collections.abc import Callable, Sequence
from typing import Any

from bench.results import add_results_option, write_results
from gateway.admission.decision import decode_admit, ratelimit_headers
from gateway.admission.plan import REQUESTS, RPM, Bucket, Plan
from gateway.admission.pricing import worst_case_micros
from gateway.compat.patches import rewrite_chat
from gateway.config import Capabilities, Price, ServerConfig
from gateway.wire.tokens import count_messages
from gateway.wire.validation import check_chat

# What the suite once asserted per call; well above what the validator needs.
VALIDATOR_BOUND_US = 50.0
ROUNDS = 5
CALLS = 20_000

PAYLOAD: dict[str, Any] = {
    "model": "gpt-4o",
    "messages": [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "Hello there, how are you today?"},
    ],
    "max_tokens": 100,
    "temperature": 0.7,
}
FULL = Capabilities()
O1 = Capabilities(
    system_messages=False, streaming=False, tools=False, response_format=False, json_schema=False,
    sampling_params=False, max_tokens=False, logprobs=False, images=False,
)  # fmt: skip
PLAN = Plan(
    hold_id="h1",
    team="team",
    model="gpt-4o",
    tag="{t:team}",
    buckets=(Bucket("{t:team}:rpm:gpt-4o", REQUESTS, 500, 1, RPM),),
    weekly=(),
    budget=None,
    reserve=1_000,
    est_tokens=1_000,
)
REPLY = [1, 0, 0, 0, 0, 29_999_999, 1_000]


def steps() -> dict[str, Callable[[], object]]:
    server = ServerConfig()
    price = Price(input=2_500_000, cached_input=1_250_000, output=10_000_000)
    messages = PAYLOAD["messages"]
    return {
        "validate a chat request": lambda: check_chat(PAYLOAD, server),
        "count its prompt tokens": lambda: count_messages(messages),
        "rewrite it for gpt-4o (nothing to patch)": lambda: rewrite_chat(
            PAYLOAD, FULL, min_completion_tokens=4096
        ),
        "rewrite it for o1 (system role, max_tokens, sampling)": lambda: rewrite_chat(
            PAYLOAD, O1, min_completion_tokens=4096
        ),
        "price its worst case": lambda: worst_case_micros(price, 20, 16_384),
        "decode an admitting reply": lambda: decode_admit(PLAN, REPLY),
        "x-ratelimit-* headers of a decision": lambda: ratelimit_headers(
            decode_admit(PLAN, REPLY).windows
        ),
    }


def per_call_us(rounds: Sequence[float], calls: int) -> tuple[float, float]:
    """(fastest, median) microseconds per call over rounds of `calls` calls each."""
    ordered = sorted(rounds)
    return ordered[0] / calls * 1e6, ordered[len(ordered) // 2] / calls * 1e6


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.steps", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    add_results_option(parser)
    args = parser.parse_args(argv)
    record: dict[str, Any] = {"calls_per_round": CALLS, "rounds": ROUNDS, "steps_us": {}}
    lines = [f"{'step':<56} {'fastest':>9} {'median':>9}  (us per call)"]
    for name, step in steps().items():
        fastest, median = per_call_us(timeit.repeat(step, number=CALLS, repeat=ROUNDS), CALLS)
        record["steps_us"][name] = {"fastest": fastest, "median": median}
        lines.append(f"{name:<56} {fastest:9.2f} {median:9.2f}")
    validator = record["steps_us"]["validate a chat request"]["fastest"]
    verdict = "PASS" if validator < VALIDATOR_BOUND_US else "FAIL"
    record["validator_bound_us"] = VALIDATOR_BOUND_US
    record["verdict"] = verdict
    lines.append(
        f"\n{verdict}  request validation: {validator:.2f} us per call "
        f"(target < {VALIDATOR_BOUND_US:g} us)"
    )
    text = "\n".join(lines)
    print(text)
    path = write_results("steps", record, f"```\n{text}\n```", args.results_dir)
    print(f"\nresults: {path} and {path.with_suffix('.md').name}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
