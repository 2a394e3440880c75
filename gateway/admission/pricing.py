"""What a request costs, in integer micro-dollars. Pure.

Prices are micro-dollars per 1M tokens, so a cost is a sum of token x price products divided by
one million once, rounded up: the gateway never under-charges by rounding each term.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.config import Price

PER_TOKENS = 1_000_000


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # part of prompt_tokens, billed at the cached-input price
    reasoning_tokens: int = 0  # part of completion_tokens, billed as output

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


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


def usage_from(payload: Any) -> Usage | None:
    """Read an OpenAI `usage` object (chat, embeddings, or the responses API's shape)."""
    if not isinstance(payload, dict):
        return None
    prompt = _int(payload.get("prompt_tokens", payload.get("input_tokens")))
    completion = _int(payload.get("completion_tokens", payload.get("output_tokens")))
    if prompt is None and completion is None:
        return None
    prompt_details = (
        payload.get("prompt_tokens_details") or payload.get("input_tokens_details") or {}
    )
    completion_details = (
        payload.get("completion_tokens_details") or payload.get("output_tokens_details") or {}
    )
    return Usage(
        prompt_tokens=prompt or 0,
        completion_tokens=completion or 0,
        cached_tokens=_int(_get(prompt_details, "cached_tokens")) or 0,
        reasoning_tokens=_int(_get(completion_details, "reasoning_tokens")) or 0,
    )


def _get(details: Any, name: str) -> Any:
    return details.get(name) if isinstance(details, dict) else None


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value
