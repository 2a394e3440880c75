"""POST /v1/moderations: validation and a plausible, deterministic verdict.

Pure. Scores are tiny values derived from a hash of the input, except that a few obvious words
push their category over the threshold, so tests can produce a flagged result on purpose.
"""

from __future__ import annotations

import hashlib
from typing import Any

from gateway.simulator import openai_errors as oe
from gateway.simulator.openai_errors import SimError

# requested model -> model reported in the answer
MODERATION_MODELS: dict[str, str] = {
    "text-moderation-latest": "text-moderation-007",
    "text-moderation-stable": "text-moderation-007",
    "text-moderation-007": "text-moderation-007",
    "omni-moderation-latest": "omni-moderation-2024-09-26",
    "omni-moderation-2024-09-26": "omni-moderation-2024-09-26",
}
DEFAULT_MODEL = "text-moderation-latest"
TEXT_CATEGORIES = (
    "sexual",
    "hate",
    "harassment",
    "self-harm",
    "sexual/minors",
    "hate/threatening",
    "violence/graphic",
    "self-harm/intent",
    "self-harm/instructions",
    "harassment/threatening",
    "violence",
)
OMNI_CATEGORIES = (*TEXT_CATEGORIES, "illicit", "illicit/violent")
# Words that flag a category, so callers can get `flagged: true` deterministically.
TRIGGERS: dict[str, tuple[str, ...]] = {
    "violence": ("kill", "murder", "attack"),
    "hate": ("hate",),
    "harassment": ("idiot", "stupid"),
    "self-harm": ("hurt myself",),
    "illicit": ("steal",),
}
FLAGGED_SCORE = 0.91
THRESHOLD = 0.5


def texts_of(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not value:
        return None
    texts: list[str] = []
    for item in value:
        if isinstance(item, str):
            texts.append(item)
        elif isinstance(item, dict) and item.get("type") == "text":
            texts.append(str(item.get("text", "")))
        elif isinstance(item, dict) and item.get("type") == "image_url":
            texts.append("")
        else:
            return None
    return texts


def check(body: dict[str, Any]) -> SimError | None:
    model = body.get("model", DEFAULT_MODEL)
    if not isinstance(model, str) or model not in MODERATION_MODELS:
        return oe.model_not_found(str(model))
    if body.get("input") is None:
        return oe.missing_parameter("input")
    if texts_of(body["input"]) is None:
        return oe.invalid_type("input", "one of a string or array of strings", body["input"])
    return None


def _result(text: str, categories: tuple[str, ...], omni: bool) -> dict[str, Any]:
    digest = hashlib.blake2b(text.encode(), digest_size=len(categories)).digest()
    lowered = text.lower()
    scores: dict[str, float] = {}
    for category, byte in zip(categories, digest, strict=True):
        triggered = any(word in lowered for word in TRIGGERS.get(category, ()))
        scores[category] = FLAGGED_SCORE if triggered else (byte + 1) / 1_000_000
    flags = {category: score > THRESHOLD for category, score in scores.items()}
    result: dict[str, Any] = {
        "flagged": any(flags.values()),
        "categories": flags,
        "category_scores": scores,
    }
    if omni:
        result["category_applied_input_types"] = {category: ["text"] for category in categories}
    return result


def moderation_object(body: dict[str, Any], moderation_id: str) -> dict[str, Any]:
    """The response for a request `check()` accepted."""
    model = MODERATION_MODELS[body.get("model", DEFAULT_MODEL)]
    omni = model.startswith("omni")
    categories = OMNI_CATEGORIES if omni else TEXT_CATEGORIES
    return {
        "id": moderation_id,
        "model": model,
        "results": [_result(text, categories, omni) for text in texts_of(body["input"]) or []],
    }
