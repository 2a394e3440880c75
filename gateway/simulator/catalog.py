"""The model list the simulated upstream publishes at GET /v1/models (September 2024).

Pure data and lookups. `created` and `owned_by` are the values OpenAI listed for these ids (the
newest models: their release day). The list on a given day leaves out models not yet released
or already shut down (lifecycle.py); from August 2026 each object carries `shutdown_date`.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from gateway.simulator import lifecycle

# id -> (created, owned_by)
MODELS: dict[str, tuple[int, str]] = {
    "gpt-4o": (1715367049, "system"),
    "gpt-4o-2024-08-06": (1722814719, "system"),
    "gpt-4o-mini": (1721172741, "system"),
    "gpt-4o-mini-2024-07-18": (1721172717, "system"),
    "o1-preview": (1725648897, "system"),
    "o1-preview-2024-09-12": (1725648865, "system"),
    "o1-mini": (1725649008, "system"),
    "o1-mini-2024-09-12": (1725648979, "system"),
    "text-embedding-3-small": (1705948997, "system"),
    "text-embedding-3-large": (1705953180, "system"),
    "text-embedding-ada-002": (1671217299, "openai-internal"),
    "gpt-3.5-turbo-instruct": (1692901427, "system"),
    "babbage-002": (1692634615, "system"),
    "davinci-002": (1692634301, "system"),
    "dall-e-2": (1698798177, "system"),
    "dall-e-3": (1698785189, "system"),
    "tts-1": (1681940951, "openai-internal"),
    "tts-1-hd": (1699046015, "system"),
    "whisper-1": (1677532384, "openai-internal"),
    "omni-moderation-latest": (1731689265, "system"),
    "omni-moderation-2024-09-26": (1732734466, "system"),
    # Later than September 2024 (2025), listed so their endpoints can be exercised.
    "gpt-image-1": (1745517030, "system"),
    "gpt-4o-mini-tts": (1742403959, "system"),
    "gpt-4o-transcribe": (1742068463, "system"),
    "gpt-4o-mini-transcribe": (1742068596, "system"),
    # Released after the o1 era: listed from their release day (lifecycle.RELEASED).
    "gpt-6-astra": (1788454800, "system"),
    "gpt-6-luna": (1790096400, "system"),
    "gpt-6.1-sol": (1790701200, "system"),
    "gpt-6.2-astra": (1794934800, "system"),
}


def model_object(model_id: str, today: date) -> dict[str, Any] | None:
    entry = MODELS.get(model_id)
    if entry is None or not lifecycle.serves(model_id, today):
        return None
    created, owned_by = entry
    found: dict[str, Any] = {
        "id": model_id,
        "object": "model",
        "created": created,
        "owned_by": owned_by,
    }
    if today >= lifecycle.SHUTDOWN_DATES_LISTED_FROM:
        shutdown = lifecycle.shutdown_date(model_id)
        found["shutdown_date"] = shutdown.isoformat() if shutdown is not None else None
    return found


def model_list(today: date) -> dict[str, Any]:
    listed = (model_object(model_id, today) for model_id in MODELS)
    return {"object": "list", "data": [found for found in listed if found is not None]}
