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
