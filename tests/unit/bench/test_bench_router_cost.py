"""bench.router's cost estimate: integer micro-dollars, about 4 characters a token."""

from __future__ import annotations

from bench.router import estimated_cost_micros, size_label


def test_cost_of_a_prompt_on_gpt_4o_and_o1_preview() -> None:
    prompt = "x" * 400  # 100 tokens in, 500 out
    # 100 x $2.50 + 500 x $10 per 1M tokens = $0.00525.
    assert estimated_cost_micros("gpt-4o", prompt) == 5250
    # o1 bills 4 x 500 reasoning and answer tokens: 100 x $15 + 2000 x $60 per 1M = $0.1215.
    assert estimated_cost_micros("o1-preview", prompt) == 121_500
    assert estimated_cost_micros("o1-mini", prompt) == 24_300


def test_a_started_token_is_billed_and_rounding_is_up() -> None:
    # 401 characters are 101 tokens: 101 x 2.5 = 252.5 micro-dollars of input, rounded up.
    assert estimated_cost_micros("gpt-4o", "x" * 401) == 5253


def test_size_labels() -> None:
    assert size_label(100) == "100 B"
    assert size_label(10 << 10) == "10 KB"
    assert size_label(1 << 20) == "1024 KB"
