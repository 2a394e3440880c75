"""What the learned router reads of a text: its distinct words and the hand signals
(`gateway.routing.signals`). Pure.

The same function serves the runtime and the training script, so the weights are always
applied to the features they were fitted on. Only the head and the tail of a long text are
read (`scan_chars` of each), so a pasted document costs a bounded time.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from typing import NamedTuple

from gateway.routing.signals import Signals, measure
from gateway.routing.vocabulary import UNWEIGHED, count_terms, tokenise


class Features(NamedTuple):  # a tuple: built on every decision, and cheaper to build
    words: AbstractSet[bytes]  # distinct lower-cased words, digits read as 0
    signals: Signals

    @property
    def norm(self) -> float:
        """The value of each word: the words the model may weigh share one unit of say, so that
        length alone does not make a prompt look more technical, nor function words (which the
        model never weighs) dilute what the others say."""
        weighed = len(self.words) - len(UNWEIGHED.intersection(self.words))
        return float(weighed) ** -0.5 if weighed else 0.0


def clip(text: str, limit: int) -> str:
    """The first and last `limit` characters of a long text."""
    if len(text) <= 2 * limit:
        return text
    return text[:limit] + "\n" + text[-limit:]


def extract(text: str, scan_chars: int) -> Features:
    text = clip(text, scan_chars)
    lower = text.lower().encode()
    tokens, counts = tokenise(lower)
    kinds, numbers = count_terms(tokens, counts)
    return Features(words=counts.keys(), signals=measure(text, lower, kinds, numbers))
