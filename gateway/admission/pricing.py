"""What a request costs, in integer micro-dollars. Pure.

Prices are micro-dollars per 1M tokens, so a cost is a sum of token x price products divided by
one million once, rounded up: the gateway never under-charges by rounding each term.
"""

from __future__ import annotations

from gateway.config import Price
from gateway.wire.usage import Usage

PER_TOKENS = 1_000_000


def cost_micros(price: Price, usage: Usage) -> int:
    cached = min(max(usage.cached_tokens, 0), usage.prompt_tokens)
    numerator = (
        (usage.prompt_tokens - cached) * price.input
        + cached * price.cached_input
        + usage.completion_tokens * price.output
    )
    return -(-numerator // PER_TOKENS)


def worst_case_micros(price: Price, prompt_tokens: int, completion_cap: int) -> int:
    """The most a request can cost: no cache hits, every allowed completion token used."""
    return cost_micros(price, Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_cap))
