from __future__ import annotations

from typing import Any

import pytest

from gateway.admission.pricing import (
    MAX_CAP,
    batch_line_cost,
    batch_line_worst,
    chat_audio,
    chat_prompt,
    cost_micros,
    largest_completion_cap,
    prediction_tokens,
    reads_files,
    refers_to_items,
    responses_input_tokens,
    tier_percent,
    tiered,
    worst_case_micros,
)
from gateway.config import ImageInputTokens, ModelConfig, Price, Usd
from gateway.wire.errors import GatewayError
from gateway.wire.tokens import count_text
from gateway.wire.usage import Usage, usage_from

O1_PREVIEW = Price(input=15_000_000, cached_input=7_500_000, output=60_000_000)
GPT_4O = Price(input=2_500_000, cached_input=1_250_000, output=10_000_000)
IMAGES = ImageInputTokens()  # gpt-4o's: 85 at detail low, 85 + 170 x 8 tiles at most


def test_cost_prices_cached_and_reasoning_tokens() -> None:
    # 2,000 prompt tokens of which 1,024 cached; 1,500 completion of which 1,200 reasoning.
    usage = Usage(
        prompt_tokens=2000, completion_tokens=1500, cached_tokens=1024, reasoning_tokens=1200
    )
    # (976 * 15 + 1024 * 7.5 + 1500 * 60) / 1e6 USD = 0.11232 USD
    assert cost_micros(O1_PREVIEW, usage) == 112_320


def test_cost_rounds_up_once_never_down() -> None:
    assert cost_micros(GPT_4O, Usage(prompt_tokens=1)) == 3  # 2.5 micro-dollars -> 3
    assert cost_micros(GPT_4O, Usage(prompt_tokens=2)) == 5
    assert cost_micros(GPT_4O, Usage()) == 0


def test_cached_tokens_are_clamped_to_the_prompt() -> None:
    assert cost_micros(GPT_4O, Usage(prompt_tokens=10, cached_tokens=50)) == cost_micros(
        GPT_4O, Usage(prompt_tokens=10, cached_tokens=10)
    )


LUNA = Price(input=100_000, cached_input=10_000, output=500_000, cache_write=125_000)


def test_cache_writes_cost_the_cache_write_price() -> None:
    # (1000 - 200 - 700) * 0.10 + 200 * 0.01 + 700 * 0.125 + 10 * 0.50 micro-dollars
    used = Usage(
        prompt_tokens=1000, completion_tokens=10, cached_tokens=200, cache_write_tokens=700
    )
    assert cost_micros(LUNA, used) == -(
        -(100 * 100_000 + 200 * 10_000 + 700 * 125_000 + 5_000_000) // 1_000_000
    )
    # Writes are clamped to the uncached prompt; a price without one bills them as input.
    assert cost_micros(LUNA, Usage(prompt_tokens=10, cache_write_tokens=50)) == 2
    assert cost_micros(GPT_4O, Usage(prompt_tokens=2, cache_write_tokens=2)) == 5
    # A batch line's writes are at half their price too.
    assert batch_line_cost(LUNA, Usage(prompt_tokens=16, cache_write_tokens=16)) == 1


def test_usage_reports_cache_writes_on_chat_and_responses() -> None:
    chat = {"prompt_tokens": 9, "prompt_tokens_details": {"cache_write_tokens": 4}}
    assert usage_from(chat) == Usage(prompt_tokens=9, cache_write_tokens=4)
    responses = {
        "input_tokens": 9,
        "output_tokens": 1,
        "input_tokens_details": {"cache_write_tokens": 5},
    }
    assert usage_from(responses) == Usage(9, 1, cache_write_tokens=5)


def test_a_worst_case_holds_every_prompt_token_as_a_cache_write() -> None:
    # 1000 * 0.125 + 10 * 0.50: the prompt at the write price, not the input price (100 + 5).
    assert worst_case_micros(LUNA, 1000, 10) == 130
    assert worst_case_micros(LUNA, 1000, 10) >= cost_micros(
        LUNA, Usage(prompt_tokens=1000, completion_tokens=10, cache_write_tokens=1000)
    )
    assert largest_completion_cap(LUNA, 1000, 1, 130) == 10
    assert largest_completion_cap(LUNA, 1000, 1, 129) == 8
    # A model whose writes cost no more than input holds as before.
    assert worst_case_micros(GPT_4O, 1000, 0) == 2_500


