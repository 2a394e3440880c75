"""What the simulated model answers, and the chat.completion / chunk objects that carry it.

Pure: the answer is a function of the request body plus the seeds and counts passed in. The text
comes from a hash of the messages, so the same prompt always gets the same answer; ids come from
`id_seed`, which the caller draws from its own random source.

Shapes follow OpenAI's September 2024 payloads: `refusal: null` in messages and role deltas,
`logprobs: null` in every choice, `usage.prompt_tokens_details.cached_tokens` and
`usage.completion_tokens_details.reasoning_tokens` always present.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.simulator.efforts import effort_of, scaled_reasoning
from gateway.simulator.emulated import protocol_answer, read_protocol
from gateway.simulator.ids import tool_call_id
from gateway.simulator.prompt_cache import written_tokens
from gateway.simulator.rules import ChatModel, requested_output
from gateway.simulator.schema_values import arguments_for, value_for_schema
from gateway.simulator.triggers import asks_for_tool, mentioned
from gateway.wire.tokens import count_text

# Readable filler: every pick makes a grammatical sentence, so logs and demos look like answers.
_OPENERS = (
    "",
    "",
    "",
    "In short, ",
    "In practice, ",
    "First, ",
    "Then ",
    "Most of the time, ",
    "As a rule, ",
    "Put simply, ",
    "On the whole, ",
    "For example, ",
)
_SUBJECTS = (
    "the answer",
    "a simple plan",
    "the team",
    "this approach",
    "the model",
    "a careful reader",
    "the first step",
    "a small change",
    "the main idea",
    "good practice",
    "the result",
    "each part",
    "a clear example",
    "the system",
    "the question",
    "a short test",
)
_VERBS = (
    "depends on",
    "points to",
    "builds on",
    "explains",
    "improves",
    "supports",
    "leads to",
    "starts with",
    "shows",
    "keeps",
    "balances",
    "reflects",
    "follows",
    "changes",
    "needs",
    "favours",
)
_OBJECTS = (
    "the context",
    "a few clear rules",
    "the details",
    "every step",
    "the final result",
    "the original question",
    "a steady pace",
    "the right trade-off",
    "what matters most",
    "the available data",
    "a simple structure",
    "the next decision",
    "the key facts",
    "a useful summary",
    "the whole picture",
    "each assumption",
)
_ADJUNCTS = (
    "",
    "",
    "in most cases",
    "over time",
    "with a little care",
    "for most readers",
    "without much effort",
    "when it is measured",
    "at every stage",
    "in the long run",
    "when it counts",
    "as expected",
)
MIN_ANSWER_TOKENS = 30
MAX_ANSWER_TOKENS = 150
# The phrase-sum estimate runs up to a few tokens high (a capitalised opener is cheaper than
# the spaced phrase), so aim a little above the minimum; the longest sentence is about 16
# tokens, so stop early enough to stay under the maximum.
_TARGET_LOW = MIN_ANSWER_TOKENS + 4
_TARGET_SPAN = MAX_ANSWER_TOKENS - _TARGET_LOW - 16

MIN_REASONING_TOKENS = 64
MAX_REASONING_TOKENS = 4096
# o1 reports reasoning in whole blocks of 64 tokens.
REASONING_BLOCK = 64
# Role, name and argument framing a tool call costs beyond its name and arguments (approximate).
TOOL_CALL_OVERHEAD_TOKENS = 7

_WORD = re.compile(r"\s*\S+|\s+")
_ARGUMENT_PIECE = re.compile(r"\w+|\W+")
_SEED_MASK = (1 << 64) - 1


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Choice:
    content: str | None
    tool_calls: tuple[ToolCall, ...]
    finish_reason: str
    # Output tokens of this choice, reasoning excluded.
    tokens: int


@dataclass(frozen=True, slots=True)
class Answer:
    model: str
    system_fingerprint: str
    choices: tuple[Choice, ...]
    prompt_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    # The tier that served it (`served_tier`), billed; `tier_told`: the answer says it, as
    # OpenAI's chat answer does only to a request that names a tier.
    service_tier: str | None = None
    tier_told: bool = True
    # Prompt tokens written to the prompt cache, part of `prompt_tokens`; None for a model whose
    # usage does not report them (`ChatModel.writes_cache`).
    cache_write_tokens: int | None = None

    def prompt_details(self) -> dict[str, int]:
        """`cached_tokens`, and `cache_write_tokens` where the model reports them."""
        if self.cache_write_tokens is None:
            return {"cached_tokens": self.cached_tokens}
        return {"cached_tokens": self.cached_tokens, "cache_write_tokens": self.cache_write_tokens}

    @property
    def completion_tokens(self) -> int:
        return self.reasoning_tokens + sum(choice.tokens for choice in self.choices)

    def usage(self) -> dict[str, Any]:
        completion = self.completion_tokens
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
            "prompt_tokens_details": self.prompt_details(),
            "completion_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
        }


def told_tier(answer: Answer) -> bool:
    """Whether a chat answer names the tier that served it."""
    return answer.service_tier is not None and answer.tier_told


def served_tier(asked: Any, knob: str | None) -> str:
    """The `service_tier` an answer reports: the `x-sim-service-tier` knob's, else the tier
    asked for; "auto", none or one OpenAI does not serve at is served at "default"."""
    if knob is not None:
        return knob
    return asked if asked in ("flex", "priority", "scale") else "default"


def prompt_seed(messages: Any) -> int:
    """A stable 64-bit seed for a conversation (Python's hash() changes per process)."""
    try:
        data = orjson.dumps(messages, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        data = repr(messages).encode()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


def _with_tokens(phrases: tuple[str, ...]) -> tuple[tuple[str, int], ...]:
    # Counted once with a leading space, as each phrase appears mid-sentence.
    return tuple((phrase, count_text(" " + phrase) if phrase else 0) for phrase in phrases)


_OPENER_BANK = _with_tokens(_OPENERS)
_SUBJECT_BANK = _with_tokens(_SUBJECTS)
_VERB_BANK = _with_tokens(_VERBS)
_OBJECT_BANK = _with_tokens(_OBJECTS)
_ADJUNCT_BANK = _with_tokens(_ADJUNCTS)


def answer_text(seed: int) -> str:
    """Deterministic English sentences, about 30 to 150 tokens long."""
    picks = hashlib.shake_256((seed & _SEED_MASK).to_bytes(8, "little")).digest(128)
    target = _TARGET_LOW + picks[0] % (_TARGET_SPAN + 1)
    sentences: list[str] = []
    # Phrase counts summed: close to the exact count, which the caller takes on the whole text.
    tokens = 0
    at = 1
    while tokens < target and at + 5 <= len(picks):
        opener, opener_tokens = _OPENER_BANK[picks[at] % len(_OPENER_BANK)]
        subject, subject_tokens = _SUBJECT_BANK[picks[at + 1] % len(_SUBJECT_BANK)]
        verb, verb_tokens = _VERB_BANK[picks[at + 2] % len(_VERB_BANK)]
        obj, object_tokens = _OBJECT_BANK[picks[at + 3] % len(_OBJECT_BANK)]
        adjunct, adjunct_tokens = _ADJUNCT_BANK[picks[at + 4] % len(_ADJUNCT_BANK)]
        at += 5
        head = opener + subject if opener else subject[0].upper() + subject[1:]
        sentences.append(f"{head} {verb} {obj} {adjunct}." if adjunct else f"{head} {verb} {obj}.")
        # +1 for the full stop.
        tokens += opener_tokens + subject_tokens + verb_tokens + object_tokens + adjunct_tokens + 1
    return " ".join(sentences)


def word_deltas(text: str) -> list[str]:
    """Split text into about one word per piece, whitespace kept, so the pieces join back."""
    return _WORD.findall(text)


def argument_deltas(arguments: str) -> list[str]:
    """Split tool-call arguments the way OpenAI streams them: words and punctuation runs."""
    return _ARGUMENT_PIECE.findall(arguments)


def truncate_tokens(text: str, limit: int) -> str:
    """The longest prefix of `text` that fits in `limit` tokens."""
    if count_text(text) <= limit:
        return text
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if count_text(text[:middle]) <= limit:
            low = middle
        else:
            high = middle - 1
    return text[:low]


def reasoning_budget(prompt_tokens: int, seed: int) -> int:
    """Reasoning tokens an o1 model spends: grows with the prompt, in blocks of 64."""
    raw = prompt_tokens * 2 + REASONING_BLOCK * (1 + (seed & _SEED_MASK) % 8)
    blocks = -(-raw // REASONING_BLOCK)
    return max(MIN_REASONING_TOKENS, min(MAX_REASONING_TOKENS, blocks * REASONING_BLOCK))


def compose(
    body: dict[str, Any],
    model: ChatModel,
    *,
    prompt_tokens: int,
    content_seed: int,
    id_seed: int,
    cached_tokens: int = 0,
    answer: str | None = None,
    reasoning_tokens: int | None = None,
) -> Answer:
    """Decide the answer to a chat request `rules.check()` accepted.

    `answer` replaces the generated text (tests use it to control model output);
    `reasoning_tokens` replaces the computed reasoning budget of an o1 model.
    A model with reasoning efforts thinks its budget scaled by the effort, then answers as
    gpt-4o would (tools, formats, `n`) within what the output cap leaves.
    """
    limit = requested_output(body)
    family = model.family
    choices: tuple[Choice, ...]
    if family.efforts:
        effort = effort_of(body.get("reasoning_effort"), family.default_effort)
        assert effort is not None  # a model with efforts has a default
        reasoning = (
            reasoning_tokens
            if reasoning_tokens is not None
            else scaled_reasoning(reasoning_budget(prompt_tokens, content_seed), effort)
        )
        if limit is not None and reasoning >= limit:
            # Thinking used the whole cap: nothing left to answer with, as with o1.
            choices = (Choice("", (), "length", 0),)
            reasoning = limit
        else:
            left = None if limit is None else limit - reasoning
            choices = _choices(body, answer, left, content_seed, id_seed)
    elif family.reasoning:
        reasoning = (
            reasoning_tokens
            if reasoning_tokens is not None
            else reasoning_budget(prompt_tokens, content_seed)
        )
        text = answer if answer is not None else _generated(body, content_seed)
        tokens = count_text(text)
        if limit is not None and reasoning + tokens > limit:
            # o1 spends the whole budget thinking and bills it all as reasoning: an empty answer
            # with finish_reason "length", as OpenAI's reasoning guide warns.
            choices = (Choice("", (), "length", 0),)
            reasoning = limit
        else:
            choices = (Choice(text, (), "stop", tokens),)
    else:
        reasoning = 0
        choices = _choices(body, answer, limit, content_seed, id_seed)
    return Answer(
        model.snapshot,
        model.system_fingerprint,
        choices,
        prompt_tokens,
        cached_tokens,
        reasoning,
        cache_write_tokens=(
            written_tokens(prompt_tokens, cached_tokens) if model.writes_cache else None
        ),
    )


def _choices(
    body: dict[str, Any], answer: str | None, limit: int | None, content_seed: int, id_seed: int
) -> tuple[Choice, ...]:
    """The `n` choices of a model that answers with tools and formats (all but launch o1)."""
    n = body.get("n")
    count = n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 1
    tool = _forced_tool(body)
    if tool is None and answer is None:
        tool = _requested_tool(body)
    return tuple(
        _choice(body, tool, answer, limit, (content_seed + i) & _SEED_MASK, id_seed + i)
        for i in range(count)
    )


def _choice(
    body: dict[str, Any],
    tool: dict[str, Any] | None,
    answer: str | None,
    limit: int | None,
    seed: int,
    id_seed: int,
) -> Choice:
    if tool is not None:
        name = str(tool["name"])
        arguments = orjson.dumps(arguments_for(tool.get("parameters"))).decode()
        overhead = count_text(name) + TOOL_CALL_OVERHEAD_TOKENS
        finish = "tool_calls"
        if limit is not None and overhead + count_text(arguments) > limit:
            arguments = truncate_tokens(arguments, max(0, limit - overhead))
            finish = "length"
        tokens = overhead + count_text(arguments)
        call = ToolCall(tool_call_id(id_seed), name, arguments)
        return Choice(None, (call,), finish, tokens)
    text = answer if answer is not None else _generated(body, seed)
    finish = "stop"
    if limit is not None:
        cut = truncate_tokens(text, limit)
        if cut != text:
            text, finish = cut, "length"
    return Choice(text, (), finish, count_text(text))


def _generated(body: dict[str, Any], seed: int) -> str:
    response_format = body.get("response_format")
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "json_object":
        return orjson.dumps({"answer": answer_text(seed)}).decode()
    if kind == "json_schema":
        spec = response_format.get("json_schema") if isinstance(response_format, dict) else None
        schema = spec.get("schema") if isinstance(spec, dict) else None
        return orjson.dumps(value_for_schema(schema or {"type": "object"})).decode()
    text = answer_text(seed)
    if not _functions(body):
        # No native tools, so maybe prompted ones: a gateway emulating tools or JSON output for
        # a model without them (o1-preview, o1-mini) gets answers in its own protocol.
        protocol = read_protocol(_instruction_texts(body))
        if protocol is not None:
            return protocol_answer(protocol, _last_user_text(body), text)
    return text


def _instruction_texts(body: dict[str, Any]) -> list[str]:
    """The texts instructions can travel in: system and developer messages, or folded into a
    user message by a gateway whose model refuses those roles."""
    messages = body.get("messages")
    return [
        _content_text(message.get("content"))
        for message in (messages if isinstance(messages, list) else [])
        if isinstance(message, dict) and message.get("role") in ("system", "developer", "user")
    ]


def _functions(body: dict[str, Any]) -> list[dict[str, Any]]:
    tools = body.get("tools")
    if not isinstance(tools, list):
        return []
    return [
        tool["function"]
        for tool in tools
        if isinstance(tool, dict)
        and tool.get("type") == "function"
        and isinstance(tool.get("function"), dict)
        and isinstance(tool["function"].get("name"), str)
    ]


def _forced_tool(body: dict[str, Any]) -> dict[str, Any] | None:
    """The function `tool_choice` forces: "required" or {"type": "function", ...}."""
    functions = _functions(body)
    if not functions:
        return None
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        wanted = choice.get("function")
        name = wanted.get("name") if isinstance(wanted, dict) else None
        return next((f for f in functions if f["name"] == name), functions[0])
    if choice == "required":
        return _named(functions, _last_user_text(body)) or functions[0]
    return None


def _requested_tool(body: dict[str, Any]) -> dict[str, Any] | None:
    """With tool_choice "auto", call a tool only when the prompt clearly asks for one.

    Never right after a tool result: the request that asked for the call is answered by then,
    and an agent loop must end.
    """
    functions = _functions(body)
    if not functions or body.get("tool_choice") == "none" or _after_tool_result(body):
        return None
    text = _last_user_text(body)
    named = _named(functions, text)
    if named is not None:
        return named
    return functions[0] if asks_for_tool(text) else None


def _named(functions: list[dict[str, Any]], text: str) -> dict[str, Any] | None:
    name = mentioned((f["name"] for f in functions), text)
    return next((f for f in functions if f["name"] == name), None)


def _after_tool_result(body: dict[str, Any]) -> bool:
    messages = body.get("messages")
    last = messages[-1] if isinstance(messages, list) and messages else None
    return isinstance(last, dict) and last.get("role") in ("tool", "function")


def _last_user_text(body: dict[str, Any]) -> str:
    messages = body.get("messages")
    for message in reversed(messages if isinstance(messages, list) else []):
        if isinstance(message, dict) and message.get("role") == "user":
            return _content_text(message.get("content"))
    return ""


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _message(choice: Choice) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": choice.content}
    if choice.tool_calls:
        message["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in choice.tool_calls
        ]
    message["refusal"] = None
    return message


def completion_object(answer: Answer, *, completion_id: str, created: int) -> dict[str, Any]:
    """The non-streamed `chat.completion` object."""
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": answer.model,
        "choices": [
            {
                "index": index,
                "message": _message(choice),
                "logprobs": None,
                "finish_reason": choice.finish_reason,
            }
            for index, choice in enumerate(answer.choices)
        ],
        "usage": answer.usage(),
        **({"service_tier": answer.service_tier} if told_tier(answer) else {}),
        "system_fingerprint": answer.system_fingerprint,
    }


def _deltas(choice: Choice) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The role delta that opens a choice, then its content or tool-call deltas."""
    if not choice.tool_calls:
        first: dict[str, Any] = {"role": "assistant", "content": "", "refusal": None}
        return first, [{"content": piece} for piece in word_deltas(choice.content or "")]
    rest: list[dict[str, Any]] = []
    first = {"role": "assistant", "content": None}
    for index, call in enumerate(choice.tool_calls):
        opening = {
            "index": index,
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        # The first call's opening rides on the role delta, as OpenAI sends it.
        if index == 0:
            first["tool_calls"] = [opening]
        else:
            rest.append({"tool_calls": [opening]})
        rest.extend(
            {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
            for piece in argument_deltas(call.arguments)
        )
    first["refusal"] = None
    return first, rest


def chunk_objects(
    answer: Answer, *, completion_id: str, created: int, include_usage: bool
) -> list[dict[str, Any]]:
    """The `chat.completion.chunk` sequence of a stream, without the final `[DONE]`."""

    tier = {"service_tier": answer.service_tier} if told_tier(answer) else {}

    def chunk(choices: list[dict[str, Any]]) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": answer.model,
            **tier,  # every chunk says it, the last one too
            "system_fingerprint": answer.system_fingerprint,
            "choices": choices,
        }
        if include_usage:
            obj["usage"] = None
        return obj

    def choice(index: int, delta: dict[str, Any], finish: str | None) -> list[dict[str, Any]]:
        return [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}]

    chunks: list[dict[str, Any]] = []
    bodies: list[list[dict[str, Any]]] = []
    for index, item in enumerate(answer.choices):
        first, rest = _deltas(item)
        chunks.append(chunk(choice(index, first, None)))
        bodies.append(rest)
    # Several choices interleave their deltas, as they do upstream.
    for step in range(max((len(rest) for rest in bodies), default=0)):
        for index, rest in enumerate(bodies):
            if step < len(rest):
                chunks.append(chunk(choice(index, rest[step], None)))
    for index, item in enumerate(answer.choices):
        chunks.append(chunk(choice(index, {}, item.finish_reason)))
    if include_usage:
        final = chunk([])
        final["usage"] = answer.usage()
        chunks.append(final)
    return chunks
