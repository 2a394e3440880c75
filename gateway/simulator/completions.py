"""Legacy POST /v1/completions (gpt-3.5-turbo-instruct, babbage-002, davinci-002). Pure.

Each prompt gets `best_of` candidates generated server-side (default `n`); the first `n` are
returned, but `usage.completion_tokens` counts every candidate, as OpenAI bills them all.
`max_tokens` defaults to 16, the legacy API's default, so an answer is usually cut
(`finish_reason: "length"`). Candidate text is the simulator's answer text seeded by the prompt.

With `stream: true` (one candidate a choice: `best_of` above 1 is refused) the answer comes as
`text_completion` chunks (`stream_chunks`): each choice's text word by word, then a chunk that
finishes it (`text: ""` and its `finish_reason`), then, with `stream_options.include_usage`, a
chunk of no choices carrying the usage (the others say `"usage": null`); `data: [DONE]` ends it.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.simulator import openai_errors as oe
from gateway.simulator.answers import answer_text, prompt_seed, truncate_tokens, word_deltas
from gateway.simulator.openai_errors import SimError
from gateway.wire.tokens import CL100K, count_text, count_text_in
from gateway.wire.validation import logit_bias_error

# model -> context window (tokens)
COMPLETION_MODELS: dict[str, int] = {
    "gpt-3.5-turbo-instruct": 4096,
    "babbage-002": 16384,
    "davinci-002": 16384,
}
DEFAULT_MAX_TOKENS = 16
MAX_N = 128
MAX_BEST_OF = 20
_SEED_MASK = (1 << 64) - 1


def prompts_of(value: Any) -> list[str | list[int]] | None:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not value:
        return None
    if all(isinstance(t, int) and not isinstance(t, bool) for t in value):
        return [value]
    if all(isinstance(p, str) for p in value):
        return list(value)
    if all(isinstance(p, list) and all(isinstance(t, int) for t in p) for p in value):
        return list(value)
    return None


def _tokens(prompt: str | list[int]) -> int:
    return len(prompt) if isinstance(prompt, list) else count_text_in(CL100K, prompt)


def _count(body: dict[str, Any], name: str, default: int, maximum: int) -> int | SimError:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        return oe.invalid_type(name, "an integer", value)
    if value < 1:
        return oe.below_minimum(name, 1, value)
    if value > maximum:
        return oe.above_maximum(name, maximum, value)
    return value


def check(body: dict[str, Any]) -> SimError | None:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return oe.missing_model()
    context = COMPLETION_MODELS.get(model)
    if context is None:
        return oe.model_not_found(model)
    if body.get("prompt") is None:
        return oe.missing_parameter("prompt")
    prompts = prompts_of(body["prompt"])
    if prompts is None:
        return SimError(400, "'$.prompt' is invalid.", param="prompt")
    max_tokens = body.get("max_tokens", DEFAULT_MAX_TOKENS)
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int)):
        return oe.invalid_type("max_tokens", "an integer", max_tokens)
    if isinstance(max_tokens, int) and max_tokens < 0:
        return oe.below_minimum("max_tokens", 0, max_tokens)
    n = _count(body, "n", 1, MAX_N)
    if isinstance(n, SimError):
        return n
    best_of = _count(body, "best_of", n, MAX_BEST_OF)
    if isinstance(best_of, SimError):
        return best_of
    if best_of < n:
        return SimError(400, "best_of must be greater than or equal to n.", param="best_of")
    if best_of > 1 and body.get("stream") is True:
        return SimError(400, "Cannot stream results with best_of > 1.", param="best_of")
    # Shared with the gateway's checks.
    refused = logit_bias_error(body)
    if refused is not None:
        return oe.from_gateway(refused)
    for prompt in prompts:
        tokens = _tokens(prompt)
        wanted = tokens + (max_tokens or 0)
        if wanted > context:
            return SimError(
                400,
                f"This model's maximum context length is {context} tokens, however you "
                f"requested {wanted} tokens ({tokens} in your prompt; {max_tokens or 0} for the "
                "completion). Please reduce your prompt; or completion length.",
                param="prompt",
            )
    return None


def completion_object(body: dict[str, Any], completion_id: str, created: int) -> dict[str, Any]:
    """The `text_completion` for a request `check()` accepted."""
    prompts = prompts_of(body["prompt"]) or []
    max_tokens = body.get("max_tokens", DEFAULT_MAX_TOKENS)
    n = body.get("n") or 1
    best_of = body.get("best_of") or n
    choices: list[dict[str, Any]] = []
    prompt_tokens = completion_tokens = 0
    for prompt_index, prompt in enumerate(prompts):
        prompt_tokens += _tokens(prompt)
        seed = prompt_seed(prompt if isinstance(prompt, str) else orjson.dumps(prompt).decode())
        for candidate in range(best_of):
            text = " " + answer_text((seed + candidate) & _SEED_MASK)
            finish = "stop"
            if max_tokens is not None:
                cut = truncate_tokens(text, max_tokens)
                if cut != text:
                    text, finish = cut, "length"
            completion_tokens += count_text(text)
            if candidate < n:
                choices.append(
                    {
                        "text": text,
                        "index": prompt_index * n + candidate,
                        "logprobs": None,
                        "finish_reason": finish,
                    }
                )
    return {
        "id": completion_id,
        "object": "text_completion",
        "created": created,
        "model": body["model"],
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def stream_chunks(completion: dict[str, Any], *, include_usage: bool) -> list[dict[str, Any]]:
    """The `text_completion` chunks a streamed `completion` (`completion_object`) is sent as,
    without the final `[DONE]`."""

    def chunk(choices: list[dict[str, Any]]) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "id": completion["id"],
            "object": "text_completion",
            "created": completion["created"],
            "choices": choices,
            "model": completion["model"],
        }
        if include_usage:
            obj["usage"] = None
        return obj

    def choice(index: int, text: str, finish: str | None) -> list[dict[str, Any]]:
        return [{"text": text, "index": index, "logprobs": None, "finish_reason": finish}]

    chunks: list[dict[str, Any]] = []
    for item in completion["choices"]:
        chunks.extend(
            chunk(choice(item["index"], piece, None)) for piece in word_deltas(item["text"])
        )
        chunks.append(chunk(choice(item["index"], "", item["finish_reason"])))
    if include_usage:
        final = chunk([])
        final["usage"] = completion["usage"]
        chunks.append(final)
    return chunks