def test_worst_case_is_prompt_plus_full_completion_cap() -> None:
    assert worst_case_micros(O1_PREVIEW, 1000, 32_768) == 15_000 + 1_966_080


def test_the_largest_fitting_cap_is_exact_for_any_prompt_and_number_of_answers() -> None:
    for prompt, copies, left in [(13, 1, 99_830), (1, 3, 7), (1000, 128, 640_000), (0, 1, 1)]:
        cap = largest_completion_cap(GPT_4O, prompt, copies, left)
        assert worst_case_micros(GPT_4O, prompt, cap * copies) <= left
        assert worst_case_micros(GPT_4O, prompt, (cap + 1) * copies) > left
    assert largest_completion_cap(GPT_4O, 13, 1, 99_830) == 9_979
    # Not even the prompt fits; output for free fits any cap.
    assert largest_completion_cap(GPT_4O, 1000, 1, 2) == 0
    free_output = Price(input=1_000_000, cached_input=500_000, output=0)
    assert largest_completion_cap(free_output, 10, 1, 10) == MAX_CAP


def test_usage_from_chat_embeddings_and_responses_shapes() -> None:
    chat = {
        "prompt_tokens": 12,
        "completion_tokens": 30,
        "total_tokens": 42,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 20},
    }
    assert usage_from(chat) == Usage(12, 30, 0, 20)
    assert usage_from({"prompt_tokens": 8, "total_tokens": 8}) == Usage(prompt_tokens=8)
    responses = {
        "input_tokens": 5,
        "output_tokens": 7,
        "input_tokens_details": {"cached_tokens": 2},
        "output_tokens_details": {"reasoning_tokens": 3},
    }
    assert usage_from(responses) == Usage(5, 7, 2, 3)
    assert usage_from(None) is None
    assert usage_from({"prompt_tokens": -3}) is None
    assert usage_from({"total_tokens": 3}) is None


@pytest.mark.parametrize(
    "usage",
    [
        {"prompt_tokens": -3, "completion_tokens": 30},
        {"prompt_tokens": 12.5, "completion_tokens": 30},
        {"prompt_tokens": 12, "completion_tokens": "30"},
        {"input_tokens": 12, "output_tokens": 10**17},
        {"prompt_tokens": 12, "completion_tokens": 30, "prompt_tokens_details": {"cached_tokens": -1}},
        {
            "input_tokens": 12, "output_tokens": 30,
            "output_tokens_details": {"reasoning_tokens": 10**17},
        },
        {"prompt_tokens": 12, "total_tokens": 42},
        {"input_tokens": 12, "output_tokens": 30, "total_tokens": 10**17},
    ],
    ids=["negative", "fractional", "text", "huge", "negative detail", "huge detail",
         "output left out", "total made up"],
)  # fmt: skip
def test_a_usage_with_a_count_that_is_no_count_says_nothing(usage: dict[str, Any]) -> None:
    """A count upstream gave that no call can use (negative, fractional, far past any context),
    or a total that is not the sum of the counts (one left out), makes the whole usage
    unbelievable: read as none (the call is charged its hold), where the other counts alone
    undercharged it, or went to Redis as no integer it can add."""
    assert usage_from(usage) is None
    assert usage_from({"prompt_tokens": 12, "completion_tokens": None}) == Usage(12)
    assert usage_from({"prompt_tokens": 12, "total_tokens": 12}) == Usage(12)  # embeddings


# -- the worst cases beyond a chat's text -------------------------------------------------------


def test_a_chat_worst_case_counts_images_and_tool_schemas() -> None:
    from gateway.admission.pricing import chat_extra_prompt

    image = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
    low = {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "low"}}
    text = {"type": "text", "text": "What is in these?"}
    payload = {"messages": [{"role": "user", "content": [text, image, low]}]}
    assert chat_extra_prompt(payload, IMAGES) == 1_445 + 85
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {}}}
    assert chat_extra_prompt({"messages": [], "tools": [tool]}, IMAGES) > 5
    assert chat_extra_prompt({"messages": [{"role": "user", "content": "hi"}]}, IMAGES) == 0


