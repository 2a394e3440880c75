"""Request and response patches that let any client talk to a model with fewer capabilities.

Pure: the patches depend only on the request and the model's `Capabilities` row, never on the
model's name, because the same gaps (no system role, `max_tokens` refused, no streaming) recur
on every new reasoning model and the config table is where an operator can say so.

These patches cover message roles, token limits, sampling knobs, logprobs, `stop` and
streaming. `tools` and `response_format` are not patched here: `emulation` rewrites them, before
these patches run, for a model that lacks them.

The adapted payload is a new dict; lists and dicts that needed no change are shared with the
input, so callers treat both as read-only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.compat.emulation import Emulation, emulate_request
from gateway.config import EFFORTS, Capabilities
from gateway.wire import errors, validation

__all__ = [
    "INSTRUCTIONS_END",
    "INSTRUCTIONS_START",
    "Adapted",
    "Rewritten",
    "adapt_request",
    "adapt_response",
    "rewrite_chat",
    "rewrite_for",
    "rewrite_responses",
    "streams_faked",
]

INSTRUCTIONS_START = "[Instructions]\n"
INSTRUCTIONS_END = "\n[End of instructions]"

# Reasoning models spend completion tokens thinking before they write; a `max_tokens` sized for
# a visible answer (say 300) would be used up by reasoning and return empty content with
# finish_reason "length" while still being billed. OpenAI advised about 25,000 tokens of room.
DEFAULT_MIN_COMPLETION_TOKENS = 4096

_IMAGE_PART_TYPES = frozenset({"image_url", "input_image"})


@dataclass(frozen=True, slots=True)
class Adapted:
    """A request rewritten for upstream, and what to undo or emulate on the way back."""

    payload: dict[str, Any]
    patches: tuple[str, ...] = ()
    # Answer the client with a stream built from a non-streamed upstream completion.
    fake_stream: bool = False
    include_usage: bool = False
    # Stop sequences upstream could not apply; the answer is cut at them afterwards.
    stop: tuple[str, ...] = ()


def adapt_request(
    payload: dict[str, Any],
    caps: Capabilities,
    *,
    min_completion_tokens: int = DEFAULT_MIN_COMPLETION_TOKENS,
) -> Adapted:
    """Rewrite a chat completion request so a model with `caps` accepts it.

    Raises `GatewayError` for what no patch can serve (an image for a model without image input).
    """
    out = dict(payload)
    patches: list[str] = []

    messages = payload.get("messages")
    if isinstance(messages, list):
        if not caps.images:
            _refuse_images(messages)
        rewritten, role_patches = _adapt_roles(messages, caps)
        if role_patches:
            out["messages"] = rewritten
            patches.extend(role_patches)

    moved: Any = None  # a max_tokens that becomes max_completion_tokens (below)
    if not caps.max_tokens and "max_tokens" in out:
        max_tokens = out.pop("max_tokens")
        if max_tokens is not None:
            patches.append("max_tokens")
            if out.get("max_completion_tokens") is None:
                moved = max_tokens

    stop: tuple[str, ...] = ()
    if not caps.sampling_params:
        # Sending the default value is harmless; only a dropped non-default changes the answer.
        for name in ("temperature", "top_p", "n"):
            _drop(out, name, patches, lambda v: v != 1)
        for name in ("presence_penalty", "frequency_penalty"):
            _drop(out, name, patches, lambda v: v != 0)
        _drop(out, "logit_bias", patches, bool)
        if "stop" in out:
            stop = _stop_sequences(out.pop("stop"))
            if stop:
                patches.append("stop")

    if not caps.logprobs:
        _drop(out, "logprobs", patches, bool)
        _drop(out, "top_logprobs", patches, _always)

    if not caps.tools:
        _drop(out, "parallel_tool_calls", patches, _always)

    if caps.reasoning_effort is not None and "reasoning_effort" in out:
        _fit_effort(out, "reasoning_effort", caps.reasoning_effort, patches)

    if moved is not None:
        # Room for reasoning tokens, which come out of the same budget; a model asked for
        # effort `none` (that takes it) writes none, and the client's cap stands.
        thinks = out.get("reasoning_effort") != "none"
        out["max_completion_tokens"] = (
            _with_headroom(moved, min_completion_tokens) if thinks else moved
        )

    streaming = out.get("stream") is True
    stream_options = out.get("stream_options")
    include_usage = (
        streaming
        and isinstance(stream_options, dict)
        and stream_options.get("include_usage") is True
    )
    fake_stream = streaming and streams_faked(payload, caps)
    if fake_stream:
        out.pop("stream", None)
        out.pop("stream_options", None)
        patches.append("stream")

    return Adapted(
        payload=out,
        patches=tuple(patches),
        fake_stream=fake_stream,
        include_usage=include_usage,
        stop=stop,
    )


def streams_faked(payload: dict[str, Any], caps: Capabilities) -> bool:
    """Whether the chat request `payload`, streamed, is answered on a model with `caps` by a
    stream faked from a whole answer (the `stream` patch): the model cannot stream, or the
    gateway cuts a stop sequence itself, which can span chunks of a native stream, so cutting
    it needs the whole answer."""
    if not caps.streaming:
        return True
    return not caps.sampling_params and bool(_stop_sequences(payload.get("stop")))


@dataclass(frozen=True, slots=True)
class Rewritten:
    """A chat request rewritten for one model: what goes upstream (its `model` still the
    client's), what to undo or emulate on the way back, and what was emulated, if anything."""

    payload: dict[str, Any]
    adapted: Adapted | None = None
    emulated: Emulation | None = None


def rewrite_chat(
    original: dict[str, Any], caps: Capabilities, *, min_completion_tokens: int
) -> Rewritten:
    """Emulate what the model lacks of tools and structured output, then patch the rest.

    Raises `GatewayError` for what no patch can serve, and for what upstream refuses whatever
    the model but a patch would drop unseen: `stream_options` of a request that does not
    stream (which an emulated request, never streamed upstream, would lose), in upstream's
    order before anything about the model; then the values every model that takes the
    parameter refuses (`validation.chat_value_error`: `tool_choice` without `tools`,
    `top_logprobs` out of range or without `logprobs`, ...), which the patches drop for a
    model without it."""
    if original.get("stream_options") is not None and original.get("stream") is not True:
        raise errors.stream_options_without_stream()
    refused = validation.chat_value_error(original)
    if refused is not None:
        raise refused
    working, emulated = original, None
    # A model with tools and structured output of its own has nothing to emulate.
    if not (caps.tools and caps.response_format and caps.json_schema):
        working, emulated = emulate_request(original, caps)
    patched = adapt_request(working, caps, min_completion_tokens=min_completion_tokens)
    adapted = patched if patched.patches or patched.fake_stream else None
    payload = dict(patched.payload)
    if emulated is None:
        return Rewritten(payload, adapted)
    # The answer must be parsed whole before the client sees it: it is streamed afterwards.
    payload.pop("stream", None)
    payload.pop("stream_options", None)
    return Rewritten(payload, emulation_plan(original, adapted, emulated), emulated)


def rewrite_for(
    original: dict[str, Any], caps: Capabilities, effort: str, *, patch: bool,
    min_completion_tokens: int,
) -> Rewritten:  # fmt: skip
    """A chat request as it goes to one model: asked at `effort` ("": none) unless it names
    its own, then, when `patch` (compatibility on, the team not strict), rewritten for what
    the model lacks (`rewrite_chat`); else as it came, copied."""
    if effort and original.get("reasoning_effort") is None:
        original = {**original, "reasoning_effort": effort}
    if not patch:
        return Rewritten(dict(original))
    return rewrite_chat(original, caps, min_completion_tokens=min_completion_tokens)


def emulation_plan(
    original: dict[str, Any], adapted: Adapted | None, emulated: Emulation
) -> Adapted:
    """What an emulated answer needs on its way back: the emulation's patches and the client's
    stream options (the upstream call itself never streams)."""
    options = original.get("stream_options")
    return Adapted(
        payload=adapted.payload if adapted is not None else original,
        patches=emulated.patches + (adapted.patches if adapted is not None else ()),
        fake_stream=original.get("stream") is True,
        include_usage=isinstance(options, dict) and options.get("include_usage") is True,
        stop=adapted.stop if adapted is not None else (),
    )


def adapt_response(completion: dict[str, Any], adapted: Adapted) -> dict[str, Any]:
    """Apply to an upstream chat.completion what `adapt_request` promised to emulate."""
    out = dict(completion)
    if not adapted.stop:
        return out
    choices = completion.get("choices")
    if isinstance(choices, list):
        out["choices"] = [_cut_choice(choice, adapted.stop) for choice in choices]
    return out


def rewrite_responses(
    payload: dict[str, Any], caps: Capabilities, *, reasoning: bool
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """A Responses API request for a model that serves the Responses API but refuses some of
    its parameters: `reasoning` on a model that does not reason, sampling parameters on one
    whose sampling is fixed, `top_logprobs` on one without logprobs. The same table as chat;
    the new payload and the patches made."""
    out = dict(payload)
    patches: list[str] = []
    if not reasoning:
        given = out.get("reasoning")
        if isinstance(given, dict):
            _refuse_no_effort(given.get("effort"), "reasoning.effort")
        _drop(out, "reasoning", patches, lambda v: isinstance(v, dict) and any(v.values()))
    given = out.get("reasoning")
    if caps.reasoning_effort is not None and isinstance(given, dict) and "effort" in given:
        fitted = dict(given)
        _fit_effort(fitted, "effort", caps.reasoning_effort, patches, "reasoning.effort")
        out["reasoning"] = fitted
    if not caps.sampling_params:
        for name in ("temperature", "top_p"):
            _drop(out, name, patches, lambda v: v != 1)
    if not caps.logprobs:
        _drop(out, "top_logprobs", patches, _always)
    if not caps.tools:
        _drop(out, "parallel_tool_calls", patches, _always)
    return out, tuple(patches)


def _drop(
    out: dict[str, Any], name: str, patches: list[str], changes: Callable[[Any], bool]
) -> None:
    """Remove `name`; record a patch only when the client's value would have mattered."""
    if name not in out:
        return
    value = out.pop(name)
    if value is not None and changes(value):
        patches.append(name)


def nearest_effort(effort: str, levels: tuple[str, ...]) -> str | None:
    """The effort of `levels` closest to `effort` in OpenAI's order (the higher on a tie); None
    when the model takes none, or `effort` is no effort OpenAI names."""
    if not levels or effort not in EFFORTS:
        return None
    if effort in levels:
        return effort
    rank = EFFORTS.index(effort)
    return min(levels, key=lambda level: (abs(EFFORTS.index(level) - rank), -EFFORTS.index(level)))


def _fit_effort(
    out: dict[str, Any], name: str, levels: tuple[str, ...], patches: list[str], label: str = ""
) -> None:
    """An effort the model does not take becomes the nearest it does, or is dropped; a value
    that is no effort at all goes upstream as sent, to be refused in upstream's words, or is
    refused in them here when the model takes no effort (it would be dropped unseen)."""
    given = out[name]
    if levels and (not isinstance(given, str) or given not in EFFORTS):
        return
    _refuse_no_effort(given, label or name)
    fitted = nearest_effort(given, levels) if isinstance(given, str) else None
    if fitted == given:
        return
    if fitted is None:
        del out[name]
        if given is None:
            return
    else:
        out[name] = fitted
    patches.append(label or name)


def _refuse_no_effort(given: Any, param: str) -> None:
    """An effort that is none OpenAI names is refused by every model that takes an effort, so
    the patch that drops the effort for a model without one refuses it too, in their words."""
    if given is not None and (not isinstance(given, str) or given not in EFFORTS):
        raise errors.invalid_value(param, validation.echo(given), EFFORTS)


def _always(value: Any) -> bool:
    return True


def _with_headroom(max_tokens: Any, minimum: int) -> Any:
    # A malformed value is passed on unchanged so upstream reports it in its own words.
    if isinstance(max_tokens, int) and not isinstance(max_tokens, bool):
        return max(max_tokens, minimum)
    return max_tokens


def _stop_sequences(value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    # An empty stop string would cut every answer to nothing; upstream ignores it too.
    return tuple(item for item in items if isinstance(item, str) and item)


def _refuse_images(messages: list[Any]) -> None:
    for i, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for j, part in enumerate(content):
            if isinstance(part, dict) and part.get("type") in _IMAGE_PART_TYPES:
                raise errors.image_input_unsupported(i, j, part["type"])


def _adapt_roles(messages: list[Any], caps: Capabilities) -> tuple[list[Any], list[str]]:
    """Rename or fold the system/developer messages the model refuses.

    `developer` is the newer name of `system` (OpenAI maps one to the other), so a model with
    only one of the two roles gets that one. With neither, instructions go into the next user
    message after them: the usual leading system prompt lands in the first user message and a
    mid-conversation instruction keeps its place in the history. Instructions after the last
    user message become a user message of their own.
    """
    native = {"system": caps.system_messages, "developer": caps.developer_messages}
    patches: list[str] = []
    result: list[Any] = []
    pending: list[str] = []
    for message in messages:
        role = message.get("role") if isinstance(message, dict) else None
        if role in native and not native[role]:
            _note(patches, f"{role}_messages")
            other = "developer" if role == "system" else "system"
            if native[other]:
                result.append({**message, "role": other})
            else:
                pending.append(_text_of(message.get("content")))
        elif role == "user" and pending:
            result.append({**message, "content": _prepend(_block(pending), message.get("content"))})
            pending = []
        else:
            result.append(message)
    if pending:
        result.append({"role": "user", "content": _block(pending).rstrip("\n")})
    return result, patches


def _note(patches: list[str], name: str) -> None:
    if name not in patches:
        patches.append(name)


def _block(instructions: list[str]) -> str:
    return INSTRUCTIONS_START + "\n\n".join(instructions) + INSTRUCTIONS_END + "\n\n"


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def _prepend(block: str, content: Any) -> Any:
    if isinstance(content, list):
        # A separate part keeps the user's own parts (and their order) untouched.
        return [{"type": "text", "text": block}, *content]
    if isinstance(content, str):
        return block + content
    return block.rstrip("\n")


def _cut_choice(choice: Any, stop: tuple[str, ...]) -> Any:
    if not isinstance(choice, dict):
        return choice
    message = choice.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(message, dict) or not isinstance(content, str):
        return choice
    cut = min((at for at in (content.find(s) for s in stop) if at >= 0), default=-1)
    if cut < 0:
        return choice
    return {**choice, "message": {**message, "content": content[:cut]}, "finish_reason": "stop"}


# What an upstream refusal says the model lacks: the error's `param` (or, for tools, its message)
# names the capability. Used when the capability table is stale: patch, retry once, remember.
_PARAM_CAPABILITY = {
    "stream": "streaming",
    "max_tokens": "max_tokens",
    "temperature": "sampling_params",
    "top_p": "sampling_params",
    "n": "sampling_params",
    "presence_penalty": "sampling_params",
    "frequency_penalty": "sampling_params",
    "logit_bias": "sampling_params",
    "stop": "sampling_params",
    "logprobs": "logprobs",
    "top_logprobs": "logprobs",
}
_PATCHABLE_CODES = frozenset({"unsupported_value", "unsupported_parameter"})


def capability_refused(status: int, body: Any) -> str | None:
    """The `Capabilities` field an upstream 400 says the model lacks, if it is one we patch."""
    if status != 400 or not isinstance(body, dict) or not isinstance(body.get("error"), dict):
        return None
    error = body["error"]
    if error.get("code") not in _PATCHABLE_CODES or not isinstance(error.get("param"), str):
        return None
    param: str = error["param"]
    if param.startswith("messages[") and param.endswith(".role"):
        message = str(error.get("message", ""))
        if "'system'" in message:
            return "system_messages"
        if "'developer'" in message:
            return "developer_messages"
        return None
    return _PARAM_CAPABILITY.get(param)


# Whose lesson a learned capability is, and for what: (team, model, reasoning effort asked).
LearnedKey = tuple[str, str, str | None]

# The most lessons remembered at once; past it the oldest is forgotten (it is learned again, at
# the cost of one refused call).
MAX_LEARNED = 4096


class LearnedCapabilities:
    """Capabilities upstream refused although the table granted them, remembered for a while.

    Expiring, so a stale table stops breaking clients after one retry and a model that really
    gains the feature gets it back once the entry expires. A lesson holds for the team whose
    request was refused, at the reasoning effort it asked, only: what upstream refuses can
    depend on the rest of the request (gpt-5.1 and its successors take `temperature` at effort
    none alone), and one team's request must not change every other team's for the lesson's
    lifetime. A stale table costs each team one refused call. `now` is passed in.
    """

    def __init__(self, ttl_s: float = 3600.0, max_entries: int = MAX_LEARNED) -> None:
        self._ttl = ttl_s
        self._max = max_entries
        self._learned: dict[LearnedKey, tuple[Capabilities, float]] = {}

    def effective(self, key: LearnedKey, caps: Capabilities, now: float) -> Capabilities:
        entry = self._learned.get(key)
        if entry is None:
            return caps
        learned, expires = entry
        if expires <= now:
            del self._learned[key]
            return caps
        return learned

    def learn(self, key: LearnedKey, caps: Capabilities, lacking: str, now: float) -> Capabilities:
        lacks: dict[str, Any] = {lacking: False}
        updated = dataclasses.replace(caps, **lacks)
        self._learned.pop(key, None)
        while len(self._learned) >= self._max:
            del self._learned[next(iter(self._learned))]  # the oldest lesson
        self._learned[key] = (updated, now + self._ttl)
        return updated
