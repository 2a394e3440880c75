"""What a request costs, in integer micro-dollars. Pure.

Prices are micro-dollars per 1M tokens, so a cost is a sum of token x price products divided by
one million once, rounded up: the gateway never under-charges by rounding each term.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from fractions import Fraction
from typing import Any

import orjson

from gateway.config import Config, ImageInputTokens, ModelConfig, Price
from gateway.wire import errors, tokens, validation
from gateway.wire.usage import AudioUsage, Usage

PER_TOKENS = 1_000_000
# What `largest_completion_cap` says when completion tokens cost nothing: any cap fits.
MAX_CAP = 2**31


def cost_micros(price: Price, usage: Usage) -> int:
    numerator, divisor = _numerator(price, usage)
    return -(-numerator // divisor)


def _long(price: Price, prompt_tokens: int) -> bool:
    return bool(price.long_context_above) and prompt_tokens > price.long_context_above


def _numerator(price: Price, usage: Usage) -> tuple[int, int]:
    """Micro-dollars per 1M tokens times tokens, and what it is divided by once: a long
    prompt's whole call at twice the input and 1.5 times the output price is (4 x input
    + 3 x output) over 2M, so it is still one rounding."""
    cached = min(max(usage.cached_tokens, 0), usage.prompt_tokens)
    input_part = (usage.prompt_tokens - cached) * price.input + cached * price.cached_input
    if usage.cache_write_tokens:  # only the newest models report writes: one test otherwise
        written = min(usage.cache_write_tokens, usage.prompt_tokens - cached)
        input_part += written * ((price.cache_write or price.input) - price.input)
    output_part = usage.completion_tokens * price.output
    if _long(price, usage.prompt_tokens):
        return 4 * input_part + 3 * output_part, 2 * PER_TOKENS
    return input_part + output_part, PER_TOKENS


def worst_usage(price: Price, prompt_tokens: int, completion_tokens: int = 0) -> Usage:
    """The usage a worst case is priced on: no cache hits, and every prompt token written to
    the prompt cache when writes cost more than input (upstream decides what it writes)."""
    written = prompt_tokens if price.cache_write > price.input else 0
    return Usage(prompt_tokens, completion_tokens, cache_write_tokens=written)


def worst_case_micros(price: Price, prompt_tokens: int, completion_cap: int) -> int:
    """The most a request can cost: no cache hits, every prompt token written to the cache
    (`worst_usage`), every allowed completion token used."""
    return cost_micros(price, worst_usage(price, prompt_tokens, completion_cap))


def largest_completion_cap(price: Price, prompt_tokens: int, copies: int, left: int) -> int:
    """The most completion tokens per answer whose worst case (`copies` answers) costs at most
    `left` micro-dollars; below 1 when not even the prompt fits. Exact: a worst case is one
    rounding up of a numerator, so it fits when the numerator does."""
    numerator, divisor = _numerator(price, worst_usage(price, prompt_tokens))
    room = left * divisor - numerator
    if room < 0:
        return 0
    per_answer = price.output * max(copies, 1) * (3 if _long(price, prompt_tokens) else 1)
    return room // per_answer if per_answer else MAX_CAP


def estimates(
    config: Config,
    payload: dict[str, Any],
    models: list[str],
    served_by: Mapping[str, str] | None = None,
    sent: Mapping[str, int | None] | None = None,
) -> dict[str, Any]:
    """What the request would cost on each model: typical and worst case, in micro-dollars, on
    the prompt the model would be held for (its image inputs by its own figures, the tools).
    `served_by`: the model that would serve a model named (a shut-down one's successor), whose
    prices, output cap and figures the request would be charged by; `sent`: the completion cap
    the request would go upstream with to a model, where patching changes it (a `max_tokens`
    given room to reason), which it would be held and may be billed for."""
    messages = payload.get("messages")
    text = tokens.count_messages(messages) if isinstance(messages, list) else 0
    asked = requested_completion(payload)
    out: dict[str, Any] = {}
    for name in models:
        model = config.models[served_by.get(name, name) if served_by else name]
        prompt = chat_prompt(payload, model, text)
        requested = sent.get(name, asked) if sent else asked
        cap = min(requested or model.max_output, model.max_output)
        typical = min(
            model.typical_completion_tokens or config.admission.default_completion_tokens, cap
        )
        estimated = cost_micros(model.price, Usage(prompt_tokens=prompt, completion_tokens=typical))
        worst = worst_case_micros(model.price, prompt, cap)
        out[name] = {
            "prompt_tokens": prompt,
            "estimated_completion_tokens": typical,
            "estimated_cost_micros": estimated,
            "estimated_cost_usd": f"{estimated / 1_000_000:.6f}",
            "max_completion_tokens": cap,
            "max_cost_micros": worst,
            "max_cost_usd": f"{worst / 1_000_000:.6f}",
        }
    return out


def requested_completion(payload: dict[str, Any]) -> int | None:
    """The completion cap a chat request asks for, if any."""
    for name in ("max_completion_tokens", "max_tokens"):
        value = payload.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


# -- the worst case of the other token-priced endpoints --------------------------------------------

# Legacy completions write 16 tokens when `max_tokens` is not given (OpenAI's default).
COMPLETIONS_DEFAULT_MAX_TOKENS = 16


def input_tokens(value: Any, encoding: str) -> int:
    """Tokens of an embeddings `input` or a completions `prompt` in the vocabulary the model
    is billed in (its `tokenizer`): a string, strings, token arrays (counted as they are), or
    arrays of those."""
    if isinstance(value, str):
        return tokens.count_text_in(encoding, value)
    if isinstance(value, list):
        # A boolean is a token too: upstream may read JSON's true as the integer 1.
        if value and all(isinstance(v, int) for v in value):
            return len(value)
        return sum(input_tokens(v, encoding) for v in value)
    return 0


def completions_worst_case(payload: dict[str, Any], model: ModelConfig) -> tuple[int, int]:
    """(prompt tokens, completion cap) of a legacy completion: every candidate of `best_of`
    (at least `n`) is generated and billed, each up to `max_tokens`; a `suffix` is read after
    each prompt, and billed as prompt tokens (all in the model's `tokenizer`)."""
    max_output = model.max_output
    prompt = input_tokens(payload.get("prompt"), model.tokenizer)
    prompts = payload.get("prompt")
    if isinstance(prompts, list) and prompts and not isinstance(prompts[0], int):
        copies = len(prompts)  # one completion set per prompt
    else:
        copies = 1
    suffix = payload.get("suffix")
    if isinstance(suffix, str):
        prompt += tokens.count_text_in(model.tokenizer, suffix) * copies
    per = payload.get("max_tokens", COMPLETIONS_DEFAULT_MAX_TOKENS)
    if per is None:
        each = max_output  # null is no cap upstream (only an absent one is 16)
    else:
        per = per if isinstance(per, int) and not isinstance(per, bool) and per > 0 else None
        each = min(per or COMPLETIONS_DEFAULT_MAX_TOKENS, max_output)
    candidates = max(_count(payload.get("n")), _count(payload.get("best_of")))
    return prompt, each * candidates * copies


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 1


# -- what a chat request's worst case adds to its messages' text ---------------------------------

# Image inputs are billed per model (`ModelConfig.image_input_tokens`): every count of them
# below takes the figures of the model that serves the request.


def chat_prompt(payload: dict[str, Any], model: ModelConfig, text: int | None = None) -> int:
    """The most prompt tokens a chat request may be billed on `model`: its messages' text
    (`text`, when counted already), what `chat_extra_prompt` adds, and the whole context when
    it hands the model a file."""
    messages = payload.get("messages")
    if text is None:
        text = tokens.count_messages(messages) if type(messages) is list else 0
    prompt = text
    images, files = _content_parts(messages, model.image_input_tokens)
    prompt += images + _tool_tokens(payload)
    return max(prompt, model.context) if files else prompt  # a file's pages may fill it


def chat_extra_prompt(payload: dict[str, Any], images: ImageInputTokens) -> int:
    """Prompt tokens a chat request pays beyond its messages' text: image inputs (at their most,
    by the serving model's `images` figures) and the tool and structured output schemas, which
    upstream counts into the prompt."""
    return _content_parts(payload.get("messages"), images)[0] + _tool_tokens(payload)


def prediction_tokens(payload: dict[str, Any]) -> int:
    """The tokens of a chat request's predicted output (`prediction`): upstream bills those of
    it the answer rejects as completion tokens, beside the ones it writes."""
    prediction = payload.get("prediction")
    if type(prediction) is not dict:
        return 0
    content = prediction.get("content")
    if type(content) is str:
        return tokens.count_text(content)
    if type(content) is not list:
        return 0
    return sum(
        tokens.count_text(part["text"])
        for part in content
        if type(part) is dict and type(part.get("text")) is str
    )


def _tool_tokens(payload: dict[str, Any]) -> int:
    """The tool schemas and a structured output's schema: upstream writes both into the
    prompt."""
    tools = payload.get("tools") or payload.get("functions")
    count = tokens.count_text(orjson.dumps(tools).decode()) if tools else 0
    return count + format_tokens(payload.get("response_format"))


def format_tokens(given: Any) -> int:
    """The prompt tokens a structured output's format adds (chat's `response_format`, the
    Responses API's `text.format`): its JSON schema is written into the prompt, as tool
    schemas are, and billed as input."""
    if type(given) is not dict or given.get("type") != "json_schema":
        return 0
    return tokens.count_text(orjson.dumps(given).decode())


# Content parts that hand the model a file (a PDF: its pages' text and images, read upstream).
# A tuple: a part's `type` is the client's, maybe a list or an object, which a set cannot hash.
_FILE_PARTS = ("file", "input_file")
# What `reads_files` counts images with: it reads only whether a file is there.
_ANY_FIGURES = ImageInputTokens()


def _content_parts(messages: Any, figures: ImageInputTokens) -> tuple[int, bool]:
    """The messages' (or Responses input items') image parts' tokens, at their most, and
    whether one hands the model a file. Plain loops: this runs on every chat request, whose
    contents are mostly strings."""
    images, files = 0, False
    if type(messages) is not list:
        return images, files
    for message in messages:
        if type(message) is not dict:
            continue
        content = message.get("content")
        if content is None and message.get("type") == "function_call_output":
            # A Responses function's output may hand the model images and files, read and
            # billed as a message's are.
            content = message.get("output")
        if type(content) is list:
            for part in content:
                if type(part) is dict and part.get("type") in _FILE_PARTS:
                    files = True
                else:
                    images += _image_tokens(part, figures)
        elif message.get("type") == "input_file":  # a Responses input item of its own
            files = True
    return images, files


def image_tokens(messages: Any, images: ImageInputTokens) -> int:
    """The most prompt tokens the image parts of chat messages (or Responses input items) are
    billed as, by the serving model's `images` figures: their URL or data is no text the
    message count sees."""
    return _content_parts(messages, images)[0]


def function_output_images(items: Any, images: ImageInputTokens) -> int:
    """The most prompt tokens the images Responses function outputs (`function_call_output`
    items) hand the model are billed as, by the serving model's `images` figures: a chat tool
    message has no place for them, so the chat messages a Responses input is counted as lack
    them."""
    if type(items) is not list:
        return 0
    outputs = [
        item for item in items if type(item) is dict and item.get("type") == "function_call_output"
    ]
    return _content_parts(outputs, images)[0] if outputs else 0


def reads_files(messages: Any) -> bool:
    """Whether chat messages, or Responses input items, hand the model a file: upstream reads
    its pages, which the gateway cannot count, so they may fill the model's context."""
    return _content_parts(messages, _ANY_FIGURES)[1]


def refers_to_items(given: Any) -> bool:
    """Whether a Responses `input` gives an item back by reference (`item_reference`): upstream
    reads the stored item, whose length the gateway does not know."""
    return type(given) is list and any(
        type(item) is dict and item.get("type") == "item_reference" for item in given
    )


def responses_input_tokens(payload: dict[str, Any], images: ImageInputTokens) -> int:
    """The most tokens a Responses request's `input` and `instructions` are read as, whatever
    their items' shape: every string in them, each message's framing, images at their most by
    the serving model's `images` figures (for items the chat count cannot carry)."""
    return _example_tokens([payload.get("instructions"), payload.get("input")], images)


def chat_audio(payload: dict[str, Any]) -> str | None:
    """Where a chat request asks for audio, out (`modalities`, `audio`) or in (`input_audio`
    parts), which its prices do not cover: the param that says so, or None."""
    modalities = payload.get("modalities")
    if type(modalities) is list and "audio" in modalities:
        return "modalities"
    if payload.get("audio") is not None:
        return "audio"
    return _audio_part(payload.get("messages"), "messages", ("content",))


def responses_audio(payload: dict[str, Any]) -> str | None:
    """Where a Responses request's `input` carries audio (an `input_audio` part of a message,
    or of a function's output), which its prices do not cover: the param, or None."""
    return _audio_part(payload.get("input"), "input", ("content", "output"))


def _audio_part(items: Any, name: str, fields: tuple[str, ...]) -> str | None:
    """The param of the first `input_audio` part among the `fields` of the `items`."""
    if type(items) is not list:
        return None
    # Plain loops: this runs on every chat request, whose contents are mostly strings.
    for i, item in enumerate(items):
        if type(item) is not dict:
            continue
        if item.get("type") == "input_audio":
            return f"{name}[{i}].type"
        for field in fields:
            parts = item.get(field)
            if type(parts) is list:
                for j, part in enumerate(parts):
                    if type(part) is dict and part.get("type") == "input_audio":
                        return f"{name}[{i}].{field}[{j}].type"
    return None


# Parts that hand the model an image: chat's, a Responses message's, and the screenshot a
# computer use call's output gives back (by URL or file id, read and billed as an image).
_IMAGE_PARTS = ("image_url", "input_image", "computer_screenshot")


def _image_tokens(part: Any, figures: ImageInputTokens) -> int:
    """One image part's tokens at their most (the one place images are counted): `detail: low`
    is billed at `low`; high, auto or none may be the largest image, billed up to `high`."""
    if not isinstance(part, dict) or part.get("type") not in _IMAGE_PARTS:
        return 0
    image = part.get("image_url")
    detail = image.get("detail") if isinstance(image, dict) else part.get("detail")
    return figures.low if detail == "low" else figures.high


def choices(payload: dict[str, Any]) -> int:
    """How many answers a chat request asks for (`n`): each is generated and billed."""
    return _count(payload.get("n"))


# -- media: images, speech, transcriptions ---------------------------------------------------------

MINUTE_S = 60


def image_size_quality(payload: dict[str, Any], model: ModelConfig) -> str:
    """The price table key of an images request, `quality/size`, with OpenAI's defaults."""
    dalle = bool(model.image_prices)
    quality = payload.get("quality") or ("standard" if dalle else "auto")
    # A GPT image model's size left unnamed is `auto`, which upstream may make a larger image
    # than 1024x1024: held, as a named `auto` is, at the table's dearest.
    size = payload.get("size") or ("1024x1024" if dalle else "auto")
    return f"{quality}/{size}"


# A streamed GPT image's partial images (`partial_images`, up to 3) are billed beside it, each
# this many image output tokens, whatever its size and quality.
PARTIAL_IMAGE_TOKENS = 100


def images_worst_case(payload: dict[str, Any], model: ModelConfig) -> tuple[int, int, int]:
    """(prompt tokens, output tokens, fixed micro-dollars) the most an images call can cost:
    `n` images at the price (or tokens) of the requested quality and size, and the partial
    images a GPT image stream sends of each; a key the table does not have holds its dearest
    entry."""
    n = _count(payload.get("n"))
    key = image_size_quality(payload, model)
    if model.image_prices:
        each = model.image_prices.get(key, max(model.image_prices.values()))
        return 0, 0, n * each
    prompt = payload.get("prompt")
    tokens_in = tokens.count_text(prompt) if isinstance(prompt, str) else 0
    table = model.image_tokens
    each_tokens = table.get(key, max(table.values())) if table else model.max_output
    partial = payload.get("partial_images")
    if isinstance(partial, int) and not isinstance(partial, bool) and partial > 0:
        each_tokens += partial * PARTIAL_IMAGE_TOKENS
    return tokens_in, n * each_tokens, 0


def images_cost(payload: dict[str, Any], model: ModelConfig, answer: Any) -> int | None:
    """What an answered images call cost by the per-image table (None: the answer's `usage`
    prices it, GPT image models)."""
    if not model.image_prices:
        return None
    data = answer.get("data") if isinstance(answer, dict) else None
    made = len(data) if isinstance(data, list) else _count(payload.get("n"))
    key = image_size_quality(payload, model)
    return made * model.image_prices.get(key, max(model.image_prices.values()))


def speech_cost(payload: dict[str, Any], model: ModelConfig) -> int:
    """Text to speech, per character of input."""
    text = payload.get("input")
    characters = len(text) if isinstance(text, str) else 0
    return -(-characters * model.character_price // PER_TOKENS)


# Far longer than any upload can play (25 MB at the lowest bitrate is hours); a report past it
# would be a cost Redis cannot add.
MOST_AUDIO_S = 10**9


def audio_reserve(model: ModelConfig, seconds: int) -> int:
    """A transcription, before upstream says how long its audio was: the longest it can play
    (`audio_length`), by the second."""
    return -(-seconds * model.minute_price // MINUTE_S)


def audio_cost(model: ModelConfig, answer: Any) -> int | None:
    """A transcription by the seconds of audio its answer reports (`usage` of type duration, or
    verbose_json's `duration`); None when the answer does not say."""
    if not isinstance(answer, dict):
        return None
    usage = answer.get("usage")
    seconds = usage.get("seconds") if isinstance(usage, dict) else answer.get("duration")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        return None
    if not 0 <= seconds <= MOST_AUDIO_S:  # none an upload plays: a report not to believe
        return None
    return -(-int(seconds * 1000) * model.minute_price // (MINUTE_S * 1000))


# -- token-priced audio: gpt-4o-mini-tts, gpt-4o transcription models -----------------------------


def audio_tokens_cost(price: Price, used: AudioUsage) -> int:
    """Text and audio tokens, each kind at its price, rounded up once (as upstream bills it)."""
    numerator = (
        used.text_input * price.input
        + used.audio_input * price.audio_input
        + used.text_output * price.output
        + used.audio_output * price.audio_output
    )
    return -(-numerator // PER_TOKENS)


def speech_tokens_worst_case(payload: dict[str, Any], model: ModelConfig) -> AudioUsage:
    """The most a token-priced speech call can use: the text tokens of its input and
    instructions, and `audio_tokens_per_character` audio tokens a character of input, more at a
    speed below 1 (the same words last longer)."""
    text, instructions = payload.get("input"), payload.get("instructions")
    text_tokens = sum(tokens.count_text(v) for v in (text, instructions) if isinstance(v, str))
    characters = len(text) if isinstance(text, str) else 0
    audio = characters * model.audio_tokens_per_character
    speed = payload.get("speed")
    if isinstance(speed, int | float) and not isinstance(speed, bool) and 0 < speed < 1:
        # The speed as written (0.3, not the binary float nearest it).
        audio = math.ceil(audio / Fraction(repr(speed)))
    return AudioUsage(text_input=text_tokens, audio_output=audio)


def transcription_tokens_worst_case(prompt: Any, model: ModelConfig, seconds: int) -> AudioUsage:
    """The most a token-priced transcription can use before upstream reports it: the prompt's
    text tokens, the audio's longest length (`audio_length`) at `audio_tokens_per_minute`, and
    a transcript of the model's `max_output` tokens."""
    return AudioUsage(
        text_input=tokens.count_text(prompt) if isinstance(prompt, str) else 0,
        audio_input=-(-seconds * model.audio_tokens_per_minute // MINUTE_S),
        text_output=model.max_output,
    )


# -- batches: each line at half price --------------------------------------------------------------


def batch_line_cost(price: Price, usage: Usage) -> int:
    """One batch line's cost: the line at half price, rounded up once (as upstream bills it)."""
    numerator, divisor = _numerator(price, usage)
    return -(-numerator // (divisor * 2))


def batch_line_worst(
    endpoint: str, body: dict[str, Any], model: ModelConfig
) -> tuple[int, int] | None:
    """(prompt, completion tokens) the most one batch line can use, by its endpoint's rule;
    None for an endpoint the gateway does not batch."""
    if endpoint == "/v1/chat/completions":
        prompt = chat_prompt(body, model)
        requested = requested_completion(body)
        cap = min(requested or model.max_output, model.max_output)
        return prompt, cap * choices(body) + prediction_tokens(body)
    if endpoint == "/v1/embeddings":
        return input_tokens(body.get("input"), model.tokenizer), 0
    if endpoint == "/v1/completions":
        return completions_worst_case(body, model)
    if endpoint == "/v1/moderations":
        return 0, 0
    return None


# -- fine-tuning: by the token trained ------------------------------------------------------------

# Training methods priced by the token; reinforcement fine-tuning is billed by the hour.
TOKEN_TRAINED_METHODS = ("supervised", "dpo")


def training_cost(trained_tokens: int, training_price: int) -> int:
    """Tokens trained at the price per 1M trained tokens, rounded up once (as upstream bills)."""
    return -(-max(trained_tokens, 0) * training_price // PER_TOKENS)


def training_method(payload: dict[str, Any]) -> str:
    """The training method a fine-tuning job asks for (`supervised` when it names none)."""
    method = payload.get("method")
    kind = method.get("type") if isinstance(method, dict) else None
    return kind if isinstance(kind, str) else "supervised"


def training_epochs(payload: dict[str, Any], auto_epochs: int) -> int:
    """The most epochs a fine-tuning job may train: the `n_epochs` of each hyperparameters
    upstream may read (`validation.training_hyperparameters`: its method's, the legacy field),
    the most of them, as which one upstream reads when both are given is its choice;
    `auto_epochs` (the worst case assumed) for one that leaves them to upstream (`"auto"` or
    absent), and when none is given. Values upstream refuses are refused before
    (`validation.check_training_epochs`)."""
    most = 0
    for _, hyper in validation.training_hyperparameters(payload):
        epochs = hyper.get("n_epochs") if isinstance(hyper, dict) else None
        if not (type(epochs) is int and epochs >= 1):
            epochs = auto_epochs
        most = max(most, epochs)
    return most or auto_epochs


def training_file_tokens(content: bytes, images: ImageInputTokens) -> int:
    """The most tokens one epoch over a JSONL training file trains: every string of every
    example (messages, tool schemas, preferred and rejected outputs) and each message's
    framing, images at their most by the base model's `images` figures; a line that is not
    JSON counts as its text (upstream fails such a job, training nothing)."""
    total = 0
    for raw in content.splitlines():
        if not raw.strip():
            continue
        try:
            example = orjson.loads(raw)
        except orjson.JSONDecodeError:
            total += tokens.count_text(raw.decode(errors="replace"))
            continue
        total += _example_tokens(example, images)
    return total


def _example_tokens(example: Any, figures: ImageInputTokens) -> int:
    """One example's strings, level by level (no recursion: a line may nest deeply)."""
    total = tokens.TOKENS_FOR_REPLY
    level: list[Any] = [example]
    while level:
        below: list[Any] = []
        for node in level:
            if isinstance(node, str):
                total += tokens.count_text(node)
            elif isinstance(node, list):
                below += node
            elif isinstance(node, dict):
                image = _image_tokens(node, figures)
                if image:
                    total += image  # its URL or base64 data is no text the model reads
                    continue
                if "role" in node:
                    total += tokens.TOKENS_PER_MESSAGE
                below += node.values()
        level = below
    return total


def tier_percent(tiers: Mapping[str, int], given: Any) -> int:
    """What the `service_tier` a request names costs, in percent of the standard price (none
    named: "auto", the project's default); 400 for a tier without a configured price."""
    tier = "auto" if given is None else given
    if type(tier) is not str or tier not in tiers:
        raise errors.invalid_value("service_tier", str(tier), tuple(tiers))
    return tiers[tier]


def tiered(price: Price, percent: int) -> Price:
    """`price` at `percent` of itself, rounded up (a tier is never charged below its rate)."""
    if percent == 100:
        return price
    return replace(
        price, **{
            name: -(-getattr(price, name) * percent // 100)
            for name in (
                "input", "cached_input", "output", "audio_input", "audio_output", "cache_write",
            )
        },
    )  # fmt: skip


def served_price(price: Price, held: int, tiers: Mapping[str, int], served: Any) -> Price | None:
    """`price` at the tier an answer says served the call (its `service_tier`), which is what
    upstream bills, cheaper or dearer than the `held` percent (a request naming no tier is
    served at the project's default, which may be priority); None (the held price) when it
    names the tier held or one without a price."""
    percent = tiers.get(served) if type(served) is str else None
    if percent is None or percent == held:
        return None
    return tiered(price, percent)


def other_tiers(price: Price, held: int, tiers: Mapping[str, int]) -> dict[str, Price]:
    """`price` at each configured tier that costs other than the `held` percent: what a call
    held now and priced later (a background response) is charged when its answer says one of
    them served it (as `served_price` decides at once)."""
    return {name: tiered(price, percent) for name, percent in tiers.items() if percent != held}


def at_tier(model: ModelConfig, percent: int) -> ModelConfig:
    """The model as a request whose service tier costs `percent` (`tier_percent`) pays for it."""
    return model if percent == 100 else replace(model, price=tiered(model.price, percent))
