"""The router's hand-written evidence about a text: notation, vocabularies, quantities, and
what they suggest (a domain and a difficulty). Pure.

Counts come from one tokenisation (`gateway.routing.vocabulary`) and `bytes.count`; the few
regular expressions run only when a cheap test says they can matter. The learned model
(`gateway.routing.linear`) takes these numbers as inputs beside the words, and the decision's
reasons quote the short phrases collected here.
"""

from __future__ import annotations

import math
import re
from collections import _count_elements  # type: ignore[attr-defined]
from typing import Final, NamedTuple

# The characters that begin the marks counted below. A text with every other byte deleted (one
# table-driven pass) is short: its characters are counted at once, and each longer mark is
# searched for in the whole text only when its first character is there, so a plain prompt
# costs no scan per mark.
_MARK_STARTS: Final = b"`~=-:(;{&^+?$\\/#*"
_NOT_MARK_STARTS: Final = bytes(sorted(set(range(256)).difference(_MARK_STARTS)))
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
# Two-character marks of code, each with its first character.
_CODE_MARKS: Final = tuple(
    (chr(mark[0]), mark) for mark in (b"==", b"=>", b"->", b"::", b"()", b";\n", b"{\n", b"&&")
)
DOMAINS: Final = ("general", "code", "math", "science")
_ONE_HOT: Final = {
    name: tuple(1.0 if other == name else 0.0 for other in DOMAINS) for name in DOMAINS
}
# Weighted science-vocabulary evidence below which a text is not read as science.
_SCIENCE_MIN_TERMS: Final = 2.0
# Weak science terms that count without a strong one.
_SCIENCE_MIN_WEAK: Final = 4

#: The named numbers `measure` gives the learned model, in order; the reasons quote them.
#: (The vocabularies count into the evidence below: the model weighs the words themselves.)
NAMES: Final = (
    "numbers",
    "code fences",
    "code syntax",
    "latex",
    "equations",
    "physical quantities",
    "powers of ten",
    "questions",
    "subparts",
    "length",
    "code evidence",
    "math evidence",
    "science evidence",
    "general evidence",
    *(f"hand domain {name}" for name in DOMAINS),
    "hand difficulty",
)


class Signals(NamedTuple):  # a tuple: built on every decision, and cheaper to build
    domain: str  # general, code, math or science, by the hand rules
    difficulty: float  # the hand rules' difficulty in [0, 1]
    code_evidence: float  # how code-like the text is, for naming a technical domain
    # One per name in NAMES. Counts grow with length: their logarithm keeps a long paste from
    # outweighing the words.
    values: tuple[float, ...]
    reasons: tuple[str, ...]  # the hand rules' evidence, in a few words each


def measure(text: str, lower: bytes, kinds: dict[str, int], numbers: int) -> Signals:
    """The hand evidence of `text` (already clipped), `lower` its lower-cased UTF-8 bytes,
    `kinds` and `numbers` its vocabulary counts."""
    n_chars = len(text)
    starts: dict[str, int] = {}
    _count_elements(starts, lower.translate(None, _NOT_MARK_STARTS).decode())
    code_words = kinds["code"]
    if ("+" in starts and lower.find(b"c++") >= 0) or ("#" in starts and lower.find(b"c#") >= 0):
        code_words += 1
        kinds = {**kinds, "code": code_words, "code_noun": kinds["code_noun"] + 1}
    fences = 0
    if "`" in starts:
        fences += lower.count(b"```")
    if "~" in starts:
        fences += lower.count(b"~~~")
    syntax = kinds["code_kw"] // 2
    for first, mark in _CODE_MARKS:
        if first in starts:
            syntax += lower.count(mark)
    code_intent = 1 if kinds["code_verb"] and kinds["code_noun"] else 0
    latex = 0
    if "\\" in starts:
        latex += len(_LATEX_COMMAND.findall(lower))
    if "$" in starts:
        latex = max(latex, len(_LATEX_INLINE.findall(lower)))
    eq = starts.get("=", 0)
    equations = eq + starts.get("^", 0)
    if "+" in starts:
        equations += lower.count(b" + ")
    if eq:
        equations -= 2 * lower.count(b"==")
    if not lower.isascii():
        equations += sum(map(lower.count, _MATH_SYMBOLS))
    if numbers >= 2 and "/" in starts:
        equations += len(_FRACTION.findall(lower))
    sci_numbers = 0
    if "^" in starts:
        sci_numbers += lower.count(b"10^")
    if "*" in starts:
        sci_numbers += lower.count(b"10**")
    units = kinds["unit"]
    if numbers and not units and kinds["sci_strong"]:
        # A regex scan walks every character: only run it to confirm a likely science reading.
        units += len(_SI_LETTER.findall(text))
    math_words = kinds["math"]
    reasoning = kinds["reasoning"]
    proof = kinds["proof"]
    sci_strong = kinds["sci_strong"]
    general = kinds["general"]
    constraints = kinds["constraint"]
    questions = starts.get("?", 0)
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
    weak = kinds["sci_weak"]
    # Weak terms alone ("charge", "density", "temperature") say science only when several meet.
    if sci_strong:
        sci_terms = sci_strong + 0.5 * min(weak, 4)
    else:
        sci_terms = 0.4 * min(weak, 5) if weak >= _SCIENCE_MIN_WEAK else 0.0
    sci_terms += 0.5 * min(units, 2) + 0.5 * min(sci_numbers, 2)
    sci_ev = sci_terms + 0.8 * min(units, 6) + 1.0 * min(sci_numbers, 3)
    gen_ev = 1.0 * min(general, 8) + 0.002 * max(0, n_chars - 600) / size_k
    math_ev /= size_k**0.5
    code_ev /= size_k**0.5
    sci_ev /= size_k**0.5

    if (
        sci_terms >= _SCIENCE_MIN_TERMS
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
    if domain != "general" and "\n" in text:
        subparts += len(_SUBPART.findall(lower))
    if subparts >= 2 and domain != "general":
        reasons.append("long multi-step question")
        pts += 0.15 * min(subparts, 4)
    if general:
        reasons.append(f"writing/knowledge vocabulary: {general} terms")
        pts -= (0.35 if domain == "general" else 0.15) * min(general, 6)
    if questions >= 3 and domain == "general":
        pts -= 0.2
    if domain != "general":
        pts += 0.3  # a technical domain was recognised: some reasoning is likely needed
    difficulty = round(min(max(1.0 - math.exp(-max(pts, 0.0) / 2.5), 0.0), 1.0), 4)

    values = (
        *map(
            math.log1p,
            (
                numbers,
                fences,
                syntax,
                latex,
                max(equations, 0),
                units,
                sci_numbers,
                questions,
                subparts,
            ),
        ),
        math.log1p(n_chars) / 8.0,
        code_ev / 4.0,
        math_ev / 4.0,
        sci_ev / 4.0,
        gen_ev / 4.0,
        *_ONE_HOT[domain],
        difficulty,
    )
    return Signals(
        domain=domain,
        difficulty=difficulty,
        code_evidence=code_ev,
        values=values,
        reasons=tuple(reasons),
    )
