"""POST /v1/images/generations: checks per model and the response. Pure.

Limits per model are OpenAI's (surface facts §3). DALL·E answers `url` (a placeholder under
`IMAGE_HOST`, nothing serves it) or `b64_json`; gpt-image-1 always answers `b64_json` and
reports `usage`. Every image is the same tiny valid PNG.

gpt-image-1 output tokens per image follow OpenAI's image-generation guide table (below);
quality `auto` is billed as `medium` and size `auto` as 1024x1024 (the simulator's choice).
Input tokens are the prompt's text tokens (o200k_base).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

from gateway.simulator import openai_errors as oe
from gateway.simulator.openai_errors import SimError
from gateway.wire.tokens import count_text

DEFAULT_MODEL = "dall-e-2"
GPT_IMAGE = "gpt-image-1"
IMAGE_HOST = "https://images.simulator.invalid"
# A 1x1 PNG: valid, and small enough to return ten of.
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
PNG = base64.b64decode(PNG_B64)


@dataclass(frozen=True, slots=True)
class ImageModel:
    max_n: int
    sizes: tuple[str, ...]
    qualities: tuple[str, ...]
    default_quality: str
    max_prompt: int
    response_format: bool


IMAGE_MODELS: dict[str, ImageModel] = {
    "dall-e-2": ImageModel(
        10, ("256x256", "512x512", "1024x1024"), ("standard",), "standard", 1000, True
    ),
    "dall-e-3": ImageModel(
        1, ("1024x1024", "1792x1024", "1024x1792"), ("standard", "hd"), "standard", 4000, True
    ),
    GPT_IMAGE: ImageModel(
        10,
        ("1024x1024", "1536x1024", "1024x1536", "auto"),
        ("low", "medium", "high", "auto"),
        "auto",
        32000,
        False,
    ),
}
# (quality, size) -> output tokens per gpt-image-1 image.
GPT_IMAGE_OUTPUT_TOKENS: dict[tuple[str, str], int] = {
    ("low", "1024x1024"): 272,
    ("low", "1024x1536"): 408,
    ("low", "1536x1024"): 400,
    ("medium", "1024x1024"): 1056,
    ("medium", "1024x1536"): 1584,
    ("medium", "1536x1024"): 1568,
    ("high", "1024x1024"): 4160,
    ("high", "1024x1536"): 6240,
    ("high", "1536x1024"): 6208,
}


@dataclass(frozen=True, slots=True)
class ImageRequest:
    model: str
    prompt: str
    n: int
    size: str
    quality: str
    b64: bool


def _not_one_of(value: Any, allowed: tuple[str, ...], param: str) -> SimError:
    # DALL·E's schema-validation wording.
    listed = ", ".join(f"'{a}'" for a in allowed)
    return SimError(400, f"'{oe.echo(value)}' is not one of [{listed}] - '{param}'", param=param)


def check(body: dict[str, Any]) -> ImageRequest | SimError:
    prompt = body.get("prompt")
    if prompt is None:
        return oe.missing_parameter("prompt")
    if not isinstance(prompt, str):
        return oe.invalid_type("prompt", "a string", prompt)
    model_name = body.get("model") or DEFAULT_MODEL
    if not isinstance(model_name, str):
        return oe.invalid_type("model", "a string", model_name)
    model = IMAGE_MODELS.get(model_name)
    if model is None:
        return oe.model_not_found(model_name)
    if len(prompt) > model.max_prompt:
        return oe.string_too_long("prompt", model.max_prompt, len(prompt))
    n = body.get("n", 1)
    if n is None:
        n = 1
    if isinstance(n, bool) or not isinstance(n, int):
        return oe.invalid_type("n", "an integer", n)
    if n < 1:
        return oe.below_minimum("n", 1, n)
    if n > model.max_n:
        return oe.above_maximum("n", model.max_n, n)
    size = body.get("size") or ("auto" if model_name == GPT_IMAGE else "1024x1024")
    if size not in model.sizes:
        return _not_one_of(size, model.sizes, "size")
    quality = body.get("quality") or model.default_quality
    if quality not in model.qualities:
        return _not_one_of(quality, model.qualities, "quality")
    response_format = body.get("response_format")
    if response_format is not None and not model.response_format:
        return oe.unknown_parameter("response_format")
    if response_format not in (None, "url", "b64_json"):
        return _not_one_of(response_format, ("url", "b64_json"), "response_format")
    b64 = response_format == "b64_json" or not model.response_format
    return ImageRequest(model_name, prompt, n, size, quality, b64)


def billed_size_quality(request: ImageRequest) -> tuple[str, str]:
    """The (size, quality) a gpt-image-1 image is billed at (auto resolved)."""
    size = "1024x1024" if request.size == "auto" else request.size
    quality = "medium" if request.quality == "auto" else request.quality
    return size, quality


def usage(request: ImageRequest) -> dict[str, Any]:
    """gpt-image-1's `usage`: prompt text tokens in, a table's tokens out per image."""
    text = count_text(request.prompt)
    output = GPT_IMAGE_OUTPUT_TOKENS[billed_size_quality(request)[::-1]] * request.n
    return {
        "input_tokens": text,
        "input_tokens_details": {"text_tokens": text, "image_tokens": 0},
        "output_tokens": output,
        "total_tokens": text + output,
    }


def images_object(request: ImageRequest, created: int) -> dict[str, Any]:
    data: list[dict[str, Any]] = []
    for index in range(request.n):
        if request.b64:
            item: dict[str, Any] = {"b64_json": PNG_B64}
        else:
            digest = hashlib.blake2b(
                f"{request.prompt}\x00{created}\x00{index}".encode(), digest_size=16
            ).hexdigest()
            item = {"url": f"{IMAGE_HOST}/{digest}.png"}
        if request.model == "dall-e-3":
            # DALL·E 3 rewrites every prompt; the simulator's rewrite is the prompt itself.
            item["revised_prompt"] = request.prompt
        data.append(item)
    response: dict[str, Any] = {"created": created, "data": data}
    if request.model == GPT_IMAGE:
        size, quality = billed_size_quality(request)
        response.update(
            background="opaque",
            output_format="png",
            quality=quality,
            size=size,
            usage=usage(request),
        )
    return response
