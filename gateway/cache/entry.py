"""What the cache keeps of an answer, whether an answer may be kept, and what a hit costs. Pure.

An entry is the final answer object (a `chat.completion`, or a Response object), whatever shape
the client that caused it got: a hit is answered whole or replayed as a stream from it. Kept
with it: what the original answer cost, the model that gave it, when it was kept, and the
headers that said what the gateway did to make it (`NOTES`), which a hit says again.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import orjson

# Chat finish reasons of a whole answer; `length` and `content_filter` cut it short.
FINISHED = frozenset({"stop"})
TOOL_CALLS = "tool_calls"
# A miss's headers that describe its answer (patched for the model, translated from the
# Responses API), not its call: a hit's answer is the same one.
NOTES = ("x-gateway-patched", "x-gateway-translated")
PATCHED = NOTES[0]
# The patch that says how an answer was delivered (a stream faked from a whole answer), which
# a hit delivered another way says or not as its own delivery does.
STREAM_PATCH = "stream"


@dataclass(frozen=True, slots=True)
class Entry:
    answer: dict[str, Any]
    cost: int  # micro-dollars the original answer was charged
    model: str  # the configured model that answered
    stored_at: float  # Unix seconds
    notes: tuple[tuple[str, str], ...] = ()  # `NOTES` the original answer carried

    def encode(self) -> bytes:
        return orjson.dumps(
            {"answer": self.answer, "cost": self.cost, "model": self.model, "at": self.stored_at,
             "notes": self.notes}
        )  # fmt: skip

    def age_s(self, now: float) -> int:
        return max(0, int(now - self.stored_at))


def decode(raw: bytes) -> Entry | None:
    """An entry as `encode` wrote it, or None for anything else."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    answer, cost, model, at = (data.get(k) for k in ("answer", "cost", "model", "at"))
    if not (
        isinstance(answer, dict)
        and isinstance(cost, int)
        and isinstance(model, str)
        and isinstance(at, int | float)
    ):
        return None
    notes = data.get("notes", ())
    if not isinstance(notes, list | tuple) or not all(
        isinstance(note, list) and len(note) == 2 and note[0] in NOTES and isinstance(note[1], str)
        for note in notes
    ):
        return None
    return Entry(answer, cost, model, float(at), tuple((name, value) for name, value in notes))


def delivered(notes: tuple[tuple[str, str], ...], faked: bool) -> tuple[tuple[str, str], ...]:
    """A kept answer's notes for a hit: among its patches, `stream` if and only if the hit's
    stream is `faked`, as its own miss's would be."""
    patched = next((value for name, value in notes if name == PATCHED), "")
    names = [name for name in patched.split(",") if name and name != STREAM_PATCH]
    if faked:
        names.append(STREAM_PATCH)  # the last patch made, as the miss's list has it
    others = tuple(note for note in notes if note[0] != PATCHED)
    return ((PATCHED, ",".join(names)), *others) if names else others


def keepable(api: str, answer: dict[str, Any], tools: bool) -> bool:
    """Whether an answer is whole and may be kept: not cut short, not failed, and calling no
    tools unless `tools`."""
    if api == "responses":
        if answer.get("status") != "completed":
            return False
        output = answer.get("output")
        if not isinstance(output, list):
            return False
        return tools or not any(
            isinstance(item, dict) and item.get("type") != "message"
            and item.get("type") != "reasoning"
            for item in output
        )  # fmt: skip
    choices = answer.get("choices")
    if not isinstance(choices, list) or not choices:
        return False
    for choice in choices:
        reason = choice.get("finish_reason") if isinstance(choice, dict) else None
        if reason not in FINISHED and not (tools and reason == TOOL_CALLS):
            return False
        message = choice.get("message")
        calls = message.get("tool_calls") if isinstance(message, dict) else None
        # Only function calls are gathered from a stream and replayed as one: a custom tool's
        # (`type: custom`, its free-form `input`) would be replayed with neither.
        kinds = {
            call.get("type", "function") if isinstance(call, dict) else "" for call in calls or ()
        }
        if kinds - {"function"}:
            return False
    return True


def hit_cost(cost: int, fraction: float) -> int:
    """What a hit is charged: `fraction` of the original cost, rounded half up to the
    micro-dollar (the fraction read as the decimal it was written as)."""
    if not fraction or cost <= 0:
        return 0
    return int(Fraction(repr(fraction)) * cost + Fraction(1, 2))
