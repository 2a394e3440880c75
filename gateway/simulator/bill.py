"""What OpenAI would charge for the calls the simulator answered, in integer micro-dollars. Pure.

Prices are data below (USD per 1M tokens held as integer micro-dollars per 1M, like
`gateway.config.Price`; from openai-o1-facts.md and openai-surface-facts.md). Rounding, per
call (one bill line per call, then summed; never rounded again):

- Tokens (chat, Responses, embeddings, legacy completions, fine-tuned models, gpt-image-1,
  gpt-4o-mini-tts, gpt-4o transcription, training):
  `ceil((uncached_in * p_in + cached * p_cached + written * p_write + out * p_out) /
  1_000_000)`, one division rounded up. This is `gateway.admission.pricing.cost_micros`
  exactly, so the gateway's charge for a call equals the bill's to the micro-dollar. Cached
  input tokens and the ones written to the prompt cache (`cache_write_tokens`, reported by the
  models with a cache-write price, 1.25 times input) are part of the input and cost the cached
  and cache-write prices; reasoning tokens are part of the output and cost the output price.
  Media models with two input prices add `text_in * p_text + other_in * p_other` instead.
- GPT-6 models over 272,000 input tokens: the whole call at twice the input (and cached) price
  and 1.5 times the output price, `ceil((4 * input_part + 3 * output_part) / 2_000_000)` (the
  same single rounding, the multipliers brought to integers).
- Service tiers: a call the answer says was served at `flex` costs half of each per-token
  price, at `priority` twice (OpenAI's later pricing; `scale` and `default` the standard),
  each price rounded up to a whole micro-dollar per 1M tokens before the one division.
- Batch lines: each line at half price, `ceil(numerator / 2_000_000)` with the full-price
  numerator above, per line; the batch's bill line (endpoint `/v1/batches`) sums its lines and
  is added when the batch completes.
- DALL·E: a whole number of micro-dollars per image (by model, quality, size) times `n`.
- tts-1 / tts-1-hd: `ceil(characters * price_per_1M_characters / 1_000_000)` (15 and 30
  micro-dollars a character: exact).
- whisper-1: 100 micro-dollars per second of audio ($0.006 a minute is exactly that, so
  OpenAI's per-second billing needs no rounding).
- Fine-tuning: `ceil(trained_tokens * training_price / 1_000_000)` when a job succeeds.
- Moderations are free: no line.

`Bill` adds the lines up per API key and per (endpoint, model), summing their quantities into
`detail`, so it stays small however many calls a benchmark makes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from gateway.config import Price

PER_MILLION = 1_000_000
BATCH_DIVISOR = 2 * PER_MILLION

_GPT4O = Price(2_500_000, 1_250_000, 10_000_000)
_GPT4O_MINI = Price(150_000, 75_000, 600_000)
_O1_PREVIEW = Price(15_000_000, 7_500_000, 60_000_000)
_O1_MINI = Price(3_000_000, 1_500_000, 12_000_000)
# Percent of the standard per-token prices, by the `service_tier` an answer says served it.
TIER_PERCENT: dict[str, int] = {"flex": 50, "priority": 200}
# Long prompts cost more on the newest models (the threshold counts input tokens).
LONG_CONTEXT_INPUT = 272_000


def _flat(input_price: int, output_price: int = 0) -> Price:
    # Models without prompt caching: cached input (never reported) costs the input price.
    return Price(input_price, input_price, output_price)


TOKEN_PRICES: dict[str, Price] = {
    "gpt-4o": _GPT4O,
    "gpt-4o-2024-08-06": _GPT4O,
    "gpt-4o-mini": _GPT4O_MINI,
    "gpt-4o-mini-2024-07-18": _GPT4O_MINI,
    "o1-preview": _O1_PREVIEW,
    "o1-preview-2024-09-12": _O1_PREVIEW,
    "o1-mini": _O1_MINI,
    "o1-mini-2024-09-12": _O1_MINI,
    "text-embedding-3-small": _flat(20_000),
    "text-embedding-3-large": _flat(130_000),
    "text-embedding-ada-002": _flat(100_000),
    "gpt-3.5-turbo-instruct": _flat(1_500_000, 2_000_000),
    "babbage-002": _flat(400_000, 400_000),
    "davinci-002": _flat(2_000_000, 2_000_000),
    # Text in, audio out.
    "gpt-4o-mini-tts": _flat(600_000, 12_000_000),
    # Prompt-cache writes at 1.25 times the input price.
    "gpt-6-astra": Price(10_000_000, 1_000_000, 50_000_000, cache_write=12_500_000),
    "gpt-6-luna": Price(100_000, 10_000, 500_000, cache_write=125_000),
    "gpt-6.1-sol": Price(2_000_000, 100_000, 10_000_000, cache_write=2_500_000),
    # No cached price published: cached input costs the input price.
    "gpt-6.2-astra": _flat(8_000_000, 40_000_000),
}
LONG_CONTEXT_MODELS = frozenset({"gpt-6-astra", "gpt-6-luna", "gpt-6.1-sol", "gpt-6.2-astra"})
# Inference on a fine-tuned model, by its base (cached input at half the input price).
FINE_TUNED_PRICES: dict[str, Price] = {
    "gpt-4o-2024-08-06": Price(3_750_000, 1_875_000, 15_000_000),
    "gpt-4o-mini-2024-07-18": Price(300_000, 150_000, 1_200_000),
}
TRAINING_PRICES: dict[str, int] = {
    "gpt-4o-2024-08-06": 25_000_000,
    "gpt-4o-mini-2024-07-18": 3_000_000,
}


@dataclass(frozen=True, slots=True)
class MediaPrice:
    """Two kinds of input: text and image (gpt-image-1) or text and audio (transcription)."""

    text_input: int
    other_input: int
    output: int


MEDIA_PRICES: dict[str, MediaPrice] = {
    "gpt-image-1": MediaPrice(5_000_000, 10_000_000, 40_000_000),
    "gpt-4o-transcribe": MediaPrice(2_500_000, 6_000_000, 10_000_000),
    "gpt-4o-mini-transcribe": MediaPrice(1_250_000, 3_000_000, 5_000_000),
}
# (model, quality, size) -> micro-dollars per image.
IMAGE_PRICES: dict[tuple[str, str, str], int] = {
    ("dall-e-2", "standard", "256x256"): 16_000,
    ("dall-e-2", "standard", "512x512"): 18_000,
    ("dall-e-2", "standard", "1024x1024"): 20_000,
    ("dall-e-3", "standard", "1024x1024"): 40_000,
    ("dall-e-3", "standard", "1792x1024"): 80_000,
    ("dall-e-3", "standard", "1024x1792"): 80_000,
    ("dall-e-3", "hd", "1024x1024"): 80_000,
    ("dall-e-3", "hd", "1792x1024"): 120_000,
    ("dall-e-3", "hd", "1024x1792"): 120_000,
}
# Micro-dollars per 1M characters.
SPEECH_CHARACTER_PRICES: dict[str, int] = {"tts-1": 15_000_000, "tts-1-hd": 30_000_000}
WHISPER_MICROS_PER_SECOND = 100


@dataclass(frozen=True, slots=True)
class Charge:
    """One billable call: what it cost and the quantities it was priced on."""

    endpoint: str
    model: str
    micros: int
    detail: dict[str, int] = field(default_factory=dict)


def token_price(model: str) -> Price | None:
    """The per-token price of a model, fine-tuned ones (`ft:<base>:...`) at their base's."""
    if model.startswith("ft:"):
        return FINE_TUNED_PRICES.get(model.split(":")[1])
    return TOKEN_PRICES.get(model)