def test_responses_image_inputs_count_as_chat_images_do() -> None:
    from gateway.admission.pricing import image_tokens
    from gateway.translate.responses_chat import chat_request

    url = "https://example.com/a.png"
    content = [
        {"type": "input_text", "text": "What is in these?"},
        {"type": "input_image", "image_url": url},
        {"type": "input_image", "image_url": url, "detail": "low"},
        {"type": "input_image", "file_id": "file-1", "detail": "high"},
    ]
    given = [{"role": "user", "content": content}]
    expected = 2 * IMAGES.high + IMAGES.low
    assert image_tokens(given, IMAGES) == expected
    routed = chat_request({"model": "gpt-4o", "input": given}, [])["messages"]
    assert image_tokens(routed, IMAGES) == expected
    assert image_tokens([{"role": "user", "content": "hi"}], IMAGES) == 0


def test_image_inputs_are_held_at_the_serving_models_figures() -> None:
    """OpenAI bills an image per model: gpt-4o-mini 2,833 tokens plus 5,667 a 512px tile (8 at
    most), about 33 times gpt-4o's 85 plus 170 a tile. The hold of the same image request
    counts each model's own figures (shipped config): chat, Responses input and batch lines."""
    from gateway.admission.pricing import chat_extra_prompt, image_tokens
    from tests.conftest import base_config

    models = base_config().models
    url = "https://example.com/large.png"

    def chat(*parts: Any) -> dict[str, Any]:
        return {"messages": [{"role": "user", "content": list(parts)}], "max_tokens": 1}

    def responses(*parts: Any) -> dict[str, Any]:
        return {"input": [{"role": "user", "content": list(parts)}]}

    for name, low, high in (("gpt-4o-mini", 2_833, 48_169), ("gpt-4o", 85, 1_445)):
        model = models[name]
        figures = model.image_input_tokens
        for detail, tokens in ((None, high), ("auto", high), ("high", high), ("low", low)):
            image = {"url": url} if detail is None else {"url": url, "detail": detail}
            asked = chat({"type": "image_url", "image_url": image})
            assert chat_prompt(asked, model) - chat_prompt(chat(), model) == tokens, (name, detail)
            assert chat_extra_prompt(asked, figures) == tokens
            line = batch_line_worst("/v1/chat/completions", asked, model)
            plain = batch_line_worst("/v1/chat/completions", chat(), model)
            assert line is not None and plain is not None and line[0] - plain[0] == tokens
            given = responses({"type": "input_image", "image_url": url, "detail": detail})
            assert image_tokens(given["input"], figures) == tokens
            counted = responses_input_tokens(given, figures)
            assert counted - responses_input_tokens(responses(), figures) == tokens
    # In money: gpt-4o-mini's largest image is held at twice gpt-4o's, not at a 17th of it.
    assert worst_case_micros(models["gpt-4o-mini"].price, 48_169, 0) == 7_226
    assert worst_case_micros(models["gpt-4o"].price, 1_445, 0) == 3_613


def test_every_candidate_of_a_legacy_completion_is_in_its_worst_case() -> None:
    from gateway.admission.pricing import choices, completions_worst_case, input_tokens
    from gateway.config import ModelConfig

    instruct = ModelConfig(
        upstream="gpt-3.5-turbo-instruct", max_output=4096, tokenizer="cl100k_base"
    )
    assert input_tokens("hello world", "cl100k_base") == 2
    assert input_tokens(["hello", "world"], "cl100k_base") == 2
    assert input_tokens([1, 2, 3], "cl100k_base") == 3
    assert input_tokens([[1, 2], [3]], "cl100k_base") == 3
    # upstream may take a boolean as a token
    assert input_tokens([[1, 2, True], [False]], "cl100k_base") == 4
    assert completions_worst_case(
        {"prompt": "hi", "max_tokens": 10, "n": 2, "best_of": 5}, instruct
    ) == (1, 50)
    assert completions_worst_case({"prompt": ["a", "b"], "max_tokens": 10}, instruct) == (2, 20)
    assert completions_worst_case({"prompt": "hi"}, instruct) == (1, 16)  # OpenAI's default
    assert completions_worst_case({"prompt": "hi", "max_tokens": 10**6}, instruct) == (1, 4096)
    # null is no cap upstream: every candidate may write the model's whole output.
    assert completions_worst_case({"prompt": "hi", "max_tokens": None, "best_of": 3}, instruct) == (
        1, 3 * 4096,
    )  # fmt: skip
    assert choices({"n": 128}) == 128 and choices({}) == 1 and choices({"n": True}) == 1
    # A suffix is prompt upstream reads after each prompt.
    assert completions_worst_case({"prompt": "hi", "suffix": "hello world"}, instruct) == (3, 16)
    assert completions_worst_case({"prompt": ["a", "b"], "suffix": "hello world"}, instruct) == (
        6, 32,
    )  # fmt: skip


