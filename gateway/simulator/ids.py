"""OpenAI-shaped identifiers derived from a seed.

Pure: the caller owns the randomness (the app keeps a seeded `random.Random`), so the same
seed always gives the same id and tests can pin them.
"""

from __future__ import annotations

import hashlib

_ALNUM = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# bytes.translate maps a digest straight onto the alphabet; the modulo bias is irrelevant here.
_TO_ALNUM = bytes(_ALNUM[b % len(_ALNUM)] for b in range(256))
_SEED_MASK = (1 << 256) - 1


def _digest(tag: bytes, seed: int, size: int) -> bytes:
    return hashlib.blake2b(
        tag + (seed & _SEED_MASK).to_bytes(32, "little"), digest_size=size
    ).digest()


def completion_id(seed: int) -> str:
    """`chatcmpl-` + 29 alphanumerics, like OpenAI's chat completion ids."""
    return "chatcmpl-" + _digest(b"chatcmpl", seed, 29).translate(_TO_ALNUM).decode()


def request_id(seed: int) -> str:
    """`req_` + 32 hex digits, like OpenAI's `x-request-id`."""
    return "req_" + _digest(b"req", seed, 16).hex()


def tool_call_id(seed: int) -> str:
    """`call_` + 24 alphanumerics, like OpenAI's tool call ids."""
    return "call_" + _digest(b"call", seed, 24).translate(_TO_ALNUM).decode()


def moderation_id(seed: int) -> str:
    return "modr-" + _digest(b"modr", seed, 29).translate(_TO_ALNUM).decode()


def response_item_id(prefix: str, seed: int) -> str:
    """`resp_`, `msg_`, `fc_`... + 48 hex digits, like the Responses API's object and item ids."""
    return f"{prefix}_" + _digest(prefix.encode(), seed, 24).hex()


def alnum_id(prefix: str, seed: int, size: int) -> str:
    """`prefix` + `size` alphanumerics: files (`file-`), fine-tuning jobs and events (`ftjob-`,
    `ft-event-`), vector stores (`vs_`), legacy completions (`cmpl-`)."""
    return prefix + _digest(prefix.encode(), seed, size).translate(_TO_ALNUM).decode()


def hex_id(prefix: str, seed: int, digits: int = 32) -> str:
    """`prefix` + hex digits: batches (`batch_`) and their output lines (`batch_req_`)."""
    return prefix + _digest(prefix.encode(), seed, digits // 2).hex()
