"""cached_tokens: prefixes by whole messages, 1024 minimum, steps of 128, bounded LRU."""

from __future__ import annotations

from typing import Any

from gateway.simulator.prompt_cache import PromptCache, message_tokens, prefix_digests
from gateway.wire.tokens import count_messages

LONG = {"role": "user", "content": "alpha " * 1500}
OTHER_LONG = {"role": "user", "content": "beta " * 1500}
SHORT = {"role": "user", "content": "Hello"}


def cached(cache: PromptCache, messages: list[Any]) -> int:
    return cache.lookup_and_store(messages, message_tokens(messages))


def test_message_tokens_add_up_to_count_messages() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        SHORT,
        {"role": "user", "name": "bob", "content": "hi"},
    ]
    assert sum(message_tokens(messages)) + 3 == count_messages(messages)


def test_first_sight_is_not_cached_and_repeat_is() -> None:
    cache = PromptCache()
    messages = [LONG, {"role": "assistant", "content": "ok"}, SHORT]
    assert cached(cache, messages) == 0
    prompt = count_messages(messages)
    again = cached(cache, messages)
    assert again >= 1024 and again % 128 == 0 and again <= prompt
    assert prompt - again < 128 + 3


def test_a_seen_prefix_is_cached_in_a_longer_prompt() -> None:
    cache = PromptCache()
    assert cached(cache, [LONG]) == 0
    prefix = message_tokens([LONG])[0]
    assert cached(cache, [LONG, SHORT]) == prefix // 128 * 128
    # A different first message shares no prefix.
    assert cached(cache, [OTHER_LONG, SHORT]) == 0


def test_short_prompts_are_never_cached() -> None:
    cache = PromptCache()
    assert cached(cache, [SHORT]) == 0
    assert cached(cache, [SHORT]) == 0
    assert len(cache) == 0


def test_cache_is_bounded_lru() -> None:
    cache = PromptCache(capacity=2)
    first = [{"role": "user", "content": "one " * 1200}]
    cached(cache, first)
    cached(cache, [{"role": "user", "content": "two " * 1200}])
    cached(cache, [{"role": "user", "content": "three " * 1200}])
    assert len(cache) == 2
    assert cached(cache, first) == 0  # evicted


def test_prefix_digests_chain() -> None:
    a, b = prefix_digests([SHORT, LONG])
    assert prefix_digests([SHORT]) == [a]
    assert prefix_digests([LONG, SHORT])[1] != b