def test_embeddings_and_legacy_completions_count_in_the_vocabulary_they_are_billed_in() -> None:
    from gateway.admission.pricing import batch_line_worst, completions_worst_case, input_tokens
    from gateway.config import ModelConfig

    hindi = "नमस्ते दुनिया, यह एक परीक्षण है"
    # cl100k_base, which bills these models, reads it as 31 tokens; o200k_base as 10.
    assert input_tokens(hindi, "cl100k_base") == 31
    assert input_tokens(hindi, "o200k_base") == 10
    embedding = ModelConfig(
        upstream="text-embedding-3-small", max_output=1, tokenizer="cl100k_base"
    )
    assert batch_line_worst("/v1/embeddings", {"input": [hindi, [1, 2]]}, embedding) == (33, 0)
    instruct = ModelConfig(
        upstream="gpt-3.5-turbo-instruct", max_output=4096, tokenizer="cl100k_base"
    )
    body = {"prompt": hindi, "suffix": hindi, "max_tokens": 5}
    assert completions_worst_case(body, instruct) == (62, 5)
    assert batch_line_worst("/v1/completions", body, instruct) == (62, 5)


def test_a_batch_line_costs_half_rounded_up_once() -> None:
    from gateway.admission.pricing import batch_line_cost, batch_line_worst
    from gateway.config import ModelConfig

    price = Price(input=150_000, cached_input=75_000, output=600_000)  # gpt-4o-mini
    usage = Usage(prompt_tokens=11, completion_tokens=33)
    # (11 x 0.15 + 33 x 0.60) / 2 = 10.725 micro-dollars: 11, where full price is 22.
    assert batch_line_cost(price, usage) == 11
    assert cost_micros(price, usage) == 22
    model = ModelConfig(upstream="gpt-4o-mini", price=price, max_output=16_384)
    chat = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 100, "n": 2}
    prompt, completion = batch_line_worst("/v1/chat/completions", chat, model) or (0, 0)
    assert completion == 200 and prompt > 0
    assert batch_line_worst("/v1/embeddings", {"input": "hello world"}, model) == (2, 0)
    assert batch_line_worst("/v1/moderations", {"input": "x"}, model) == (0, 0)
    assert batch_line_worst("/v1/images/generations", {}, model) is None


# -- token-priced audio ---------------------------------------------------------------------------

MINI_TTS = Price(input=600_000, audio_output=12_000_000)
TRANSCRIBE = Price(input=2_500_000, output=10_000_000, audio_input=6_000_000)


def test_audio_tokens_are_priced_apart_from_text_and_rounded_up_once() -> None:
    from gateway.admission.pricing import audio_tokens_cost
    from gateway.wire.usage import AudioUsage

    # 7 text tokens at $0.60 and 31 audio tokens at $12: 4.2 + 372 = 376.2 -> 377.
    assert audio_tokens_cost(MINI_TTS, AudioUsage(text_input=7, audio_output=31)) == 377
    # 5 x 2.5 + 48 x 6 + 20 x 10 = 500.5 -> 501 (each term rounded alone would give 503).
    used = AudioUsage(text_input=5, audio_input=48, text_output=20)
    assert audio_tokens_cost(TRANSCRIBE, used) == 501
    assert used.usage == Usage(prompt_tokens=53, completion_tokens=20)
    assert audio_tokens_cost(TRANSCRIBE, AudioUsage()) == 0


