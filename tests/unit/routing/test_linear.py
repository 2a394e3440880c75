"""The learned router's scorer (gateway/routing/linear.py): loading a weights file, the packed
integer sums, probabilities, evidence, and the refusals of a bad file."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest

from gateway.routing import linear
from gateway.routing.features import extract
from gateway.routing.signals import NAMES

CLASSES = ["general", "hard-science"]


def weights_file(**changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "format": linear.FORMAT,
        "classes": CLASSES,
        "thresholds": {"mini": 0.5, "preview": 0.5},
        "scale": 1000,
        "provenance": {
            "script": "test",
            "trained_at": "2024-09-12T00:00:00Z",
            "data": [],
            "hyperparameters": {},
            "loso": None,
        },
        "bias": [200, -200],
        "signals": {name: [0, 0] for name in NAMES},
        "words": {
            "poem": [1500, -1500],
            "velocity": [-2000, 2000],
            "kinetic": [-3000, 3000],
            "the": [7, -7],
        },
    }
    raw.update(changes)
    return raw


def load(raw: dict[str, Any]) -> linear.LinearModel:
    return linear.load(orjson.dumps(raw))


def softmax(logits: list[float]) -> list[float]:
    peak = max(logits)
    exps = [math.exp(z - peak) for z in logits]
    return [e / sum(exps) for e in exps]


def test_probabilities_are_the_softmax_of_bias_plus_normed_word_weights() -> None:
    model = load(weights_file())
    features = extract("The velocity and the kinetic energy of a cart", 4096)
    # Weighed words: velocity, kinetic, energy, cart (not the, and, of, a).
    assert features.norm == pytest.approx(4**-0.5)
    scores = model.score(features)
    held = (-2000 - 3000 + 7) * features.norm  # velocity, kinetic, the
    expected = softmax([(200 + held) / 1000, (-200 - held) / 1000])
    assert list(scores.probabilities) == CLASSES
    assert list(scores.probabilities.values()) == pytest.approx(expected)
    assert scores.top == "hard-science"
    assert scores.words == ("kinetic", "velocity")  # highest first; 'the' weighs against
    assert scores.signal is None  # every signal weighs 0


def test_signals_add_their_weighted_values() -> None:
    name = "science evidence"
    index = NAMES.index(name)
    model = load(weights_file(signals={n: [0, 2000] if n == name else [0, 0] for n in NAMES}))
    features = extract("Photon speed 10^3 m/s", 4096)
    value = features.signals.values[index]
    assert value > 0
    scores = model.score(features)
    expected = softmax([200 / 1000, (-200 + 2000 * value) / 1000])
    assert list(scores.probabilities.values()) == pytest.approx(expected)
    assert scores.signal == name


def test_packed_weights_unpack_to_the_files_integers() -> None:
    model = load(weights_file(words={"aa": [-2147483647, 2147483647], "bb": [0, -1]}))
    assert model.weights(b"aa") == (-2147483647, 2147483647)
    assert model.weights(b"bb") == (0, -1)
    assert model.weights(b"missing") is None
    # Extreme weights add up exactly, in any number.
    scores = model.score(extract("aa bb " * 100, 4096))
    assert scores.top == "hard-science"


def test_empty_text_scores_the_bias() -> None:
    scores = load(weights_file()).score(extract("", 4096))
    assert list(scores.probabilities.values()) == pytest.approx(softmax([0.2, -0.2]))
    assert scores.top == "general" and scores.words == ()


def test_scoring_is_deterministic() -> None:
    model = load(weights_file())
    text = "Write a poem about the velocity of the kinetic energy " * 20
    first = model.score(extract(text, 4096))
    for _ in range(5):
        assert model.score(extract(text, 4096)) == first


def test_provenance_is_kept() -> None:
    model = load(weights_file())
    assert model.provenance["script"] == "test"
    assert model.scale == 1000 and model.classes == tuple(CLASSES)
    assert (model.mini_threshold, model.preview_threshold) == (0.5, 0.5)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": "other"}, "expected format"),
        ({"classes": ["only"]}, "classes must be a list"),
        ({"scale": 0}, "scale must be a positive integer"),
        ({"thresholds": {"mini": 0.5}}, "thresholds must give mini and preview in"),
        ({"thresholds": {"mini": 0.5, "preview": 2}}, "thresholds must give mini and preview"),
        ({"scale": 1.5}, "scale must be a positive integer"),
        ({"provenance": {"script": "x"}}, "provenance must record script, trained_at, data"),
        ({"bias": [1]}, "bias: expected 2 integers"),
        ({"bias": [1, 0.5]}, "bias: expected 2 integers"),
        ({"bias": [1, 2**31]}, "bias: expected 2 integers"),
        ({"signals": {"made up": [0, 0]}}, "the signals differ from this version's"),
        ({"words": []}, "words must map"),
        ({"words": {"a b": [0, 0]}}, "words.a b: not a word"),
        ({"words": {"": [0, 0]}}, "not a word"),
        ({"words": {"a": [0, True]}}, "words.a: expected 2 integers"),
    ],
)
def test_a_bad_weights_file_is_refused_with_the_reason(
    change: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        load(weights_file(**change))


def test_a_file_that_is_not_json_is_refused() -> None:
    with pytest.raises(ValueError, match="router weights: not JSON"):
        linear.load(b"{")
