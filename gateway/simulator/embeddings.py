"""POST /v1/embeddings: validation and deterministic unit vectors.

Pure. A vector is a function of the input alone (text or token ids), so equal inputs embed
equally and tests can compare them. Token counts use cl100k_base, as OpenAI's embedding models do.
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct
from array import array
from typing import Any

from gateway.simulator import openai_errors as oe
from gateway.simulator.openai_errors import SimError
from gateway.wire.tokens import CL100K, count_text_in

# model -> (default dimensions, accepts the `dimensions` parameter)
EMBEDDING_MODELS: dict[str, tuple[int, bool]] = {
    "text-embedding-3-small": (1536, True),
    "text-embedding-3-large": (3072, True),
    "text-embedding-ada-002": (1536, False),
}
MAX_INPUTS = 2048
MAX_INPUT_TOKENS = 8192


def _input_invalid() -> SimError:
    return SimError(
        400,
        "'$.input' is invalid. Please check the API reference: "
        "https://platform.openai.com/docs/api-reference.",
    )


def inputs_of(value: Any) -> list[str | list[int]] | None:
    """The list of items to embed, or None if `input` has none of the accepted shapes."""
    if isinstance(value, str):
        return [value] if value else None
    if not isinstance(value, list) or not value or len(value) > MAX_INPUTS:
        return None
    if all(isinstance(item, int) and not isinstance(item, bool) for item in value):
        return [value]
    items: list[str | list[int]] = []
    for item in value:
        is_text = isinstance(item, str) and bool(item)
        is_tokens = (
            isinstance(item, list)
            and bool(item)
            and all(isinstance(t, int) and not isinstance(t, bool) for t in item)
        )
        if not (is_text or is_tokens):
            return None
        items.append(item)
    return items


def token_count(item: str | list[int]) -> int:
    return len(item) if isinstance(item, list) else count_text_in(CL100K, item)


def check(body: dict[str, Any]) -> SimError | None:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return oe.missing_model()
    spec = EMBEDDING_MODELS.get(model)
    if spec is None:
        return oe.model_not_found(model)
    if body.get("input") is None:
        return oe.missing_parameter("input")
    items = inputs_of(body["input"])
    if items is None:
        return _input_invalid()
    for item in items:
        tokens = token_count(item)
        if tokens > MAX_INPUT_TOKENS:
            return SimError(
                400,
                f"This model's maximum context length is {MAX_INPUT_TOKENS} tokens, however you "
                f"requested {tokens} tokens ({tokens} in your prompt; 0 for the completion). "
                "Please reduce your prompt; or completion length.",
            )
    dimensions = body.get("dimensions")
    if dimensions is not None:
        if not spec[1]:
            return SimError(400, "This model does not support specifying dimensions.")
        if isinstance(dimensions, bool) or not isinstance(dimensions, int):
            return oe.invalid_type("dimensions", "an integer", dimensions)
        if dimensions < 1:
            return oe.below_minimum("dimensions", 1, dimensions)
        if dimensions > spec[0]:
            return oe.above_maximum("dimensions", spec[0], dimensions)
    encoding = body.get("encoding_format")
    if encoding is not None and encoding not in ("float", "base64"):
        return SimError(
            400,
            f"Invalid value: '{oe.echo(encoding)}'. Supported values are: 'float' and 'base64'.",
            param="encoding_format",
            code="invalid_value",
        )
    return None


def vector(item: str | list[int], dimensions: int) -> list[float]:
    """A deterministic unit-length vector for one input."""
    data = item.encode() if isinstance(item, str) else ",".join(map(str, item)).encode()
    raw = array("h", hashlib.shake_256(data).digest(2 * dimensions))
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    scale = 1.0 / norm
    return [x * scale for x in raw]


def embeddings_object(body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """The response for a request `check()` accepted, and the tokens it bills."""
    model = body["model"]
    default_dimensions, _ = EMBEDDING_MODELS[model]
    dimensions = body.get("dimensions") or default_dimensions
    as_base64 = body.get("encoding_format") == "base64"
    items = inputs_of(body["input"]) or []
    data: list[dict[str, Any]] = []
    tokens = 0
    for index, item in enumerate(items):
        tokens += token_count(item)
        values = vector(item, dimensions)
        embedding: list[float] | str = (
            base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
            if as_base64
            else values
        )
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    response = {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return response, tokens