def test_speech_holds_its_text_and_a_bound_of_audio_tokens_a_character() -> None:
    from gateway.admission.pricing import speech_tokens_worst_case
    from gateway.config import ModelConfig
    from gateway.wire.usage import AudioUsage

    model = ModelConfig(upstream="gpt-4o-mini-tts", price=MINI_TTS, audio_tokens_per_character=3)
    text = "Hello from the gateway."  # 23 characters, 5 tokens
    held = speech_tokens_worst_case({"input": text}, model)
    assert held == AudioUsage(text_input=5, audio_output=69)
    calm = speech_tokens_worst_case({"input": text, "instructions": "Speak calmly."}, model)
    assert calm == AudioUsage(text_input=5 + 3, audio_output=69)
    # A quarter speed lasts four times as long; a faster one holds no less.
    assert speech_tokens_worst_case({"input": text, "speed": 0.25}, model).audio_output == 276
    assert speech_tokens_worst_case({"input": text, "speed": 0.3}, model).audio_output == 230
    assert speech_tokens_worst_case({"input": text, "speed": 4}, model).audio_output == 69
    assert speech_tokens_worst_case({"input": 42}, model) == AudioUsage()


def test_a_transcription_holds_its_prompt_the_longest_audio_and_transcript() -> None:
    from gateway.admission.pricing import audio_tokens_cost, transcription_tokens_worst_case
    from gateway.config import ModelConfig
    from gateway.wire.usage import AudioUsage

    model = ModelConfig(
        upstream="gpt-4o-transcribe", price=TRANSCRIBE, max_output=2000,
        audio_tokens_per_minute=1000, max_audio_minutes=30,
    )  # fmt: skip
    # Half an hour of audio (whatever max_audio_minutes says: no longer read).
    held = transcription_tokens_worst_case("Names: Ada, Grace.", model, 1800)
    assert held == AudioUsage(text_input=6, audio_input=30_000, text_output=2000)
    # $0.000015 + $0.18 + $0.02
    assert audio_tokens_cost(TRANSCRIBE, held) == 200_015
    assert transcription_tokens_worst_case(None, model, 1800).text_input == 0
    # Two hours: 120,000 audio tokens; a second, 17 (rounded up).
    assert transcription_tokens_worst_case(None, model, 7200).audio_input == 120_000
    assert transcription_tokens_worst_case(None, model, 1).audio_input == 17


def test_a_whisper_transcription_holds_the_longest_audio_by_the_second() -> None:
    from gateway.admission.pricing import audio_reserve
    from gateway.config import ModelConfig

    model = ModelConfig(upstream="whisper-1", minute_price=Usd(6000), max_audio_minutes=30)
    assert audio_reserve(model, 7200) == 720_000  # two hours at $0.006 a minute
    assert audio_reserve(model, 1) == 100
    assert audio_reserve(model, 0) == 0


def test_a_whisper_transcription_is_charged_the_seconds_it_reports_if_any_upload_plays_them() -> (
    None
):
    """Seconds past any upload's length are no report to believe (the call is charged its
    hold): their cost was a number Redis cannot add."""
    from gateway.admission.pricing import audio_cost
    from gateway.config import ModelConfig

    model = ModelConfig(upstream="whisper-1", minute_price=Usd(6000), max_audio_minutes=30)
    assert audio_cost(model, {"usage": {"type": "duration", "seconds": 90}}) == 9_000
    assert audio_cost(model, {"duration": 1.5}) == 150
    for absurd in (-1, 1e300, 10**20):
        assert audio_cost(model, {"usage": {"type": "duration", "seconds": absurd}}) is None


