"""OpenAI-shaped ids from seeds: right format, deterministic, distinct."""

from __future__ import annotations

import re

from gateway.simulator.ids import completion_id, moderation_id, request_id, tool_call_id


def test_formats() -> None:
    assert re.fullmatch(r"chatcmpl-[A-Za-z0-9]{29}", completion_id(1))
    assert re.fullmatch(r"req_[0-9a-f]{32}", request_id(1))
    assert re.fullmatch(r"call_[A-Za-z0-9]{24}", tool_call_id(1))
    assert re.fullmatch(r"modr-[A-Za-z0-9]{29}", moderation_id(1))


def test_deterministic_and_distinct() -> None:
    assert completion_id(123) == completion_id(123)
    assert len({completion_id(seed) for seed in range(1000)}) == 1000
    assert len({request_id(seed) for seed in range(1000)}) == 1000
    # Huge and negative seeds are folded, not rejected.
    assert completion_id(2**300).startswith("chatcmpl-") and request_id(-5).startswith("req_")
