"""What a chat message is read as: every string the model reads, so the hold counts it."""

from __future__ import annotations

from gateway.wire.tokens import count_messages, count_text, message_texts

LONG = "word " * 100


def test_an_assistant_turn_is_read_whole() -> None:
    plain = count_messages([{"role": "assistant", "content": "No."}])
    for message in (
        {"role": "assistant", "content": None, "function_call": {"name": "f", "arguments": LONG}},
        {"role": "assistant", "content": "No.", "refusal": LONG},
        {"role": "assistant", "content": [{"type": "refusal", "refusal": LONG}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": LONG}}
        ]},
    ):  # fmt: skip
        assert LONG in message_texts(message)
        assert count_messages([message]) > plain + count_text(LONG) - 5


def test_every_tokenizer_a_model_may_name_counts_exactly() -> None:
    from gateway.config.schema import TOKENIZERS
    from gateway.wire.tokens import count_text_in

    # tiktoken's own examples: "hello world" is [15339, 1917] in cl100k_base, [24912, 2375] in
    # o200k_base; Hindi is where the two part (31 tokens against 10).
    hindi = "नमस्ते दुनिया, यह एक परीक्षण है"
    counted = {
        name: (count_text_in(name, "hello world"), count_text_in(name, hindi))
        for name in TOKENIZERS
    }
    assert counted == {"o200k_base": (2, 10), "cl100k_base": (2, 31)}
    assert count_text_in("cl100k_base", "") == 0