def test_a_long_prompt_costs_what_the_simulator_bills_on_todays_models() -> None:
    from gateway.config import load_config
    from gateway.simulator.bill import tokens_charge
    from tests.conftest import ROOT

    config = load_config((ROOT / "config" / "gateway.yaml").read_text(), {})
    for name in ("gpt-6-luna", "gpt-6.1-sol", "gpt-6.2-astra"):
        price = config.models[name].price
        for prompt, cached, out in ((272_000, 0, 900), (272_001, 0, 900), (300_007, 41_999, 7)):
            usage = Usage(prompt_tokens=prompt, cached_tokens=cached, completion_tokens=out)
            billed = tokens_charge("/v1/chat/completions", name, prompt, out, cached_tokens=cached)
            assert cost_micros(price, usage) == billed.micros, (name, prompt)
            in_batch = tokens_charge(
                "/v1/batches", name, prompt, out, cached_tokens=cached, batch=True
            )
            assert batch_line_cost(price, usage) == in_batch.micros, (name, prompt)
    price = config.models["gpt-6.1-sol"].price
    assert cost_micros(price, Usage(prompt_tokens=272_001, completion_tokens=0)) == 1_088_004
    # The largest cap still fits: 3x the output price per token past the threshold.
    cap = largest_completion_cap(price, 272_001, 1, 2_000_000)
    assert worst_case_micros(price, 272_001, cap) <= 2_000_000
    assert worst_case_micros(price, 272_001, cap + 1) > 2_000_000


def test_a_service_tier_is_priced_in_percent_of_the_standard_price() -> None:
    tiers = {"auto": 100, "flex": 50, "priority": 200}
    assert tier_percent(tiers, None) == 100  # none named: the project's default
    assert tier_percent(tiers, "priority") == 200
    for unpriced in ("scale", 7):
        with pytest.raises(GatewayError) as info:
            tier_percent(tiers, unpriced)
        assert (info.value.status, info.value.param) == (400, "service_tier")
    price = Price(input=2_500_001, cached_input=1_250_000, output=10_000_000)
    assert tiered(price, 100) is price
    assert tiered(price, 50) == Price(
        input=1_250_001,
        cached_input=625_000,
        output=5_000_000,  # rounded up
    )


def test_a_call_is_charged_at_the_tier_that_served_it() -> None:
    from gateway.admission.pricing import served_price

    tiers = {"auto": 100, "default": 100, "flex": 50, "priority": 200}
    assert served_price(GPT_4O, 200, tiers, "default") == GPT_4O
    assert served_price(GPT_4O, 200, tiers, "flex") == tiered(GPT_4O, 50)
    # Dearer than held (a request naming no tier, served at the project's priority): billed so.
    assert served_price(GPT_4O, 100, tiers, "priority") == tiered(GPT_4O, 200)
    assert served_price(GPT_4O, 50, tiers, "default") == GPT_4O
    # As dear as held, without a price, or not a tier: the held price.
    for served in ("priority", "scale", None, 7):
        assert served_price(GPT_4O, 200, tiers, served) is None


def test_a_file_handed_to_the_model_may_fill_its_context() -> None:
    text = {"role": "user", "content": [{"type": "text", "text": "Sum it up."}]}
    pdf = {"role": "user", "content": [{"type": "file", "file": {"file_id": "file-1"}}]}
    assert not reads_files([text]) and reads_files([text, pdf])
    assert reads_files([{"type": "input_file", "file_id": "file-1"}])  # a Responses input item
    # A Responses function's output may hand the model a file, or images, as a message does.
    from gateway.admission.pricing import function_output_images

    def output(*parts: Any) -> dict[str, Any]:
        return {"type": "function_call_output", "call_id": "call_1", "output": list(parts)}

    said = {"type": "input_text", "text": "Here."}
    image = {"type": "input_image", "image_url": "https://example.com/c.png"}
    assert not reads_files([output(said)])
    assert reads_files([output(said, {"type": "input_file", "file_id": "file-1"})])
    assert function_output_images([text, output(said, image, image)], IMAGES) == 2 * IMAGES.high
    assert function_output_images([output(said), {"role": "user", "content": [image]}], IMAGES) == 0
    model = ModelConfig(upstream="gpt-4o", price=GPT_4O, context=128_000)
    assert chat_prompt({"messages": [text]}, model) < 100
    assert chat_prompt({"messages": [text, pdf]}, model) == 128_000


