"""What a prompt would cost on each model the router picks from, at fixed list prices. Pure.

The prices are fixed here, not read from config, so that a cost ratio does not move when the
gateway's configured prices do.
"""

from __future__ import annotations

from gateway.admission.pricing import cost_micros
from gateway.config import Price
from gateway.wire.usage import Usage

# Integer micro-dollars per 1M tokens (input, cached input, output): list prices.
PRICES = {
    "o1-preview": Price(input=15_000_000, cached_input=7_500_000, output=60_000_000),
    "o1-mini": Price(input=3_000_000, cached_input=1_500_000, output=12_000_000),
    "gpt-4o": Price(input=2_500_000, cached_input=1_250_000, output=10_000_000),
}
#: The models in tier order: general, reasoning, hardest.
TIERS = ("gpt-4o", "o1-mini", "o1-preview")
OUTPUT_TOKENS = 500
REASONING_FACTOR = 4  # o1 models bill their hidden reasoning tokens as output


def estimated_cost_micros(model: str, prompt: str) -> int:
    """What `prompt` would cost on `model`: about 4 characters a token in, a fixed answer out."""
    output = OUTPUT_TOKENS * (REASONING_FACTOR if model.startswith("o1") else 1)
    usage = Usage(prompt_tokens=-(-len(prompt) // 4), completion_tokens=output)
    return cost_micros(PRICES[model], usage)