def _ceil_div(numerator: int, divisor: int) -> int:
    return -(-numerator // divisor)


def tokens_charge(
    endpoint: str,
    model: str,
    input_tokens: int,
    output_tokens: int = 0,
    *,
    cached_tokens: int = 0,
    reasoning_tokens: int = 0,
    cache_write_tokens: int = 0,
    batch: bool = False,
    tier: Any = None,
) -> Charge:
    price = token_price(model) or Price()
    percent = TIER_PERCENT.get(tier, 100) if type(tier) is str else 100
    if percent != 100:
        price = replace(
            price, **{
                name: _ceil_div(getattr(price, name) * percent, 100)
                for name in ("input", "cached_input", "output", "cache_write")
            },
        )  # fmt: skip
    cached = min(max(cached_tokens, 0), input_tokens)
    written = min(max(cache_write_tokens, 0), input_tokens - cached)
    input_part = (
        (input_tokens - cached - written) * price.input
        + cached * price.cached_input
        + written * (price.cache_write or price.input)
    )
    output_part = output_tokens * price.output
    numerator = input_part + output_part
    divisor = BATCH_DIVISOR if batch else PER_MILLION
    if model in LONG_CONTEXT_MODELS and input_tokens > LONG_CONTEXT_INPUT:
        numerator = 4 * input_part + 3 * output_part
        divisor *= 2
    detail = {"requests": 1, "input_tokens": input_tokens, "output_tokens": output_tokens}
    if cached:
        detail["cached_tokens"] = cached
    if written:
        detail["cache_write_tokens"] = written
    if reasoning_tokens:
        detail["reasoning_tokens"] = reasoning_tokens
    return Charge(endpoint, model, _ceil_div(numerator, divisor), detail)


def usage_charge(
    endpoint: str, model: str, usage: Any, *, batch: bool = False, tier: Any = None
) -> Charge:
    """The charge for a response's `usage`, in the chat/completions/embeddings shape
    (`prompt_tokens`...) or the Responses shape (`input_tokens`...), served at `tier`."""
    if not isinstance(usage, dict):
        return tokens_charge(endpoint, model, 0, batch=batch, tier=tier)
    if "input_tokens" in usage:
        details_in = usage.get("input_tokens_details") or {}
        details_out = usage.get("output_tokens_details") or {}
        return tokens_charge(
            endpoint,
            model,
            int(usage.get("input_tokens", 0)),
            int(usage.get("output_tokens", 0)),
            cached_tokens=int(details_in.get("cached_tokens", 0)),
            reasoning_tokens=int(details_out.get("reasoning_tokens", 0)),
            cache_write_tokens=int(details_in.get("cache_write_tokens", 0)),
            batch=batch,
            tier=tier,
        )
    details_in = usage.get("prompt_tokens_details") or {}
    details_out = usage.get("completion_tokens_details") or {}
    return tokens_charge(
        endpoint,
        model,
        int(usage.get("prompt_tokens", 0)),
        int(usage.get("completion_tokens", 0)),
        cached_tokens=int(details_in.get("cached_tokens", 0)),
        reasoning_tokens=int(details_out.get("reasoning_tokens", 0)),
        cache_write_tokens=int(details_in.get("cache_write_tokens", 0)),
        batch=batch,
        tier=tier,
    )


def media_charge(
    endpoint: str, model: str, text_input: int, other_input: int, output_tokens: int
) -> Charge:
    price = MEDIA_PRICES[model]
    numerator = (
        text_input * price.text_input
        + other_input * price.other_input
        + output_tokens * price.output
    )
    detail = {
        "requests": 1,
        "text_input_tokens": text_input,
        "other_input_tokens": other_input,
        "output_tokens": output_tokens,
    }
    return Charge(endpoint, model, _ceil_div(numerator, PER_MILLION), detail)


def image_charge(model: str, quality: str, size: str, n: int) -> Charge:
    micros = IMAGE_PRICES[(model, quality, size)] * n
    return Charge("/v1/images/generations", model, micros, {"requests": 1, "images": n})


def speech_charge(model: str, characters: int, input_tokens: int, output_tokens: int) -> Charge:
    if model in SPEECH_CHARACTER_PRICES:
        micros = _ceil_div(characters * SPEECH_CHARACTER_PRICES[model], PER_MILLION)
        return Charge("/v1/audio/speech", model, micros, {"requests": 1, "characters": characters})
    return tokens_charge("/v1/audio/speech", model, input_tokens, output_tokens)


def whisper_charge(endpoint: str, seconds: int) -> Charge:
    micros = seconds * WHISPER_MICROS_PER_SECOND
    return Charge(endpoint, "whisper-1", micros, {"requests": 1, "seconds": seconds})


def training_charge(base: str, fine_tuned_model: str, trained_tokens: int) -> Charge:
    micros = _ceil_div(trained_tokens * TRAINING_PRICES.get(base, 0), PER_MILLION)
    detail = {"jobs": 1, "trained_tokens": trained_tokens}
    return Charge("/v1/fine_tuning/jobs", fine_tuned_model, micros, detail)


def batch_charges(charges: list[Charge]) -> list[Charge]:
    """A completed batch's lines (already at batch price), one charge per model."""
    by_model: dict[str, Charge] = {}
    for charge in charges:
        seen = by_model.get(charge.model)
        if seen is None:
            by_model[charge.model] = Charge(
                "/v1/batches", charge.model, charge.micros, dict(charge.detail)
            )
        else:
            by_model[charge.model] = Charge(
                "/v1/batches",
                charge.model,
                seen.micros + charge.micros,
                _sum(seen.detail, charge.detail),
            )
    return list(by_model.values())


def _sum(left: dict[str, int], right: dict[str, int]) -> dict[str, int]:
    total = dict(left)
    for name, value in right.items():
        total[name] = total.get(name, 0) + value
    return total


class Bill:
    """The running bill, per API key and (endpoint, model)."""

    __slots__ = ("_lines",)

    def __init__(self) -> None:
        self._lines: dict[str, dict[tuple[str, str], Charge]] = {}

    def add(self, key: str, charge: Charge) -> None:
        lines = self._lines.setdefault(key, {})
        slot = (charge.endpoint, charge.model)
        seen = lines.get(slot)
        if seen is None:
            lines[slot] = charge
        else:
            detail = _sum(seen.detail, charge.detail)
            lines[slot] = Charge(charge.endpoint, charge.model, seen.micros + charge.micros, detail)

    def reset(self) -> None:
        self._lines.clear()

    def view(self) -> dict[str, Any]:
        by_key: dict[str, Any] = {}
        for key, lines in self._lines.items():
            rows = [
                {
                    "endpoint": line.endpoint,
                    "model": line.model,
                    "micros": line.micros,
                    "detail": line.detail,
                }
                for line in lines.values()
            ]
            by_key[key] = {"total_micros": sum(row["micros"] for row in rows), "lines": rows}
        total = sum(entry["total_micros"] for entry in by_key.values())
        return {"total_micros": total, "by_key": by_key}