def test_a_structured_output_schema_is_held_as_input_as_tool_schemas_are() -> None:
    from gateway.admission.pricing import format_tokens

    model = ModelConfig(upstream="gpt-4o", price=GPT_4O, context=128_000)
    text = {"role": "user", "content": "Answer in JSON."}
    schema = {"type": "object", "description": "word " * 1_000, "properties": {}}
    given = {"type": "json_schema", "json_schema": {"name": "a", "schema": schema}}
    plain = chat_prompt({"messages": [text]}, model)
    assert chat_prompt({"messages": [text], "response_format": given}, model) > plain + 1_000
    assert chat_prompt({"messages": [text], "response_format": {"type": "json_object"}}, model) == (
        plain
    )
    # The Responses API's `text.format` is flat.
    assert format_tokens({"type": "json_schema", "name": "a", "schema": schema}) > 1_000
    assert format_tokens({"type": "text"}) == format_tokens(None) == 0


def test_chat_audio_in_or_out_is_found_by_its_param() -> None:
    said = {"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": ""}}]}
    text = {"role": "user", "content": "Hi."}
    assert chat_audio({"messages": [text]}) is None
    assert chat_audio({"messages": [text], "modalities": ["text", "audio"]}) == "modalities"
    assert chat_audio({"messages": [text], "audio": {"voice": "alloy"}}) == "audio"
    assert chat_audio({"messages": [text, said]}) == "messages[1].content[0].type"


def test_a_prediction_counts_as_completion_tokens_beside_the_cap() -> None:
    text = "The quick brown fox."
    assert prediction_tokens({}) == 0
    assert prediction_tokens({"prediction": {"type": "content", "content": text}}) == 5
    parts = [{"type": "text", "text": text}, {"type": "text", "text": text}]
    assert prediction_tokens({"prediction": {"type": "content", "content": parts}}) == 10
    body = {"messages": [{"role": "user", "content": "Hi."}], "max_completion_tokens": 10}
    model = ModelConfig(upstream="gpt-4o", price=GPT_4O, max_output=16_384)
    worst = batch_line_worst("/v1/chat/completions", body, model)
    predicted = batch_line_worst(
        "/v1/chat/completions", {**body, "prediction": {"content": text}}, model
    )
    assert worst is not None and predicted == (worst[0], worst[1] + 5)


def test_a_responses_input_is_counted_whatever_its_items_shape() -> None:
    text = "word " * 1_000
    given = [{"role": "user", "content": text}, {"type": "item_reference", "id": "msg_1"}]
    counted = responses_input_tokens({"instructions": "Be brief.", "input": given}, IMAGES)
    assert counted >= count_text(text) + count_text("Be brief.")
    assert refers_to_items(given)
    assert not refers_to_items([{"role": "user", "content": text}]) and not refers_to_items(text)


def test_a_computer_screenshot_given_back_is_held_as_an_image() -> None:
    """A computer use call's output hands the model a screenshot (a URL or a file id), billed
    as an image: held at the serving model's largest image, not as the few tokens of its URL
    (15 tokens for the output item, where gpt-4o bills such an image up to 1,445)."""
    call: Any = {
        "type": "computer_call", "call_id": "call_1", "id": "cu_1", "status": "completed",
        "action": {"type": "click", "x": 1, "y": 2, "button": "left"},
        "pending_safety_checks": [],
    }  # fmt: skip
    asked: Any = {"role": "user", "content": "Click it."}
    for shot in (
        {"type": "computer_screenshot", "image_url": "https://example.com/s.png"},
        {"type": "computer_screenshot", "file_id": "file-1"},
    ):
        output = {"type": "computer_call_output", "call_id": "call_1", "output": shot}
        counted = responses_input_tokens({"input": [asked, call, output]}, IMAGES)
        assert counted - responses_input_tokens({"input": [asked, call]}, IMAGES) >= IMAGES.high


def test_a_part_whose_type_is_no_string_hands_the_model_no_file() -> None:
    # The client's `type` may be any JSON value: a list or an object is no file (nor a 500).
    for kind in ([], {}, ["input_file"], {"a": 1}):
        part = {"type": kind, "file_id": "file-1"}
        assert not reads_files([{"role": "user", "content": [part]}])
        assert not reads_files([{"type": "function_call_output", "output": [part]}])
