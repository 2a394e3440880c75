"""Fitting the router's linear model and measuring it on sources it never saw. Pure: arrays in,
arrays out; no I/O and no clock. Needs numpy (`pip install numpy`), which the gateway does not.

The model is multinomial logistic regression with an L2 penalty, fitted by L-BFGS from zero
weights, over each prompt's distinct words (each worth `Example.norm`) and the hand signals of
`gateway.routing.signals`. Every step is deterministic: no sampling, a fixed order everywhere,
and no BLAS (whose threads may sum in any order): products are numpy's own elementwise
operations and sums.

Generalising to prompts from elsewhere is the point, so:

* a word is a feature only if it occurs in `min_sources` sources of the training rows: a
  quirk of one benchmark's wording cannot become a rule;
* each row weighs `1 / n_source ** source_balance` (with 1, every source weighs the same),
  then the classes are balanced, so that no source and no class dominates the fit;
* after a first fit only the `max_words` words with the largest weights are kept, and the
  model is fitted again on them (the weights file stays small and scoring fast);
* `loso` measures exactly this recipe: for each source, fit on every other source (its
  vocabulary chosen without it) and score it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Hyper:
    l2: float = 1.0
    source_balance: float = 1.0
    min_sources: int = 2
    max_words: int = 8000
    iterations: int = 500
    tolerance: float = 1e-6


@dataclass(frozen=True, slots=True)
class Example:
    words: tuple[str, ...]  # the distinct words the model may weigh
    norm: float  # each word's value
    signals: tuple[float, ...]
    label: int  # index of the class
    source: str


@dataclass(frozen=True, slots=True)
class Fitted:
    words: tuple[str, ...]
    word_weights: Array  # len(words) x classes
    signal_weights: Array  # signals x classes
    bias: Array  # classes


def _vocabulary(examples: Sequence[Example], rows: Sequence[int], min_sources: int) -> list[str]:
    seen: dict[str, set[str]] = {}
    for i in rows:
        example = examples[i]
        for word in example.words:
            seen.setdefault(word, set()).add(example.source)
    return sorted(word for word, sources in seen.items() if len(sources) >= min_sources)


class _Design:
    """Rows of (word columns, then signal columns) in compressed sparse row form."""

    def __init__(self, examples: Sequence[Example], rows: Sequence[int], words: Sequence[str]):
        index = {word: j for j, word in enumerate(words)}
        n_words = len(words)
        n_signals = len(examples[rows[0]].signals) if len(rows) else 0
        starts = [0]
        columns: list[int] = []
        values: list[float] = []
        for i in rows:
            example = examples[i]
            hits = sorted(j for j in map(index.get, example.words) if j is not None)
            columns += hits
            values += [example.norm] * len(hits)
            for k, value in enumerate(example.signals):
                if value:
                    columns.append(n_words + k)
                    values.append(value)
            starts.append(len(columns))
        self.n_rows = len(rows)
        self.n_columns = n_words + n_signals
        self.starts = np.array(starts, dtype=np.int64)
        self.columns = np.array(columns, dtype=np.int64)
        self.values = np.array(values, dtype=np.float64)
        self.row_of = np.repeat(np.arange(self.n_rows), np.diff(self.starts))
        self.filled = np.diff(self.starts) > 0

    def times(self, weights: Array) -> Array:
        """The design matrix times `weights` (columns x classes)."""
        out = np.zeros((self.n_rows, weights.shape[1]))
        if len(self.columns):
            products = weights[self.columns] * self.values[:, None]
            out[self.filled] = np.add.reduceat(products, self.starts[:-1][self.filled], axis=0)
        return out

    def transposed_times(self, grad: Array) -> Array:
        """The design matrix's transpose times `grad` (rows x classes)."""
        scaled = grad[self.row_of] * self.values[:, None]
        return np.stack(
            [
                np.bincount(self.columns, weights=scaled[:, k], minlength=self.n_columns)
                for k in range(grad.shape[1])
            ],
            axis=1,
        )


