"""The learned part of the router: a linear model over a text's words and hand signals giving
the probability of each routing class, and its weights file. Pure.

The weights file is JSON written by `bench/router_train.py`: per class a bias, and per signal
and per word one integer weight for each class, in units of 1/`scale`; the routing thresholds
tuned for these weights (`thresholds`: `mini` and `preview`, see `gateway.routing.heuristic`);
and the provenance of the training (`PROVENANCE_KEYS`).

Scoring must take microseconds, so a word's weights are packed into one Python integer, one
`_FIELD`-bit field per class, each offset by `_OFFSET` to stay non-negative: the packed
weights of all the words a text holds then add up in a single C-level `sum`, and the fields
of the total, less the offsets, are the per-class sums. Integer sums are exact: the order in
which a set iterates (which moves with the process's hash seed) cannot move a decision.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import reduce
from itertools import compress
from operator import add, mul
from typing import Any, Final, NamedTuple

import orjson

from gateway.routing.features import Features
from gateway.routing.signals import NAMES

FORMAT: Final = "o1-gateway router weights 1"
#: What the provenance of a weights file must record.
PROVENANCE_KEYS: Final = ("script", "trained_at", "data", "hyperparameters", "loso")
_EVIDENCE = 3  # words named in a decision's reasons
_STRONG = 400  # per class, the words with the largest weights: the candidates for evidence
_FIELD = 64
_OFFSET = 1 << 32  # above any |weight|, and 2**31 words' offsets still fit in a field
_MASK = (1 << _FIELD) - 1
_LIMIT = 1 << 31  # the largest |weight| a file may hold


class Scores(NamedTuple):  # a tuple: built on every decision, and cheaper to build
    probabilities: dict[str, float]  # by class, in the model's class order
    top: str  # the most probable class
    words: tuple[str, ...]  # the highest-weighted words for `top` in the text, highest first
    signal: str | None  # the highest-weighted signal for `top` that the text shows


def _pack(weights: Sequence[int]) -> int:
    return sum((w + _OFFSET) << (k * _FIELD) for k, w in enumerate(weights))


@dataclass(frozen=True, slots=True)
class LinearModel:
    classes: tuple[str, ...]
    mini_threshold: float  # tuned with these weights
    preview_threshold: float
    scale: int  # weights are in units of 1/scale
    bias: tuple[int, ...]
    words: dict[bytes, int]  # a word -> its packed weights
    signals: tuple[tuple[int, ...], ...]  # per class, a weight per signal (`signals.NAMES`)
    provenance: dict[str, Any]
    # Per class, its `_STRONG` highest-weighted words and their weight for it.
    strong: tuple[dict[bytes, int], ...]
    # Per class, the signals with a positive weight for it, highest first.
    signal_order: tuple[tuple[int, ...], ...]

    def weights(self, word: bytes) -> tuple[int, ...] | None:
        """A word's weight for each class; None for a word the model does not hold."""
        packed = self.words.get(word)
        if packed is None:
            return None
        return tuple(((packed >> (k * _FIELD)) & _MASK) - _OFFSET for k in range(len(self.classes)))

    def score(self, features: Features) -> Scores:
        table = self.words
        found = table.keys() & features.words
        packed = sum(map(table.__getitem__, found))
        offset = len(found) * _OFFSET
        norm = features.norm
        values = features.signals.values
        # Most signals are 0 for a given text: only the others are multiplied in, each class's
        # products added by C calls in the signals' order (the sum a loop would make, to the bit).
        shown = [*filter(None, values)]
        shifts = range(0, len(self.bias) * _FIELD, _FIELD)
        words = [
            bias + norm * (((packed >> shift) & _MASK) - offset)
            for bias, shift in zip(self.bias, shifts, strict=True)
        ]
        logits = [
            reduce(add, map(mul, shown, compress(weights, values)), logit)
            for logit, weights in zip(words, self.signals, strict=True)
        ]
        peak = max(logits)
        top = logits.index(peak)  # the first of equals
        scale = self.scale
        exps = [math.exp((z - peak) / scale) for z in logits]
        total = sum(exps)
        strong = self.strong[top]
        # Ties go to the word that sorts last, whatever order the sets iterate in.
        evidence = sorted([(strong[w], w) for w in strong.keys() & found], reverse=True)
        signal = None
        for i in self.signal_order[top]:
            if values[i]:
                signal = NAMES[i]
                break
        return Scores(
            {name: e / total for name, e in zip(self.classes, exps, strict=True)},
            self.classes[top],
            tuple([w.decode() for _, w in evidence[:_EVIDENCE]]),
            signal,
        )


