"""Token counting with the real o200k_base vocabulary (gpt-4o and o1 models), offline, and
with any other vocabulary a model is billed in (`count_text_in`: cl100k_base for the embedding
models and gpt-3.5-turbo-instruct).

toktok-rs carries the vocabularies compiled in, so nothing is downloaded at run time (tiktoken
would fetch its BPE file on first use, which fails on a closed network).
"""

from __future__ import annotations

from typing import Any

import toktok

ENCODING = "o200k_base"
# The vocabulary of the models before gpt-4o: the embedding models and the legacy completion ones.
CL100K = "cl100k_base"
# batch_count() starts a thread pool per call, which costs far more than counting a short chat;
# the tokenizer's own count() does not, so hold the loaded tokenizer (the package's documented
# escape hatch).
_TOKENIZER: Any = toktok._encoding(ENCODING)
# Loaded with the module (up to 0.3 s and 35 MB): loading it at a first embeddings call would
# stall the event loop that long.
_OTHERS: dict[str, Any] = {CL100K: toktok._encoding(CL100K)}
# OpenAI's chat format wraps each message in a few special tokens and primes the reply.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
TOKENS_FOR_REPLY = 3
# A request body larger than this has its prompt counted off the event loop
# (`Gateway.count_off_loop`): counting is up to half a microsecond a byte, 30 ms here, while
# a thread's turn costs about 0.1 ms, nothing beside a call this large.
OFF_LOOP_BYTES = 64 * 1024


def count_text(text: str) -> int:
    return int(_TOKENIZER.count(text)) if text else 0


def count_text_in(encoding: str, text: str) -> int:
    """Tokens of `text` in the vocabulary `encoding` names (a model's `tokenizer`): cl100k_base
    reads non-Latin text as up to three times o200k_base's count."""
    if encoding == ENCODING:
        return count_text(text)
    return int(_OTHERS[encoding].count(text)) if text else 0


def message_texts(message: dict[str, Any]) -> list[str]:
    """Every string in a chat message that the model reads as tokens."""
    texts: list[str] = []
    role = message.get("role")
    if isinstance(role, str):
        texts.append(role)
    content = message.get("content")
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for part in content:
            if not isinstance(part, dict):
                continue
            if isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif isinstance(part.get("refusal"), str):  # an assistant's refusal part
                texts.append(part["refusal"])
    name = message.get("name")
    if isinstance(name, str):
        texts.append(name)
    refusal = message.get("refusal")
    if isinstance(refusal, str):
        texts.append(refusal)
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else ():
        if isinstance(call, dict) and isinstance(call.get("function"), dict):
            fn = call["function"]
            texts.extend(str(fn.get(k, "")) for k in ("name", "arguments"))
    legacy = message.get("function_call")  # a legacy function call: read as a tool call is
    if isinstance(legacy, dict):
        texts.extend(str(legacy.get(k, "")) for k in ("name", "arguments"))
    return texts


def count_messages(messages: list[Any]) -> int:
    """Prompt tokens of a chat request, as upstream `usage.prompt_tokens` reports them."""
    total = TOKENS_FOR_REPLY
    for message in messages:
        if not isinstance(message, dict):
            continue
        total += TOKENS_PER_MESSAGE + (TOKENS_PER_NAME if "name" in message else 0)
        total += sum(count_text(text) for text in message_texts(message))
    return total