def _softmax(logits: Array) -> tuple[Array, Array]:
    """(probabilities, log-probabilities) of each row."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exps = np.exp(shifted)
    totals = exps.sum(axis=1, keepdims=True)
    return exps / totals, shifted - np.log(totals)


def _dot(a: Array, b: Array) -> float:
    return float(np.sum(a * b))


def _lbfgs(
    objective: Callable[[Array], tuple[float, Array]],
    x: Array,
    iterations: int,
    tolerance: float,
    memory: int = 10,
) -> Array:
    """Minimise a smooth convex `objective(x) -> (value, gradient)` (L-BFGS, backtracking)."""
    value, grad = objective(x)
    steps: list[tuple[Array, Array, float]] = []
    for _ in range(iterations):
        direction = -grad
        alphas = []
        for s, y, rho in reversed(steps):
            alpha = rho * _dot(s, direction)
            alphas.append(alpha)
            direction = direction - alpha * y
        if steps:
            s, y, _ = steps[-1]
            direction = direction * (_dot(s, y) / _dot(y, y))
        for (s, y, rho), alpha in zip(steps, reversed(alphas), strict=True):
            direction = direction + s * (alpha - rho * _dot(y, direction))
        slope = _dot(grad, direction)
        if slope >= 0:  # not a descent direction: restart from the gradient
            steps.clear()
            direction = -grad
            slope = _dot(grad, direction)
        step = 1.0
        while True:
            candidate = x + step * direction
            new_value, new_grad = objective(candidate)
            if new_value <= value + 1e-4 * step * slope or step < 1e-10:
                break
            step /= 2
        s, y = candidate - x, new_grad - grad
        if _dot(s, y) > 1e-12:
            steps.append((s, y, 1.0 / _dot(s, y)))
            if len(steps) > memory:
                steps.pop(0)
        done = abs(value - new_value) <= tolerance * max(1.0, abs(value))
        x, value, grad = candidate, new_value, new_grad
        if done:
            break
    return x


def _fit(design: _Design, labels: Array, weights: Array, classes: int, hyper: Hyper) -> Array:
    """Weights (columns x classes) and a last row of biases minimising the weighted
    cross-entropy plus `l2` / 2 times the squared weights (biases unpenalised)."""
    n, d = design.n_rows, design.n_columns
    targets = np.eye(classes)[labels.astype(np.int64)]
    picked = (np.arange(n), labels.astype(np.int64))

    def objective(x: Array) -> tuple[float, Array]:
        w = x[: d * classes].reshape(d, classes)
        bias = x[d * classes :]
        probs, logs = _softmax(design.times(w) + bias)
        loss = -(weights * logs[picked]).sum() + 0.5 * hyper.l2 * (w * w).sum()
        grad = (probs - targets) * weights[:, None]
        grad_w = design.transposed_times(grad) + hyper.l2 * w
        return float(loss), np.concatenate([grad_w.ravel(), grad.sum(axis=0)])

    x = _lbfgs(objective, np.zeros(d * classes + classes), hyper.iterations, hyper.tolerance)
    return np.vstack([x[: d * classes].reshape(d, classes), x[d * classes :][None, :]])


def row_weights(
    examples: Sequence[Example], rows: Sequence[int], classes: int, hyper: Hyper
) -> Array:
    """Each row `1 / n_source ** source_balance`, then scaled so each class weighs the same;
    the mean weight is 1."""
    sizes: dict[str, int] = {}
    for i in rows:
        sizes[examples[i].source] = sizes.get(examples[i].source, 0) + 1
    weights = np.array([sizes[examples[i].source] ** -hyper.source_balance for i in rows])
    labels = np.array([examples[i].label for i in rows])
    for k in range(classes):
        mask = labels == k
        if mask.any():
            weights[mask] /= weights[mask].sum()
    return weights / weights.mean()


def train(examples: Sequence[Example], rows: Sequence[int], classes: int, hyper: Hyper) -> Fitted:
    """The model fitted on `rows` of `examples` (see the module's recipe)."""
    labels = np.array([examples[i].label for i in rows], dtype=np.float64)
    weights = row_weights(examples, rows, classes, hyper)
    words = _vocabulary(examples, rows, hyper.min_sources)
    for _ in range(2):
        solution = _fit(_Design(examples, rows, words), labels, weights, classes, hyper)
        word_weights = solution[: len(words)]
        if len(words) <= hyper.max_words:
            break
        # Keep the words that move some class most; refit so the others' share is re-learned.
        centred = word_weights - word_weights.mean(axis=1, keepdims=True)
        strength = np.abs(centred).max(axis=1)
        keep = np.sort(np.argsort(-strength, kind="stable")[: hyper.max_words])
        words = [words[j] for j in keep]
    return Fitted(
        words=tuple(words),
        word_weights=solution[: len(words)],
        signal_weights=solution[len(words) : -1],
        bias=solution[-1],
    )


def predict(fitted: Fitted, examples: Sequence[Example], rows: Sequence[int]) -> Array:
    """Class probabilities of `rows` of `examples` (rows x classes)."""
    design = _Design(examples, rows, fitted.words)
    weights = np.vstack([fitted.word_weights, fitted.signal_weights])
    probs, _ = _softmax(design.times(weights) + fitted.bias)
    return probs


def loso(examples: Sequence[Example], classes: int, hyper: Hyper) -> tuple[Array, list[str]]:
    """Out-of-source probabilities: each source's rows scored by the model fitted on every other
    source. Returns them (rows x classes, in `examples` order) and the sources in fold order."""
    sources = sorted({example.source for example in examples})
    probs = np.zeros((len(examples), classes))
    for source in sources:
        held = [i for i, example in enumerate(examples) if example.source == source]
        rest = [i for i, example in enumerate(examples) if example.source != source]
        probs[held] = predict(train(examples, rest, classes, hyper), examples, held)
    return probs, sources


def choose(
    probs: Array, general: int, hardest: int, mini_threshold: float, preview_threshold: float
) -> NDArray[np.int64]:
    """The model tier of each row (0 general, 1 mini, 2 preview) under the router's policy:
    preview when P(hardest class) >= preview_threshold, else mini when 1 - P(general) >=
    mini_threshold, else general (as `gateway.routing.heuristic.decide`)."""
    tier = np.where(1.0 - probs[:, general] >= mini_threshold, 1, 0)
    return np.where(probs[:, hardest] >= preview_threshold, 2, tier).astype(np.int64)


@dataclass(frozen=True, slots=True)
class Operating:
    mini_threshold: float
    preview_threshold: float
    acceptable: float
    cost_ratio: float
    hard_to_general: float
    general_to_reasoning: float


def tune(
    probs: Array,
    labels: NDArray[np.int64],
    acceptable: NDArray[np.bool_],
    costs: Array,
    hard: Sequence[int],
    max_cost: float,
    slack: float = 0.005,
    general: int = 0,
    hardest: int = -1,
) -> Operating:
    """Thresholds (on a 0.025 grid) for rows of class probabilities with their labels, the
    acceptable tiers and each tier's cost (rows x tiers): of those that keep the cost within
    `max_cost` of sending every row to the top tier, and route within `slack` of the most
    rows acceptably, the ones that best keep hard rows (classes `hard`) off the general tier
    (target 3%) and general rows off the reasoning tiers (target 5%): the lower of their
    shares over their targets."""
    rows = np.arange(len(probs))
    baseline = costs[:, 2].sum()
    is_hard = np.isin(labels, hard)
    is_general = labels == general
    hardest = hardest % probs.shape[1]
    found: list[Operating] = []
    grid = np.round(np.arange(0.05, 1.0, 0.025), 3)
    for mini in grid:
        for preview in grid:
            tier = choose(probs, general, hardest, float(mini), float(preview))
            cost = costs[rows, tier].sum() / baseline
            if cost > max_cost:
                continue
            found.append(
                Operating(
                    mini_threshold=float(mini),
                    preview_threshold=float(preview),
                    acceptable=float(acceptable[rows, tier].mean()),
                    cost_ratio=float(cost),
                    hard_to_general=float((tier[is_hard] == 0).mean()) if is_hard.any() else 0.0,
                    general_to_reasoning=(
                        float((tier[is_general] != 0).mean()) if is_general.any() else 0.0
                    ),
                )
            )
    if not found:
        raise ValueError(f"no thresholds keep the cost within {max_cost} of the top tier")
    best = max(o.acceptable for o in found)
    near = [o for o in found if o.acceptable >= best - slack]
    return min(
        near,
        key=lambda o: (
            max(o.hard_to_general / 0.03, o.general_to_reasoning / 0.05),
            -o.acceptable,
        ),
    )
