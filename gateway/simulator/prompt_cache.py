"""Which part of a prompt OpenAI's prompt cache would have served (`cached_tokens`).

No I/O: the cache is an in-memory LRU owned by one simulator instance. Caching starts at 1,024
prompt tokens and grows in steps of 128 (OpenAI's prompt caching guide); a prefix counts only
when it ends on a message boundary, which is how the simulator keys it.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

import orjson

from gateway.wire.tokens import TOKENS_FOR_REPLY, count_messages

MIN_CACHED_TOKENS = 1024
CACHE_STEP = 128


def message_tokens(messages: list[Any]) -> list[int]:
    """Each message's share of `count_messages`; the sum plus the reply priming is the total."""
    return [count_messages([message]) - TOKENS_FOR_REPLY for message in messages]


def prefix_digests(messages: list[Any]) -> list[bytes]:
    """One digest per whole-message prefix: digest k covers messages[0..k]."""
    digests: list[bytes] = []
    previous = b""
    for message in messages:
        data = orjson.dumps(message, option=orjson.OPT_SORT_KEYS)
        previous = hashlib.blake2b(previous + data, digest_size=16).digest()
        digests.append(previous)
    return digests


def written_tokens(prompt_tokens: int, cached_tokens: int) -> int:
    """The prompt tokens a call writes to the prompt cache (`cache_write_tokens`, reported and
    billed by the models that bill writes): the cacheable part of its prompt (from 1,024
    tokens, in steps of 128) that the cache did not serve."""
    if prompt_tokens < MIN_CACHED_TOKENS:
        return 0
    return max(prompt_tokens // CACHE_STEP * CACHE_STEP - cached_tokens, 0)


class PromptCache:
    """Bounded LRU of prompt prefixes this simulator has seen."""

    __slots__ = ("_capacity", "_seen")

    def __init__(self, capacity: int = 4096) -> None:
        self._capacity = max(1, capacity)
        self._seen: OrderedDict[bytes, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def lookup_and_store(self, messages: list[Any], per_message: list[int]) -> int:
        """`cached_tokens` for this prompt; then remember its prefixes for later prompts.

        `per_message` is `message_tokens(messages)` (the caller counted them already).
        """
        prompt_tokens = sum(per_message) + TOKENS_FOR_REPLY
        if prompt_tokens < MIN_CACHED_TOKENS:
            return 0
        digests = prefix_digests(messages)
        prefix_tokens = 0
        cached = 0
        for digest, tokens in zip(digests, per_message, strict=True):
            prefix_tokens += tokens
            if digest in self._seen:
                self._seen.move_to_end(digest)
                cached = prefix_tokens
        cached = min(prompt_tokens, cached) // CACHE_STEP * CACHE_STEP
        # Only prefixes long enough to be cached are worth remembering.
        prefix_tokens = 0
        for digest, tokens in zip(digests, per_message, strict=True):
            prefix_tokens += tokens
            if prefix_tokens >= MIN_CACHED_TOKENS:
                self._seen[digest] = None
                self._seen.move_to_end(digest)
        while len(self._seen) > self._capacity:
            self._seen.popitem(last=False)
        return cached if cached >= MIN_CACHED_TOKENS else 0
