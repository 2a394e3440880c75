"""Heuristic auto-router: pick ``gpt-4o``, ``o1-mini`` or ``o1-preview`` for a chat request.

Pure and deterministic: no model call, no network, no I/O, no clock.  The request text (its
head and tail only, so long pastes cost a bounded time) is tokenised once, the tokens are
matched against small vocabularies by set intersection, and symbols are counted with
``bytes.count``; the few regular expressions left run only when a cheap test says they can
matter.  That gives

* a *domain*: ``general`` (chat, writing, knowledge, extraction), ``code``, ``math`` or
  ``science`` (physics, chemistry, biology, engineering, economics/finance), and
* a *difficulty* score in ``[0, 1]`` (how much multi-step reasoning the request seems to need),

which :class:`~gateway.config.RoutingPolicy` thresholds map to a model (OpenAI's o1 launch guidance):

* ``general`` -> ``gpt-4o``;
* ``code`` / ``math`` -> ``o1-mini`` when difficulty >= ``mini_threshold``, else ``gpt-4o``;
* ``science`` -> ``o1-preview`` when difficulty >= ``preview_threshold``, ``o1-mini`` when
  >= ``mini_threshold``, else ``gpt-4o`` (knowledge questions need no reasoning model).

Every :class:`Decision` carries short human-readable reasons.  :func:`step_down` moves a
decision one model cheaper once a team has spent ``RoutingPolicy.step_down_at`` of its budget.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from gateway.config import RoutingPolicy
from gateway.routing.vocabulary import count_terms

__all__ = ["DEFAULT", "Decision", "route", "route_text", "step_down"]

DEFAULT: Final = RoutingPolicy()


@dataclass(frozen=True, slots=True)
class Decision:
    model: str
    score: float
    domain: str
    reasons: tuple[str, ...]


_SI_LETTER = re.compile(r"\d ?(?:K|J|N|V|W|T|Pa|A)\b")
# Regexes that start with a literal byte ("\\", "$", "/", newline) let the engine jump between
# candidates with a fast search; one that starts with a class or an alternation tries every
# position and costs many times more per character.  They run on the lower-cased UTF-8 bytes.
_LATEX_COMMAND = re.compile(
    rb"\\(?:frac|sqrt|sum|int|prod|lim|cdot|times|le|ge|leq|geq|neq|pi|theta|alpha|beta"
    rb"|omega|lambda|infty|binom|log|ln|sin|cos|tan|dot|ddot|mathrm|boxed|left|right)\b"
)
# "$x^2$" but not the amounts in "$20 and $30".
_LATEX_INLINE = re.compile(rb"\$(?![\d.,]+(?:\s|$))[^$\n]{1,200}?\$")
# Fractions and ratios written in plain text ("3/4 of", "x / 2").
_FRACTION = re.compile(rb"/ ?[0-9]")
_SUBPART = re.compile(rb"\n[ \t]*(?:\(?[a-h1-9][).]\s|part\s+\w|sub-?problem|step\s+\d)")
# Operators and symbols of plain-text maths ("x^2 + 2x = 7", "n * m", "a ≤ b"); counted with
# bytes.count, a plain memory scan, far cheaper per character than a regex.
_MATH_SYMBOLS: Final = tuple(
    symbol.encode() for symbol in "\u221a\u222b\u03c0\u2264\u2265\u00d7\u00f7\u2248\u00b1\u221e"
)


def _clip(text: str, limit: int) -> str:
    if len(text) <= 2 * limit:
        return text
    return text[:limit] + "\n" + text[-limit:]


# --------------------------------------------------------------------------- scoring


def _analyse(text: str, policy: RoutingPolicy, turns: int) -> Decision:
    t = _clip(text, policy.scan_chars)
    n_chars = len(t)
    lower = t.lower().encode()

    kinds, numbers = count_terms(lower)
    if b"c++" in lower or b"c#" in lower:
        kinds["code"] += 1
        kinds["code_noun"] += 1
    fences = lower.count(b"```") + lower.count(b"~~~")
    # Single-byte counts are cheap; multi-byte marks are only counted when their first byte is there.
    eq, gt, colon, paren, semi, brace, amp, slash = map(lower.count, b"=>:(;{&/")
    syntax = kinds["code_kw"] // 2
    if eq:
        syntax += lower.count(b"==") + lower.count(b"=>")
    if gt:
        syntax += lower.count(b"->")
    if colon:
        syntax += lower.count(b"::")
    if paren:
        syntax += lower.count(b"()")
    if semi:
        syntax += lower.count(b";\n")
    if brace:
        syntax += lower.count(b"{\n")
    if amp:
        syntax += lower.count(b"&&")
    code_words = kinds["code"]
    code_intent = 1 if kinds["code_verb"] and kinds["code_noun"] else 0
    latex = 0
    if b"\\" in lower:
        latex += len(_LATEX_COMMAND.findall(lower))
    if b"$" in lower:
        latex = max(latex, len(_LATEX_INLINE.findall(lower)))
    equations = eq + lower.count(b"^") + lower.count(b" + ")
    if eq:
        equations -= 2 * lower.count(b"==")
    if not lower.isascii():
        equations += sum(map(lower.count, _MATH_SYMBOLS))
    if numbers >= 2 and slash:
        equations += len(_FRACTION.findall(lower))
    sci_numbers = lower.count(b"10^") + lower.count(b"10**")
    units = kinds["unit"]
    if numbers and not units and kinds["sci_strong"]:
        # A regex scan walks every character: only run it to confirm a likely science reading.
        units += len(_SI_LETTER.findall(t))
    math_words = kinds["math"]
    reasoning = kinds["reasoning"]
    proof = kinds["proof"]
    sci_strong = kinds["sci_strong"]
    sci_weak = kinds["sci_weak"]
    general = kinds["general"]
    constraints = kinds["constraint"]
    questions = lower.count(b"?")
    subparts = kinds["sequence_marker"]

    # Normalise counts for long texts: density matters more than raw count.
    size_k = max(1.0, n_chars / 1500.0)
    reasons: list[str] = []

    # ---- domain evidence
    code_ev = 3.0 * min(fences, 2) + 0.6 * min(syntax, 10) + 0.5 * min(code_words, 8)
    # "Write a script for the opening scene": a bare request verb and an ambiguous noun count
    # for less than one backed by unambiguous programming words.
    code_ev += (2.0 if code_words else 1.5) * code_intent
    math_ev = (
        0.8 * min(latex, 10)
        + 0.6 * min(equations, 10)
        + 0.5 * min(math_words, 8)
        + 0.6 * min(reasoning, 5)
        + 0.1 * min(numbers, 6)
    )
    quantitative = latex + equations + units + numbers + sci_numbers > 0
    sci_terms = sci_strong + 0.5 * min(sci_weak, 4) if sci_strong else 0.0
    sci_terms += 0.5 * min(units, 2) + 0.5 * min(sci_numbers, 2)
    sci_ev = sci_terms + 0.8 * min(units, 6) + 1.0 * min(sci_numbers, 3)
    gen_ev = 1.0 * min(general, 8) + 0.002 * max(0, n_chars - 600) / size_k
    math_ev /= size_k**0.5
    code_ev /= size_k**0.5
    sci_ev /= size_k**0.5

    if (
        sci_terms >= policy.science_min_terms
        and (
            (quantitative and (math_ev >= 1.5 or units or sci_numbers))
            or (sci_strong >= 2 and sci_terms >= 3 and (reasoning or numbers >= 2))
        )
        and sci_ev + math_ev > code_ev
    ):
        domain = "science"
    elif code_ev >= 2.0 and code_ev >= 0.7 * max(math_ev, gen_ev):
        domain = "code"
    elif math_ev >= 1.2 and math_ev > gen_ev:
        domain = "math"
    else:
        domain = "general"

    # ---- difficulty
    pts = 0.0
    if fences or syntax >= 3:
        reasons.append("code")
        pts += 1.2
    elif code_intent:
        reasons.append("coding request")
        pts += 0.8
    if code_words >= 2:
        reasons.append(f"programming vocabulary: {code_words} terms")
        pts += 0.2 * min(code_words, 5)
    if latex or equations >= 2:
        reasons.append("math notation")
        pts += 0.4 + 0.1 * min(latex + equations, 8)
    if math_words >= 2:
        reasons.append(f"math vocabulary: {math_words} terms")
        pts += 0.2 * min(math_words, 6)
    if proof:
        reasons.append("proof language")
        pts += 0.8
    if reasoning:
        reasons.append("reasoning markers")
        pts += 0.3 * min(reasoning, 4)
    if sci_strong:
        reasons.append(f"science vocabulary: {sci_strong} terms")
        pts += 0.4 * min(sci_terms, 5)
    if units or sci_numbers:
        reasons.append("physical quantities")
        pts += 0.4 * min(units + sci_numbers, 4)
    if numbers >= 3:
        reasons.append("many quantities")
        pts += 0.1 * min(numbers, 8)
    if constraints >= 2:
        reasons.append("explicit constraints")
        pts += 0.15 * min(constraints, 4)
    if domain != "general" and "\n" in t:
        subparts += len(_SUBPART.findall(lower))
    if subparts >= 2 and domain != "general":
        reasons.append("long multi-step question")
        pts += 0.15 * min(subparts, 4)
    if turns > 2:
        reasons.append(f"conversation: {turns} user turns")
        pts += 0.1 * min(turns, 5)
    if general:
        reasons.append(f"writing/knowledge vocabulary: {general} terms")
        pts -= (0.35 if domain == "general" else 0.15) * min(general, 6)
    if questions >= 3 and domain == "general":
        pts -= 0.2

    if domain != "general":
        pts += 0.3  # a technical domain was recognised: some reasoning is likely needed
    score = 1.0 - math.exp(-max(pts, 0.0) / 2.5)
    score = round(min(max(score, 0.0), 1.0), 4)

    if domain == "general":
        model = policy.general_model
    elif domain == "science" and score >= policy.preview_threshold:
        model = policy.preview_model
    elif score >= policy.mini_threshold:
        model = policy.mini_model
    else:
        model = policy.general_model
        reasons.append("low difficulty")
    if not reasons:
        reasons.append("general chat")
    reasons.insert(0, f"domain: {domain}")
    return Decision(model=model, score=score, domain=domain, reasons=tuple(reasons))


# --------------------------------------------------------------------------- public API


def route_text(text: str, policy: RoutingPolicy = DEFAULT) -> Decision:
    """Route a single prompt text."""
    return _analyse(text, policy, turns=1)


def _content_text(content: Any) -> tuple[str, bool]:
    """(text, has_image) for a message ``content``: a string or a list of content parts."""
    if isinstance(content, str):
        return content, False
    if not isinstance(content, Iterable) or isinstance(content, bytes | Mapping):
        return "", False
    parts: list[str] = []
    image = False
    for part in content:
        if isinstance(part, str):
            parts.append(part)
        elif isinstance(part, Mapping):
            kind = part.get("type")
            if kind == "text" and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif kind in ("image_url", "image", "input_image"):
                image = True
    return "\n".join(parts), image


def route(messages: list[dict[str, Any]], policy: RoutingPolicy = DEFAULT) -> Decision:
    """Route a chat request from the text of its user messages (the last one weighted most)."""
    texts: list[str] = []
    image = False
    for msg in messages:
        # A JSON body's messages are dicts: the exact type test spares the ABC check.
        if not (type(msg) is dict or isinstance(msg, Mapping)) or msg.get("role") != "user":
            continue
        text, has_image = _content_text(msg.get("content"))
        image = image or has_image
        texts.append(text)
    if image:
        return Decision(
            model=policy.general_model, score=0.0, domain="general", reasons=("images",)
        )
    if not texts:
        return Decision(
            model=policy.general_model, score=0.0, domain="general", reasons=("no user text",)
        )
    last = texts[-1]
    # Earlier turns add context, but only the tail of them and with less weight than the last.
    earlier = "\n".join(texts[:-1])
    budget = policy.scan_chars // 2
    if len(earlier) > budget:
        earlier = earlier[-budget:]
    combined = f"{earlier}\n{last}" if earlier else last
    decision = _analyse(combined, policy, turns=len(texts))
    if earlier:
        alone = _analyse(last, policy, turns=len(texts))
        # The last message decides unless the context points to a stronger model.
        rank = {policy.general_model: 0, policy.mini_model: 1, policy.preview_model: 2}
        if rank.get(alone.model, 0) >= rank.get(decision.model, 0) or alone.domain != "general":
            return alone
    return decision


def step_down(decision: Decision, policy: RoutingPolicy, spent_share: float) -> Decision:
    """Move ``decision`` one model cheaper once ``spent_share`` of the budget is used up.

    ``preview_model`` becomes ``mini_model`` and ``mini_model`` becomes ``general_model``;
    score and domain are kept so logs still show what the request would have needed.
    """
    if policy.step_down_at is None or spent_share < policy.step_down_at:
        return decision
    cheaper = {policy.preview_model: policy.mini_model, policy.mini_model: policy.general_model}
    target = cheaper.get(decision.model)
    if target is None or target == decision.model:
        return decision
    reason = (
        f"budget: {spent_share:.0%} spent (step-down at {policy.step_down_at:.0%}): "
        f"{decision.model} -> {target}"
    )
    return Decision(
        model=target,
        score=decision.score,
        domain=decision.domain,
        reasons=(*decision.reasons, reason),
    )
