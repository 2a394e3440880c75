"""The model list the simulated upstream publishes at GET /v1/models (September 2024).

Pure data and lookups. `created` and `owned_by` are the values OpenAI listed for these ids.
"""

from __future__ import annotations

from typing import Any

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
}


def model_object(model_id: str) -> dict[str, Any] | None:
    entry = MODELS.get(model_id)
    if entry is None:
        return None
    created, owned_by = entry
    return {"id": model_id, "object": "model", "created": created, "owned_by": owned_by}


def model_list() -> dict[str, Any]:
    return {
        "object": "list",
        "data": [model_object(model_id) for model_id in MODELS],
    }