def _ranked(rows: Sequence[tuple[int, ...]], k: int) -> tuple[int, ...]:
    """The indices of the rows with a positive weight for class `k`, highest first (the first
    of equals first)."""
    return tuple(i for _, i in sorted((-row[k], i) for i, row in enumerate(rows) if row[k] > 0))


def load(data: bytes) -> LinearModel:
    """The model in a weights file's bytes; ValueError says what is wrong with a bad file."""
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"router weights: not JSON ({exc})") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ValueError(f"router weights: expected format {FORMAT!r}")
    classes = raw.get("classes")
    if (
        not isinstance(classes, list)
        or len(classes) < 2
        or not all(isinstance(c, str) for c in classes)
    ):
        raise ValueError("router weights: classes must be a list of names")
    size = len(classes)
    scale = raw.get("scale")
    if type(scale) is not int or scale <= 0:
        raise ValueError("router weights: scale must be a positive integer")
    thresholds = raw.get("thresholds")
    if (
        not isinstance(thresholds, dict)
        or set(thresholds) != {"mini", "preview"}
        or not all(type(v) in (int, float) and 0 <= v <= 1 for v in thresholds.values())
    ):
        raise ValueError("router weights: thresholds must give mini and preview in [0, 1]")
    provenance = raw.get("provenance")
    if not isinstance(provenance, dict) or not all(k in provenance for k in PROVENANCE_KEYS):
        raise ValueError(f"router weights: provenance must record {', '.join(PROVENANCE_KEYS)}")

    def row(value: Any, where: str) -> tuple[int, ...]:
        if (
            not isinstance(value, list)
            or len(value) != size
            or not all(type(v) is int and -_LIMIT < v < _LIMIT for v in value)
        ):
            raise ValueError(f"router weights: {where}: expected {size} integers")
        return tuple(value)

    bias = row(raw.get("bias"), "bias")
    signals = raw.get("signals")
    if not isinstance(signals, dict) or set(signals) != set(NAMES):
        raise ValueError("router weights: the signals differ from this version's (retrain)")
    by_signal = [row(signals[name], f"signals.{name}") for name in NAMES]
    raw_words = raw.get("words")
    if not isinstance(raw_words, dict):
        raise ValueError("router weights: words must map each word to its weights")
    words: dict[bytes, tuple[int, ...]] = {}
    for name, value in raw_words.items():
        if not name or name.split() != [name]:
            raise ValueError(f"router weights: words.{name}: not a word")
        words[name.encode()] = row(value, f"words.{name}")
    strong = []
    for k in range(size):
        ranked = sorted(words.items(), key=lambda item: (-item[1][k], item[0]))
        strong.append({w: weights[k] for w, weights in ranked[:_STRONG] if weights[k] > 0})
    return LinearModel(
        classes=tuple(classes),
        mini_threshold=float(thresholds["mini"]),
        preview_threshold=float(thresholds["preview"]),
        scale=scale,
        bias=bias,
        words={w: _pack(weights) for w, weights in words.items()},
        signals=tuple(zip(*by_signal, strict=True)),
        provenance=provenance,
        strong=tuple(strong),
        signal_order=tuple(_ranked(by_signal, k) for k in range(size)),
    )
