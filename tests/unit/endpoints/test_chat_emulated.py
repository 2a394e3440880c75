"""The repair attempt of an emulated answer, kept within what the request held."""

from __future__ import annotations

from typing import Any

from gateway.admission.pricing import chat_extra_prompt, worst_case_micros
from gateway.config import ImageInputTokens, Price
from gateway.endpoints.chat_emulated import fit_repair
from gateway.wire import tokens

PRICE = Price(input=15_000_000, cached_input=7_500_000, output=60_000_000)  # o1-preview
IMAGES = ImageInputTokens()
REPAIR: dict[str, Any] = {
    "model": "o1-preview",
    "messages": [
        {"role": "user", "content": "What is the weather? Answer with a tool call."},
        {"role": "assistant", "content": "It is sunny."},
        {"role": "user", "content": "Your previous answer could not be used: no tool call."},
    ],
}
PROMPT = tokens.count_messages(REPAIR["messages"]) + chat_extra_prompt(REPAIR, IMAGES)


def test_the_repair_may_use_what_the_hold_has_left_and_no_more() -> None:
    left = worst_case_micros(PRICE, PROMPT, 1000) + 59  # a little short of one token more
    repair = dict(REPAIR)
    assert fit_repair(repair, PRICE, left, copies=1, images=IMAGES)
    assert repair["max_completion_tokens"] == 1000
    assert worst_case_micros(PRICE, PROMPT, 1000) <= left < worst_case_micros(PRICE, PROMPT, 1001)
    # Two answers asked for (`n`): each gets half of it.
    repair = dict(REPAIR)
    assert fit_repair(
        repair, PRICE, worst_case_micros(PRICE, PROMPT, 2000), copies=2, images=IMAGES
    )
    assert repair["max_completion_tokens"] == 1000


def test_a_cap_the_client_set_lower_is_kept_in_its_own_field() -> None:
    roomy = worst_case_micros(PRICE, PROMPT, 10_000)
    repair = {**REPAIR, "max_completion_tokens": 300}
    assert fit_repair(repair, PRICE, roomy, copies=1, images=IMAGES)
    assert repair["max_completion_tokens"] == 300
    legacy = {**REPAIR, "max_tokens": 20_000}
    assert fit_repair(legacy, PRICE, roomy, copies=1, images=IMAGES)
    assert legacy["max_tokens"] == 10_000 and "max_completion_tokens" not in legacy


def test_no_repair_when_not_even_its_prompt_and_one_token_fit() -> None:
    for left in (worst_case_micros(PRICE, PROMPT, 0), 0, -5):
        repair = dict(REPAIR)
        assert not fit_repair(repair, PRICE, left, copies=1, images=IMAGES)
        assert repair == REPAIR
